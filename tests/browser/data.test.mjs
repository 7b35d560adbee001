// Data calls (docs/data-abi.md: Extism's ABI) in headless Chromium, the same suite
// (pages/data-suite.js) in the page (`createSandbox`, the core in nestbox's worker) and in a
// worker of the page's own (`nestbox/worker`): an Extism plugin built from extism-pdk and a C
// guest (target/data-guests, built by `make guests`), bytes/strings/JSON in, bytes()/text()/
// json() out, and every bad input — oversized input, output over its cap, a guest that lies
// about a pointer or a length, invalid UTF-8 asked for as text, invalid JSON asked for as JSON;
// and a WASI reactor kept alive with instantiateWasi (C, wasi-libc).
// `DATA_BENCH=1` also prints the cost of a 1 KiB call next to a numeric one, in both.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { openBrowser } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const guestsDir = join(here, '..', '..', 'target', 'data-guests');

let browser;
before(async () => {
  browser = await openBrowser({ extraMounts: { '/data-guests/': guestsDir } });
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

function guest(path) {
  const file = join(guestsDir, path);
  assert.ok(existsSync(file), `${file} is missing: run \`make guests\` (or tests/data/build.sh)`);
  const integrity = `sha256-${createHash('sha256').update(readFileSync(file)).digest('base64')}`;
  return { url: `/data-guests/${path}`, integrity };
}

const guests = () => ({
  plugin: guest('rust/data_plugin.wasm'),
  c: guest('c/guest.wasm'),
  reactor: guest('c/reactor.wasm'),
});

function inPage(guests, bench) {
  return browser.page.evaluate(
    async ({ guests, bench }) => {
      try {
        const make = (options) => window.nb.createSandbox(options);
        if (bench) return await (await import('/tests/data-bench.js')).benchCalls(make, guests, bench);
        return await (await import('/tests/data-suite.js')).dataSuite(make, guests);
      } catch (e) {
        return { error: `${e?.code ?? ''} ${e?.message ?? e}\n${e?.stack ?? ''}` };
      }
    },
    { guests, bench },
  );
}

function inLocalWorker(guests, bench) {
  return browser.page.evaluate(
    ({ guests, bench }) =>
      new Promise((resolve) => {
        const worker = new Worker('/tests/data-local-worker.js', { type: 'module' });
        worker.onmessage = (e) => {
          worker.terminate();
          resolve(e.data);
        };
        worker.onerror = (e) => resolve({ error: e.message });
        worker.postMessage({ guests, bench });
      }),
    { guests, bench },
  );
}

function check(report, where) {
  assert.equal(report.error, undefined, `${where}: ${report.error}`);
  // What Extism's runtime returns for extism/plugins' count_vowels (libextism's README).
  assert.equal(report.countText, '{"count":2,"total":2,"vowels":"aeiouAEIOU"}', where);
  assert.deepEqual(report.countJson, { count: 3, total: 5, vowels: 'aeiouAEIOU' }, where);
  assert.deepEqual(report.countBytes, [...Buffer.from('{"count":')], where);
  assert.equal(report.byteLength, 43);
  assert.ok(report.metrics, 'metrics of a data call');

  assert.ok(report.echoBytes, `${where}: 256 bytes round-trip`);
  assert.equal(report.echoBuffer, 256);
  assert.deepEqual(report.echoJson, { a: [1, 2, { b: 'ü' }], n: null });
  assert.equal(report.echoNumber, 42);
  assert.equal(report.echoEmpty, 0);

  for (const key of ['badText', 'badJson', 'notJson', 'unserialisable']) {
    assert.equal(report[key]?.code, 'INVALID_ARGUMENT', `${where}: ${key}: ${JSON.stringify(report[key])}`);
    assert.equal(report[key].name, 'SandboxTypeError', `${where}: ${key} is a TypeError`);
  }
  assert.match(report.badText.message, /not valid UTF-8/);
  assert.match(report.notJson.message, /not valid JSON/);
  assert.deepEqual(report.badStillBytes, [0xff, 0xfe, 0x00]);

  assert.equal(report.guestError?.code, 'GUEST_ERROR', where);
  assert.equal(report.guestError.cause, 'nope');
  assert.match(report.guestError.message, /status 7/);
  assert.equal(report.afterGuestError, 'still here', 'a guest error leaves the instance usable');
  assert.equal(report.http?.code, 'HOST_ERROR');
  assert.match(report.http.message, /no HTTP capability is granted/);
  assert.equal(report.httpReal, '200 {', `${where}: a real fetch to an allowed host`);
  assert.equal(report.httpFake, '202 fake body');
  assert.deepEqual(report.httpSeen.slice(0, 1), ['GET https://api.example.com/x error'], 'redirects refused');
  assert.equal(report.httpOtherHost?.code, 'HOST_ERROR');
  assert.match(report.httpOtherHost.message, /not allowed/);
  assert.equal(report.httpTooBig?.code, 'HOST_ERROR', JSON.stringify(report.httpTooBig));
  assert.match(report.httpTooBig.message, /maxResponseBytes/);
  assert.equal(report.httpSeenAfter, 2, 'a refused host never reaches fetch');
  assert.equal(report.httpBadOption?.code, 'INVALID_ARGUMENT');
  assert.equal(report.greet, 'bonjour, ada');
  assert.deepEqual(report.logs, [{ level: 'info', message: 'greeting ada' }]);
  assert.deepEqual(report.configVowels, { count: 3, total: 3, vowels: 'aeiouyAEIOUY' });
  assert.equal(report.badConfig?.code, 'INVALID_ARGUMENT', JSON.stringify(report.badConfig));
  assert.equal(report.unknownOption?.code, 'INVALID_ARGUMENT');

  assert.equal(report.cUpper, 'HELLO, C');
  for (const key of ['cLength', 'cPointer']) {
    assert.equal(report[key]?.code, 'TRAP', `${where}: ${key}`);
    assert.equal(report[key].trapCode, 'memory_out_of_bounds');
    assert.match(report[key].message, /extism:host\/env (output_set|load_u8)/);
  }
  assert.equal(report.notData?.code, 'INVALID_ARGUMENT');
  assert.deepEqual(report.numericStill, [5], 'numeric calls of the same instance still work');

  assert.equal(report.reactorInitOut, 'initialized\n', `${where}: _initialize ran once, its output streamed`);
  assert.deepEqual(report.reactorInits, [1]);
  assert.equal(report.reactorAppend1, 'ab');
  assert.equal(report.reactorOut1, 'call 1: 2 bytes in, 2 in the file\n', 'stdout streams during the call');
  assert.equal(report.reactorAppend2, 'abcd', 'files persist between calls');
  assert.equal(report.reactorOut2, 'call 2: 2 bytes in, 4 in the file\n');
  assert.equal(report.reactorFile, 'abcd');
  assert.deepEqual(report.reactorCalls, [2]);
  assert.deepEqual(report.reactorInitsAfter, [1], '_initialize never runs again');
  assert.equal(report.reactorDisposed?.code, 'DISPOSED');
  assert.equal(report.reactorAsyncStdin?.code, 'INVALID_ARGUMENT');
  assert.equal(report.filesOfPlain?.code, 'INVALID_ARGUMENT');

  assert.equal(report.inputOver?.code, 'INPUT_LIMIT', where);
  assert.equal(report.inputOver.limit, 64);
  assert.equal(report.afterInputOver, 16, 'INPUT_LIMIT leaves the instance usable');
  assert.equal(report.outputOver?.code, 'OUTPUT_LIMIT', where);
  assert.equal(report.outputOver.limit, 16);
  assert.equal(report.afterOutputOver?.code, 'POISONED');
}

test('data calls from the page (the core in nestbox’s worker)', async () => {
  check(await inPage(guests()), 'page');
});

test('data calls in nestbox/worker (the core in the page’s own worker)', async () => {
  check(await inLocalWorker(guests()), 'nestbox/worker');
});

test(
  'benchmark: a call passing 1 KiB in and out, next to a numeric call',
  { skip: !process.env.DATA_BENCH },
  async () => {
    const n = Number(process.env.DATA_BENCH_N ?? 300);
    const page = await inPage(guests(), { n });
    const local = await inLocalWorker(guests(), { n });
    for (const [where, r] of [
      ['page → worker', page],
      ['nestbox/worker', local],
    ]) {
      assert.equal(r.error, undefined, r.error);
      console.log(
        `${where.padEnd(15)} numeric add ${r.numericUs.toFixed(0).padStart(5)} µs | 1 KiB echo: C ${r.cEcho1KiBUs.toFixed(0).padStart(5)} µs (${r.cFuel} fuel), extism-pdk ${r.pluginEcho1KiBUs.toFixed(0).padStart(5)} µs (${r.pluginFuel} fuel)  (mean of ${n})`,
      );
    }
  },
);
