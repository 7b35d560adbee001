// Go js/wasm guests (tests/gojs, GOOS=js GOARCH=wasm) in headless Chromium, the same suite
// (pages/gojs-suite.js) in a page sandbox (`createSandbox`: the core in nestbox's worker, the
// Go capabilities answered by the page) and in `nestbox/worker`: the core's membrane is the
// guest's js.Global(); exports are called with JSON-like values and Uint8Arrays; capabilities
// are revoked and quota'd (deny entries in the audit log); the program's timers fire while it
// is idle; a panic is TRAP, os.Exit an exit code, an endless call is cancelled; the hostile
// guest reaches nothing.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { openBrowser } from './harness.mjs';

const guests = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'target', 'gojs-guests');
let browser;
before(async () => {
  browser = await openBrowser({ extraMounts: { '/gojs/': guests } });
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

function inPage() {
  return browser.page.evaluate(async () => {
    try {
      const nb = window.nb;
      return await (await import('/tests/gojs-suite.js')).goSuite(nb, () => nb.createSandbox());
    } catch (e) {
      return { error: `${e?.code ?? ''} ${e?.message ?? e}\n${e?.stack ?? ''}` };
    }
  });
}

function inLocalWorker() {
  return browser.page.evaluate(
    () =>
      new Promise((resolve) => {
        const worker = new Worker('/tests/gojs-local-worker.js', { type: 'module' });
        worker.onmessage = (e) => {
          worker.terminate();
          resolve(e.data);
        };
        worker.onerror = (e) => resolve({ error: e.message });
        worker.postMessage(null);
      }),
  );
}

function check(r, where) {
  assert.equal(r.error, undefined, r.error);
  assert.deepEqual(r.exports, [
    'exit',
    'hello',
    'jsonRoundTrip',
    'panicLater',
    'panics',
    'readConfig',
    'reverseBytes',
    'spin',
    'state',
    'strlen',
    'useCapability',
    'watch',
  ]);
  assert.equal(r.mainOutput.stdout, 'exports registered: 12\n');
  assert.equal(r.strlen, 9);
  assert.deepEqual(r.json, {
    value: { a: [1, 2], b: 'x', seenByGo: true },
    json: '{"a":[1,2],"b":"x","seenByGo":true}',
  });
  assert.deepEqual(r.bytes, { isUint8Array: true, bytes: [250, 2, 1], sum: 253 });
  assert.deepEqual(r.capability, { doubled: 42, greeting: 'hello gopher #42' });
  assert.equal(r.capabilityHostCalls, 2, 'double and greet, each a host call');
  assert.deepEqual(r.seen, [21, 1, 2], 'double ran for 21, 1 and 2; never after it was revoked');
  assert.ok(r.capabilityFuel > 0);
  assert.equal(r.config, 'box:3:b');
  assert.equal(r.hello, 'NEST');
  assert.deepEqual(r.helloOutput, { stdout: 'hello from Go, nest\n', stderr: 'to stderr\n' });
  assert.equal(r.unknownExport.code, 'INVALID_ARGUMENT');
  assert.equal(r.badArgs.code, 'INVALID_ARGUMENT');
  // Idle timers: the 10 ms ticker ran during a 60 ms pause without any call.
  assert.ok(r.idleRunsDuringPause >= 2, `idle runs during the pause: ${r.idleRunsDuringPause}`);
  assert.equal(r.state.background, 'goroutine finished after a sleep');
  assert.ok(r.state.ticks >= 2, `the ticker ran in Go's scheduler: ${r.state.ticks}`);
  assert.equal(r.tickedWhenWatchReturned, 0, 'watch returns before its goroutine calls host.tick');
  assert.equal(r.idleTicksWait, 'ok');
  assert.deepEqual(r.idleTicks, [1, 2, 3], 'host.tick(1), (2), (3) called from the idle goroutine');
  assert.equal(r.idleErrorWait, 'ok');
  assert.deepEqual(r.idleError, { code: 'TRAP', message: 'Go panic: a goroutine gave up', kept: true });
  assert.equal(r.afterIdleError.code, 'POISONED');
  assert.equal(r.quota.code, 'CAPABILITY_QUOTA');
  assert.equal(r.revoked.code, 'CAPABILITY_REVOKED');
  assert.deepEqual(r.denyOutcomes, ['CAPABILITY_QUOTA', 'CAPABILITY_REVOKED'], 'each refusal is a deny entry');
  assert.equal(r.auditVerified, true);
  assert.equal(r.panic.code, 'TRAP');
  assert.equal(r.panic.message, 'Go panic: gopher says no: x');
  assert.match(r.panic.cause, /goroutine \d+ \[running\]/);
  assert.equal(r.afterPanic.code, 'POISONED');
  assert.equal(r.exit, 3);
  assert.equal(r.cancel.code, 'CANCELLED');
  assert.ok(r.cancelMs < 1000, `cancelled in ${r.cancelMs} ms`);
  assert.equal(r.timeout.code, 'TIMEOUT');
  assert.equal(r.freshStrlen, 10);
  assert.equal(r.disposed.code, 'DISPOSED');
  for (const name of ['window', 'document', 'fetch', 'eval', 'Function', 'globalThis', 'self', 'WebAssembly']) {
    assert.equal(r.probe[`get:${name}`], 'undefined', name);
  }
  for (const key of ['call:eval', 'call:fetch', 'new:Function', 'call:Object.constructor']) {
    assert.match(r.probe[key], /^error: /, key);
  }
  for (const key of ['Object.constructor', 'Object.prototype', 'fs.constructor', 'obj.__proto__', 'capability.bind']) {
    assert.equal(r.probe[key], 'undefined', key);
  }
  assert.deepEqual(r.calledByHostile, []);
  assert.equal(r.reserved.code, 'INVALID_ARGUMENT');
  assert.equal(r.functionGrant.code, 'INVALID_ARGUMENT');
  assert.equal(r.arrayGlobals.code, 'INVALID_ARGUMENT', 'globals must be an object');
  assert.equal(r.typoOption.code, 'INVALID_ARGUMENT', 'an unknown option is refused, not ignored');
  assert.equal(r.afterDispose.code, 'DISPOSED');
  console.log(
    `gojs (${where}): instantiate + main ${r.startMs.toFixed(0)} ms; useCapability ${r.capabilityFuel} fuel; cancel ${r.cancelMs.toFixed(0)} ms`,
  );
}

test('Go js/wasm guests in a page sandbox: exports, capabilities, idle timers, panics, exit, cancel, the membrane', async () => {
  check(await inPage(), 'page');
});

test('Go js/wasm guests in nestbox/worker: the same suite', async () => {
  check(await inLocalWorker(), 'nestbox/worker');
});
