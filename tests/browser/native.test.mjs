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
  // One export per limit and trap: recursion, growth, traps of the interpreter's codes.
  hostile: `(module
    (type $v (func))
    (memory (export "memory") 1 1000)
    (table $t 1 1000 funcref)
    (func $rec (export "rec") (param i32) (result i32)
      (i32.add (call $rec (local.get 0)) (i32.const 1)))
    (func $fat (export "fat") (param i64 i64 i64 i64 i64 i64 i64 i64) (result i64)
      (i64.add (local.get 0)
        (call $fat (local.get 1) (local.get 2) (local.get 3) (local.get 4)
          (local.get 5) (local.get 6) (local.get 7) (local.get 0))))
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
    (func (export "pages") (result i32) (memory.size))
    (func (export "tgrow") (param i32) (result i32) (table.grow $t (ref.null func) (local.get 0)))
    (func (export "unreachable") unreachable)
    (func (export "div") (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0)))
    (func (export "overflow") (result i32) (i32.div_s (i32.const 0x80000000) (i32.const -1)))
    (func (export "oob") (result i32) (i32.load (i32.const 0x7ffffff0)))
    (func (export "convert") (result i32) (i32.trunc_f32_s (f32.const nan)))
    (func (export "table_oob") (call_indirect (type $v) (i32.const 5)))
    (func $other (param i32))
    (table $calls 2 funcref)
    (elem (table $calls) (i32.const 1) func $other)
    (func (export "null_call") (call_indirect $calls (type $v) (i32.const 0)))
    (func (export "bad_signature") (call_indirect $calls (type $v) (i32.const 1)))
    (func (export "spin") (loop $l (br $l))))`,
  // Capabilities: next(i) n times (sync or async on the page), log(ptr, len) of a string.
  caps: `(module
    (import "env" "next" (func $next (param i32) (result i32)))
    (import "env" "log" (func $log (param i32 i32)))
    (memory (export "memory") 1)
    (data (i32.const 16) "hello from the guest")
    (func (export "run") (param $n i32) (result i32) (local $i i32) (local $acc i32)
      (block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (i32.add (local.get $acc) (call $next (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
      (local.get $acc))
    (func (export "log") (call $log (i32.const 16) (i32.const 20))))`,
  // A start function that calls a capability while instantiating.
  start_host: `(module (import "env" "next" (func $next (param i32) (result i32)))
    (func $s (drop (call $next (i32.const 1)))) (start $s)
    (func (export "answer") (result i32) (i32.const 42)))`,
  // A memory whose minimum (100 pages) is over a small limit.
  big_memory: `(module (memory (export "memory") 100) (func (export "answer") (result i32) (i32.const 42)))`,
  // A guest naming the instrumenter's own import or counters.
  imports_out_of_fuel: `(module (import "nestbox" "out_of_fuel" (func)) (func (export "answer") (result i32) (i32.const 42)))`,
  exports_fuel: `(module (global (export "nestbox_fuel") (mut i64) (i64.const 0)) (func (export "answer") (result i32) (i32.const 42)))`,
  exports_depth: `(module (global (export "nestbox_depth") i32 (i32.const 0)) (func (export "answer") (result i32) (i32.const 42)))`,
  // A WASI guest that exits 0 at once.
  wasi: `(module (import "wasi_snapshot_preview1" "proc_exit" (func (param i32))) (memory (export "memory") 1)
    (func (export "_start") (call 0 (i32.const 0))))`,
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
    /** `body({ sb, load })` on each engine (a fresh sandbox with `options` each): both outcomes. */
    window.both = async (options, body) => {
      const out = {};
      for (const engine of ['interpreter', 'native']) {
        const sb = await window.nb.createSandbox({ engine, ...options });
        const load = (name) => sb.load(window.nx[name].bytes, { integrity: window.nx[name].integrity });
        try {
          out[engine] = await body({ sb, load, engine });
        } finally {
          sb.dispose();
        }
      }
      return out;
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
    // The embedder's view of the guest's memory between calls reads the engine's memory.
    await inst.memory.write(100, new Uint8Array([1, 2, 3]));
    const memory = {
      size: await inst.memory.size(),
      read: [...(await inst.memory.read(99, 5))],
      outside: await window.caught(inst.memory.read(65_535, 2)),
    };
    const result = { answer, add: add.results, count, engine: inst.engine, moduleEngine: mod.engine, memory };
    sb.dispose();
    return result;
  });
  assert.deepEqual(out.answer.results, [42]);
  assert.deepEqual(out.add, [2n ** 40n + 5n]);
  assert.deepEqual(out.count.results, [1000]);
  assert.ok(out.count.metrics.fuelConsumed > 1000, `fuel ${out.count.metrics.fuelConsumed}`);
  assert.equal(out.engine, 'native');
  assert.equal(out.moduleEngine, 'native');
  assert.equal(out.memory.size, 65_536);
  assert.deepEqual(out.memory.read, [0, 1, 2, 3, 0]);
  assert.equal(out.memory.outside.code, 'TRAP');
  assert.equal(out.memory.outside.details.trapCode, 'memory_out_of_bounds');
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

test('an endless loop with a big budget and a deadline ends with TIMEOUT', async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(async () => {
    const { sb, inst } = await window.native('plain', { limits: { fuel: 10n ** 15n, timeoutMs: 300 } });
    const error = await window.caught(inst.call('spin'));
    const stats = sb.stats;
    sb.dispose();
    return { error, stats };
  });
  assert.equal(out.error.code, 'TIMEOUT', JSON.stringify(out.error));
  assert.equal(out.error.details.limit, 300);
  assert.ok(out.error.details.metrics.fuelConsumed > 0);
  assert.equal(out.stats.workerRestarts, 0, 'the core ended it, not the watchdog');
});

test('deep recursion is STACK_OVERFLOW, by the depth counter and past the engine stack alike', async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(async () => {
    const counted = await window.native('hostile', { limits: { maxRecursionDepth: 500 } });
    const byCounter = await window.caught(counted.inst.call('rec', [1]));
    counted.sb.dispose();
    // A depth limit the engine's own stack cannot reach: its RangeError is the backstop.
    const deep = await window.native('hostile', { limits: { maxRecursionDepth: 1_000_000 } });
    const byEngine = await window.caught(deep.inst.call('fat', [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n]));
    const again = (await (await deep.sb.instantiate(deep.mod)).call('pages')).results;
    deep.sb.dispose();
    const interpreted = await window.nb.createSandbox({ limits: { maxRecursionDepth: 500 } });
    const mod = await interpreted.load(window.nx.hostile.bytes, { integrity: window.nx.hostile.integrity });
    const interpreter = await window.caught((await interpreted.instantiate(mod)).call('rec', [1]));
    interpreted.dispose();
    return { byCounter, byEngine, again, interpreter };
  });
  for (const error of [out.byCounter, out.byEngine, out.interpreter]) {
    assert.equal(error.code, 'STACK_OVERFLOW', JSON.stringify(error));
    assert.equal(error.details.trapCode, 'stack_overflow');
    assert.ok(error.details.metrics.fuelConsumed > 0);
  }
  assert.deepEqual(out.again, [1], 'the sandbox carries on after the engine stack overflowed');
  assert.match(out.byEngine.message, /engine's stack/, "the engine's RangeError, not the counter");
});

test('memory.grow and table.grow past the limits fail as in the interpreter (-1)', async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(() =>
    window.both({ limits: { maxMemoryBytes: 4 * 65_536, maxTableElements: 10 } }, async ({ sb, load }) => {
      const inst = await sb.instantiate(await load('hostile'));
      const call = async (name, args) => (await inst.call(name, args)).results[0];
      return {
        within: await call('grow', [2]),
        over: await call('grow', [10]),
        pages: await call('pages'),
        tableWithin: await call('tgrow', [5]),
        tableOver: await call('tgrow', [100]),
      };
    }),
  );
  assert.deepEqual(out.native, out.interpreter);
  assert.deepEqual(out.native, { within: 1, over: -1, pages: 3, tableWithin: 1, tableOver: -1 });
});

test('a memory minimum over the limit is MEMORY_LIMIT (at load on the native tier)', async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(() =>
    window.both({ limits: { maxMemoryBytes: 16 * 65_536 } }, async ({ sb, load }) => {
      let loaded;
      try {
        loaded = await load('big_memory');
      } catch (error) {
        return { at: 'load', error: window.describe(error) };
      }
      return { at: 'instantiate', error: await window.caught(sb.instantiate(loaded)) };
    }),
  );
  assert.equal(out.interpreter.error.code, 'MEMORY_LIMIT', JSON.stringify(out.interpreter));
  assert.equal(out.native.error.code, 'MEMORY_LIMIT', JSON.stringify(out.native));
  assert.equal(out.native.at, 'load');
});

test("a guest importing nestbox.out_of_fuel or exporting the counters' names is refused at load", async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(async () => {
    const sb = await window.nb.createSandbox({ engine: 'native' });
    const load = (name) => window.caught(sb.load(window.nx[name].bytes, { integrity: window.nx[name].integrity }));
    const result = {
      imports: await load('imports_out_of_fuel'),
      fuel: await load('exports_fuel'),
      depth: await load('exports_depth'),
      entries: (await sb.audit.entries()).map((e) => [e.event, e.outcome]),
    };
    sb.dispose();
    return result;
  });
  assert.equal(out.imports.code, 'IMPORT_NOT_GRANTED', JSON.stringify(out.imports));
  assert.deepEqual(out.imports.details.imports, ['nestbox.out_of_fuel']);
  assert.equal(out.fuel.code, 'INVALID_MODULE', JSON.stringify(out.fuel));
  assert.match(out.fuel.message, /nestbox_fuel/);
  assert.equal(out.depth.code, 'INVALID_MODULE');
  assert.ok(out.entries.some(([event, outcome]) => event === 'load' && outcome === 'IMPORT_NOT_GRANTED'));
});

test("traps end with the interpreter's codes and trap codes", async (t) => {
  if (needsJspi(t)) return;
  const exports = ['unreachable', 'div', 'overflow', 'oob', 'convert', 'table_oob'];
  const out = await browser.page.evaluate(
    (exports) =>
      window.both({}, async ({ sb, load }) => {
        const mod = await load('hostile');
        const errors = {};
        for (const name of exports) {
          const error = await window.caught((await sb.instantiate(mod)).call(name, name === 'div' ? [0] : []));
          errors[name] = { code: error.code, trapCode: error.details.trapCode, message: error.message };
        }
        return errors;
      }),
    exports,
  );
  if (BROWSER === 'firefox') {
    // SpiderMonkey says "index out of bounds" for a call_indirect past the table's end as for
    // a memory access: the one trap code the native tier cannot tell apart there.
    assert.equal(out.native.table_oob.trapCode, 'memory_out_of_bounds');
    out.native.table_oob = out.interpreter.table_oob;
  }
  assert.deepEqual(out.native, out.interpreter);
  assert.deepEqual(Object.fromEntries(exports.map((n) => [n, out.native[n].trapCode])), {
    unreachable: 'unreachable',
    div: 'integer_division_by_zero',
    overflow: 'integer_overflow',
    oob: 'memory_out_of_bounds',
    convert: 'bad_conversion_to_integer',
    table_oob: 'table_out_of_bounds',
  });
  for (const e of Object.values(out.native)) assert.equal(e.code, 'TRAP');
});

test("call_indirect to a null entry or of the wrong signature: the interpreter's trap codes", async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(() =>
    window.both({}, async ({ sb, load }) => {
      const mod = await load('hostile');
      const trap = async (name) => (await window.caught((await sb.instantiate(mod)).call(name))).details.trapCode;
      return { null: await trap('null_call'), signature: await trap('bad_signature') };
    }),
  );
  assert.deepEqual(out.interpreter, { null: 'indirect_call_to_null', signature: 'bad_signature' });
  assert.deepEqual(out.native, out.interpreter);
});

test('capabilities take the same host-call path: sync, async, a throw, revocation, quota, memory views', async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(async () => {
    const { nb } = window;
    const logged = [];
    const log = nb.capability(async (mem, ptr, len) => void logged.push(await mem.readString(ptr, len)), {
      params: ['i32', 'i32'],
      results: [],
    });
    const run = async (fn, decl = {}, n = 5) => {
      const next = nb.capability(fn, { params: ['i32'], results: ['i32'], ...decl });
      const { sb, inst } = await window.native('caps', {}, { imports: { env: { next, log } } });
      const result = await window.caught(inst.call('run', [n]));
      sb.dispose();
      return { result, next };
    };
    const sync = await run((_m, i) => i * 2);
    const async_ = await run(async (_m, i) => (await new Promise((r) => setTimeout(r, 1)), i + 100));
    const throws = await run((_m, i) => {
      if (i === 2) throw new Error('boom');
      return 0;
    });
    const quota = await run((_m, i) => i, { quota: { maxCalls: 3 } });
    // Granted, called, then revoked: the next call of it is refused.
    const revocable = nb.capability((_m, i) => i, { params: ['i32'], results: ['i32'] });
    const granted = await window.native('caps', {}, { imports: { env: { next: revocable, log } } });
    const before = await window.caught(granted.inst.call('run', [2]));
    nb.revoke(revocable);
    const revokedRun = await window.caught(granted.inst.call('run', [2]));
    const ungranted = await window.caught(granted.sb.instantiate(granted.mod, { imports: { env: { log } } }));
    granted.sb.dispose();
    const { sb, inst } = await window.native(
      'caps',
      {},
      { imports: { env: { next: nb.capability(() => 0, { params: ['i32'], results: ['i32'] }), log } } },
    );
    await inst.call('log');
    sb.dispose();
    return {
      sync: sync.result.value,
      async_: async_.result.value,
      throws: throws.result,
      quota: quota.result,
      before: before.value,
      revokedRun,
      ungranted,
      logged,
    };
  });
  assert.deepEqual(out.sync.results, [20]);
  assert.equal(out.sync.metrics.hostCalls, 5);
  assert.deepEqual(out.async_.results, [510]);
  assert.equal(out.throws.code, 'HOST_ERROR', JSON.stringify(out.throws));
  assert.match(out.throws.message, /boom/);
  assert.equal(out.throws.details.metrics.hostCalls, 3);
  assert.equal(out.quota.code, 'CAPABILITY_QUOTA', JSON.stringify(out.quota));
  assert.equal(out.quota.details.metrics.denials, 1);
  assert.deepEqual(out.before.results, [1]);
  assert.equal(out.revokedRun.code, 'CAPABILITY_REVOKED', JSON.stringify(out.revokedRun));
  assert.deepEqual(out.logged, ['hello from the guest']);
  assert.equal(out.ungranted.code, 'IMPORT_NOT_GRANTED', JSON.stringify(out.ungranted));
  assert.deepEqual(out.ungranted.details.imports, ['env.next']);
});

test('metrics, progress and fuel: deterministic across runs and slice sizes', async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(async () => {
    const fuelOf = async (limits) => {
      const { sb, inst } = await window.native('plain', { limits });
      const samples = [];
      const r = await inst.call('count', [200_000], { onProgress: (s) => samples.push(s) });
      sb.dispose();
      return { fuel: r.metrics.fuelConsumed, slices: r.metrics.slices, samples: samples.length };
    };
    return [await fuelOf({}), await fuelOf({}), await fuelOf({ fuelPerSlice: 10_000 })];
  });
  const [a, b, c] = out;
  assert.equal(a.fuel, b.fuel, 'the same call costs the same fuel');
  assert.equal(a.fuel, c.fuel, 'whatever the slice size');
  assert.ok(c.slices > a.slices, `${c.slices} slices of 10,000 vs ${a.slices}`);
  assert.ok(c.samples > 0, 'progress is reported between slices');
});

test("the audit log verifies and has the interpreter's entry kinds", async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(() =>
    window.both({}, async ({ sb, load }) => {
      const next = window.nb.capability((_m, i) => i, { params: ['i32'], results: ['i32'] });
      const log = window.nb.capability(() => undefined, { params: ['i32', 'i32'], results: [] });
      const mod = await load('caps');
      const inst = await sb.instantiate(mod, { imports: { env: { next, log } } });
      await inst.call('run', [3]);
      const hostile = await sb.instantiate(await load('hostile'));
      await window.caught(hostile.call('unreachable'));
      inst.dispose();
      await new Promise((r) => setTimeout(r, 50));
      const entries = await sb.audit.entries();
      return {
        kinds: entries.map((e) => `${e.event}:${e.outcome}`),
        engines: entries.filter((e) => e.event === 'call').map((e) => e.extra?.engine ?? 'interpreter'),
        verify: await sb.audit.verify(),
      };
    }),
  );
  assert.deepEqual(out.native.verify, { ok: true });
  assert.deepEqual(out.native.kinds, out.interpreter.kinds);
  assert.deepEqual(out.native.engines, ['native', 'native']);
});

test('engine options are checked: bad values, trace, WASI, data and the local sandbox fail closed', async (t) => {
  const out = await browser.page.evaluate(async () => {
    const { nb } = window;
    const badSandbox = await window.caught(nb.createSandbox({ engine: 'jit' }));
    const sb = await nb.createSandbox();
    const badLoad = await window.caught(
      sb.load(window.nx.plain.bytes, { integrity: window.nx.plain.integrity, engine: 7 }),
    );
    // Without JSPI on the page, engine 'native' is refused before anything reaches the worker.
    const saved = WebAssembly.Suspending;
    delete WebAssembly.Suspending;
    let noJspi;
    try {
      noJspi = await window.caught(nb.createSandbox({ engine: 'native' }));
    } finally {
      if (saved !== undefined) WebAssembly.Suspending = saved;
    }
    sb.dispose();
    const out = { badSandbox, badLoad, noJspi };
    if (typeof WebAssembly.Suspending !== 'function') return out;
    const { sb: native, inst, mod } = await window.native('plain');
    out.trace = await window.caught(inst.call('answer', [], { trace: true }));
    out.data = await window.caught(inst.call('answer', 'some input'));
    const { createLocalSandbox } = await import('/pkg/local.js');
    const local = await createLocalSandbox();
    out.local = await window.caught(
      local.load(window.nx.plain.bytes, { integrity: window.nx.plain.integrity, engine: 'native' }),
    );
    local.dispose();
    const wasiMod = await native.load(window.nx.wasi.bytes, { integrity: window.nx.wasi.integrity });
    out.wasi = { engine: wasiMod.engine, exitCode: (await native.runWasi(wasiMod)).exitCode };
    out.runWasi = await window.caught(native.runWasi(mod));
    out.interpreted = (
      await native.load(window.nx.plain.bytes, { integrity: window.nx.plain.integrity, engine: 'interpreter' })
    ).engine;
    native.dispose();
    return out;
  });
  for (const e of [out.badSandbox, out.badLoad]) {
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.equal(e.isTypeError, true);
  }
  assert.equal(out.noJspi.code, 'INVALID_ARGUMENT');
  assert.equal(out.noJspi.details.engine, 'native');
  assert.match(out.noJspi.details.missing, /WebAssembly\.Suspending/);
  if (!jspi) return t.skip(`${BROWSER}: no JSPI, so the native tier's own checks are not reached`);
  assert.equal(out.trace.code, 'INVALID_ARGUMENT');
  assert.match(out.trace.message, /trace/);
  // WASI guests run on the native tier (native_wasi.test.mjs tests them).
  assert.deepEqual(out.wasi, { engine: 'native', exitCode: 0 });
  assert.equal(out.runWasi.code, 'INVALID_ARGUMENT');
  assert.equal(out.data.code, 'INVALID_ARGUMENT', JSON.stringify(out.data));
  assert.equal(out.local.code, 'INVALID_ARGUMENT', JSON.stringify(out.local));
  assert.equal(out.interpreted, 'interpreter');
});

test('where JSPI is missing, engine native is INVALID_ARGUMENT naming what is missing', async (t) => {
  if (jspi) return t.skip('this browser has JSPI (the refusal is checked above by hiding it)');
  const out = await browser.page.evaluate(() => window.caught(window.nb.createSandbox({ engine: 'native' })));
  assert.equal(out.code, 'INVALID_ARGUMENT');
  assert.equal(out.details.engine, 'native');
  assert.match(out.details.missing, /WebAssembly\./);
});

test('a start function: its fuel is startFuel; out of its budget FUEL_EXHAUSTED; a capability call HOST_ERROR', async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(() =>
    window.both({}, async ({ sb, engine }) => {
      const { nb, fx } = window;
      const burn = await sb.load(fx.start_burn.url, { integrity: fx.start_burn.integrity, engine });
      const inst = await sb.instantiate(burn);
      const small = await nb.createSandbox({ engine, limits: { fuel: 10_000 } });
      const smallBurn = await small.load(fx.start_burn.url, { integrity: fx.start_burn.integrity });
      const exhausted = await window.caught(small.instantiate(smallBurn));
      small.dispose();
      const next = nb.capability(() => 1, { params: ['i32'], results: ['i32'] });
      const host = await sb.load(window.nx.start_host.bytes, { integrity: window.nx.start_host.integrity });
      const called = await window.caught(sb.instantiate(host, { imports: { env: { next } } }));
      return {
        startFuel: inst.startFuel,
        answer: (await inst.call('answer')).results,
        exhausted: exhausted.code,
        called: called.code,
      };
    }),
  );
  assert.ok(out.native.startFuel > 300_000, `start fuel ${out.native.startFuel}`);
  assert.deepEqual(out.native.answer, [42]);
  assert.equal(out.native.exhausted, 'FUEL_EXHAUSTED');
  assert.equal(out.native.called, 'HOST_ERROR');
  assert.equal(out.interpreter.exhausted, out.native.exhausted);
  assert.equal(out.interpreter.called, out.native.called);
});

test('a replaced worker: the native module is loaded again for the native tier, and runs', async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(async () => {
    const sb = await window.nb.createSandbox({ engine: 'native', workerUrl: '/tests/evil-worker.js' });
    const mod = await sb.load(window.nx.plain.bytes, { integrity: window.nx.plain.integrity });
    const inst = await sb.instantiate(mod);
    // pages/evil-worker.js: a call of `__crash` throws an uncaught error in the worker.
    const crashed = await window.caught(inst.call('__crash'));
    const fresh = await sb.instantiate(mod);
    const result = {
      crashed,
      engine: fresh.engine,
      answer: (await fresh.call('answer')).results,
      restarts: sb.stats.workerRestarts,
      loads: (await sb.audit.entries()).filter((e) => e.event === 'load').length,
    };
    sb.dispose();
    return result;
  });
  assert.equal(out.crashed.code, 'WORKER_CRASHED');
  assert.equal(out.engine, 'native');
  assert.deepEqual(out.answer, [42]);
  assert.equal(out.restarts, 1);
  assert.equal(out.loads, 2, 'loaded again in the new worker');
});
