// Go js/wasm guests (tests/gojs, GOOS=js GOARCH=wasm) in headless Chromium through
// `nestbox/worker`: the core's membrane is the guest's js.Global(); exports are called with
// JSON-like values and Uint8Arrays; capabilities are revoked and quota'd; a panic is TRAP,
// os.Exit an exit code, an endless call is cancelled; the hostile guest reaches nothing.
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

test('Go js/wasm guests in nestbox/worker: exports, capabilities, panics, exit, cancel, the membrane', async () => {
  const r = await browser.page.evaluate(
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
  assert.equal(r.error, undefined, r.error);
  assert.deepEqual(r.exports, [
    'exit',
    'hello',
    'jsonRoundTrip',
    'panics',
    'readConfig',
    'reverseBytes',
    'spin',
    'state',
    'strlen',
    'useCapability',
  ]);
  assert.equal(r.mainOutput.stdout, 'exports registered: 10\n');
  assert.equal(r.strlen, 9);
  assert.deepEqual(r.json, {
    value: { a: [1, 2], b: 'x', seenByGo: true },
    json: '{"a":[1,2],"b":"x","seenByGo":true}',
  });
  assert.deepEqual(r.bytes, { isUint8Array: true, bytes: [250, 2, 1], sum: 253 });
  assert.deepEqual(r.capability, { doubled: 42, greeting: 'hello gopher #42' });
  assert.deepEqual(r.seen, [21, 1, 2], 'double ran for 21, 1 and 2; never after it was revoked');
  assert.ok(r.capabilityFuel > 0);
  assert.equal(r.config, 'box:3:b');
  assert.equal(r.hello, 'NEST');
  assert.deepEqual(r.helloOutput, { stdout: 'hello from Go, nest\n', stderr: 'to stderr\n' });
  assert.equal(r.state.background, 'goroutine finished after a sleep');
  assert.ok(r.state.ticks >= 1, `the ticker ran in Go's scheduler: ${r.state.ticks}`);
  assert.equal(r.quota.code, 'CAPABILITY_QUOTA');
  assert.equal(r.revoked.code, 'CAPABILITY_REVOKED');
  assert.equal(r.panic.code, 'TRAP');
  assert.equal(r.panic.message, 'Go panic: gopher says no: x');
  assert.match(r.panic.cause, /goroutine \d+ \[running\]/);
  assert.equal(r.afterPanic.code, 'POISONED');
  assert.equal(r.exit, 3);
  assert.equal(r.cancel.code, 'CANCELLED');
  assert.ok(r.cancelMs < 1000, `cancelled in ${r.cancelMs} ms`);
  assert.equal(r.timeout.code, 'TIMEOUT');
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
  console.log(
    `gojs: instantiate + main ${r.startMs.toFixed(0)} ms; useCapability ${r.capabilityFuel} fuel; cancel ${r.cancelMs.toFixed(0)} ms`,
  );
});
