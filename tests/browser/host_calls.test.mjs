// Host functions on the page: sync and async, i64 as bigint, the memory view, 1,000
// sequential awaits inside one guest call, and a host function that throws (HOST_ERROR).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openBrowser } from './harness.mjs';

let browser;
before(async () => {
  browser = await openBrowser();
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

test('a sync and an async host function read the guest string and the call returns', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const seen = [];
    const syncLog = nb.capability((mem, ptr, len) => void seen.push(['sync', ptr, len, typeof mem.read]), {
      params: ['i32', 'i32'],
      results: [],
    });
    const asyncLog = nb.capability(async (mem, ptr, len) => void seen.push(['async', await mem.readString(ptr, len)]), {
      params: ['i32', 'i32'],
      results: [],
    });
    const a = await sb.instantiate(mod, { imports: { env: { log: syncLog } } });
    const b = await sb.instantiate(mod, { imports: { env: { log: asyncLog } } });
    const ra = await a.call('run', [21]);
    const rb = await b.call('run', [50]);
    return {
      seen,
      ra: ra.results,
      rb: rb.results,
      metrics: rb.metrics,
      digest: mod.digest,
      exports: mod.exports.map((e) => e.name),
    };
  });
  assert.deepEqual(out.seen, [
    ['sync', 16, 20, 'function'],
    ['async', 'hello from the guest'],
  ]);
  assert.deepEqual(out.ra, [42]);
  assert.deepEqual(out.rb, [100]);
  assert.equal(out.metrics.hostCalls, 1);
  assert.equal(out.metrics.denials, 0);
  assert.ok(out.metrics.fuelConsumed > 0);
  assert.equal(out.digest, browser.fixtures.log_and_double.integrity);
  assert.deepEqual(out.exports, ['memory', 'run']);
});

test('i64 crosses as bigint into the host function and back', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(await window.bytesOf('i64_add'), { integrity: fx.i64_add.integrity });
    const types = [];
    const add64 = nb.capability((_mem, a, b) => (types.push(typeof a, typeof b), a + b), {
      params: ['i64', 'i64'],
      results: ['i64'],
    });
    const inst = await sb.instantiate(mod, { imports: { env: { add64 } } });
    const { results } = await inst.call('run', [2n ** 40n, -5n]);
    return { types, result: String(results[0]), isBigint: typeof results[0] === 'bigint' };
  });
  assert.deepEqual(out.types, ['bigint', 'bigint']);
  assert.equal(out.result, String(2n ** 40n - 5n));
  assert.equal(out.isBigint, true);
});

test('1,000 guest→host calls, each awaiting the memory view, inside one guest call', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
    let awaits = 0;
    const next = nb.capability(
      async (mem, i) => {
        // Two awaited round trips per host call: a write and a read-back.
        await mem.write(64, new Uint8Array([i & 0xff]));
        const [back] = await mem.read(64, 1);
        awaits += 2;
        return back;
      },
      { params: ['i32'], results: ['i32'] },
    );
    const inst = await sb.instantiate(mod, { imports: { env: { next } } });
    const t0 = performance.now();
    const { results, metrics } = await inst.call('run', [1000]);
    return { sum: results[0], awaits, ms: performance.now() - t0, metrics };
  });
  let expected = 0;
  for (let i = 0; i < 1000; i++) expected += i & 0xff;
  assert.equal(out.sum, expected);
  assert.equal(out.awaits, 2000);
  assert.equal(out.metrics.hostCalls, 1000);
  console.log(`1,000 host calls with 2,000 awaited memory round trips: ${out.ms.toFixed(0)} ms`);
});

test('1,000 sequential awaits inside one host function', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    let sizes = 0;
    const log = nb.capability(
      async (mem, ptr, len) => {
        for (let i = 0; i < 1000; i++) sizes += (await mem.size()) === 65536 ? 1 : 0;
        await mem.writeString(ptr, 'HELLO', len);
      },
      { params: ['i32', 'i32'], results: [] },
    );
    const inst = await sb.instantiate(mod, { imports: { env: { log } } });
    const t0 = performance.now();
    const { results } = await inst.call('run', [1]);
    const ms = performance.now() - t0;
    const text = new TextDecoder().decode(await inst.memory.read(16, 5));
    return { sizes, results, ms, text };
  });
  assert.equal(out.sizes, 1000);
  assert.deepEqual(out.results, [2]);
  assert.equal(out.text, 'HELLO');
  console.log(`1,000 sequential awaits in one host function: ${out.ms.toFixed(0)} ms`);
});

test('a host function that throws ends the guest call with HOST_ERROR and the thrown value as cause', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const boom = new RangeError('disk on fire');
    const log = nb.capability(
      async () => {
        throw boom;
      },
      { params: ['i32', 'i32'], results: [] },
    );
    const inst = await sb.instantiate(mod, { imports: { env: { log } } });
    let sameCause = false;
    const first = await window.caught(
      inst.call('run', [1]).catch((e) => {
        sameCause = e.cause === boom;
        throw e;
      }),
    );
    const again = await window.caught(inst.call('run', [1]));
    return { first, sameCause, again };
  });
  assert.equal(out.first.code, 'HOST_ERROR');
  assert.equal(out.first.isSandboxError, true);
  assert.equal(out.sameCause, true);
  assert.match(out.first.message, /disk on fire/);
  assert.equal(out.first.details.import, 'env.log');
  assert.equal(out.first.details.capability, 1);
  assert.equal(out.first.details.metrics.hostCalls, 1);
  // The call was interrupted mid-flight: the instance is poisoned, the sandbox is not.
  assert.equal(out.again.code, 'POISONED');
});

test('a host function returning the wrong shape ends the call with HOST_ERROR', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
    const next = nb.capability(() => 'not a number', { params: ['i32'], results: ['i32'] });
    const inst = await sb.instantiate(mod, { imports: { env: { next } } });
    return window.caught(inst.call('run', [3]));
  });
  assert.equal(out.code, 'HOST_ERROR');
  assert.match(out.message, /returned string/);
});
