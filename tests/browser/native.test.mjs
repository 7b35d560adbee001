// The native tier (`engine: 'native'`): guests instrumented by the core and run on the
// browser's own engine under JSPI. A hostile module per limit, traps with the interpreter's
// codes, capabilities through the same host-call path, metrics, audit, deterministic fuel.
// Where JSPI is missing (Firefox ESR, WebKitGTK) the engine is refused with its reason, and
// the tests that need it skip.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import wabtInit from 'wabt';
import { BROWSER, openBrowser } from './harness.mjs';

/** The guests of this file, as WAT: name → source. */
const GUESTS = {
  // Loops for ever (spin), answers 42 (answer), adds i64s (add), counts to n (count).
  plain: `(module
    (memory (export "memory") 1 4)
    (func (export "spin") (loop $l (br $l)))
    (func (export "answer") (result i32) (i32.const 42))
    (func (export "add") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1)))
    (func (export "count") (param $n i32) (result i32) (local $i i32)
      (block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
      (local.get $i)))`,
};

let browser;
let jspi = false;
before(async () => {
  browser = await openBrowser();
  const wabt = await wabtInit();
  const guests = {};
  for (const [name, source] of Object.entries(GUESTS)) {
    const module = wabt.parseWat(`${name}.wat`, source, { bulk_memory: true, reference_types: true });
    const bytes = Buffer.from(module.toBinary({}).buffer);
    module.destroy();
    guests[name] = { bytes: [...bytes], integrity: `sha256-${createHash('sha256').update(bytes).digest('base64')}` };
  }
  jspi = await browser.page.evaluate((guests) => {
    window.nx = Object.fromEntries(
      Object.entries(guests).map(([name, g]) => [name, { bytes: new Uint8Array(g.bytes), integrity: g.integrity }]),
    );
    /** A sandbox on the native tier with `options`, and `name` loaded and instantiated. */
    window.native = async (name, options = {}, instantiate = {}) => {
      const sb = await window.nb.createSandbox({ engine: 'native', ...options });
      const mod = await sb.load(window.nx[name].bytes, { integrity: window.nx[name].integrity });
      const inst = await sb.instantiate(mod, instantiate);
      return { sb, mod, inst };
    };
    return typeof WebAssembly.Suspending === 'function' && typeof WebAssembly.promising === 'function';
  }, guests);
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

/** Skips `t` where this browser has no JSPI; returns true then. */
function needsJspi(t) {
  if (jspi) return false;
  t.skip(`${BROWSER}: no JavaScript Promise Integration (WebAssembly.Suspending), so no native tier`);
  return true;
}

test('a plain guest runs on the native tier: results, i64, fuel, engine', async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(async () => {
    const { sb, mod, inst } = await window.native('plain');
    const answer = await inst.call('answer');
    const add = await inst.call('add', [2n ** 40n, 5n]);
    const count = await inst.call('count', [1000]);
    const result = { answer, add: add.results, count, engine: inst.engine, moduleEngine: mod.engine };
    sb.dispose();
    return result;
  });
  assert.deepEqual(out.answer.results, [42]);
  assert.deepEqual(out.add, [2n ** 40n + 5n]);
  assert.deepEqual(out.count.results, [1000]);
  assert.ok(out.count.metrics.fuelConsumed > 1000, `fuel ${out.count.metrics.fuelConsumed}`);
  assert.equal(out.engine, 'native');
  assert.equal(out.moduleEngine, 'native');
});

test('an endless loop ends with FUEL_EXHAUSTED after its budget, in slices', async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(async () => {
    const { sb, inst } = await window.native('plain', { limits: { fuel: 50_000_000, fuelPerSlice: 1_000_000 } });
    const error = await window.caught(inst.call('spin'));
    const poisoned = await window.caught(inst.call('answer'));
    sb.dispose();
    return { error, poisoned };
  });
  assert.equal(out.error.code, 'FUEL_EXHAUSTED', JSON.stringify(out.error));
  assert.ok(out.error.details.metrics.fuelConsumed >= 50_000_000);
  assert.ok(out.error.details.metrics.slices >= 50);
  assert.equal(out.poisoned.code, 'POISONED');
});

test('cancel ends an endless loop with CANCELLED; the worker and sandbox carry on', async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(async () => {
    const { sb, mod, inst } = await window.native('plain');
    const controller = new AbortController();
    const running = window.caught(inst.call('spin', [], { signal: controller.signal }));
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    controller.abort();
    const error = await running;
    const latency = performance.now() - t0;
    const fresh = await sb.instantiate(mod);
    const answer = (await fresh.call('answer')).results;
    const stats = sb.stats;
    sb.dispose();
    return { error, latency, answer, stats };
  });
  assert.equal(out.error.code, 'CANCELLED', JSON.stringify(out.error));
  assert.ok(out.error.details.metrics.slices > 1);
  assert.deepEqual(out.answer, [42]);
  assert.equal(out.stats.workerRestarts, 0, 'cancelled without terminating the worker');
  console.log(`native cancel latency: ${out.latency.toFixed(1)} ms`);
});
