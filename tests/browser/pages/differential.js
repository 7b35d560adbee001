// The differential test's page half (native_differential.test.mjs): one scenario per WAT
// fixture, run by `scenario(name, tier)` in a sandbox of that tier ('interpreter': the
// default createSandbox, 'native': `engine: 'native'`) and returned as a transcript — plain
// data, one entry per step, with what a user relies on: results, exit codes, stdout/stderr,
// error codes (and trap codes, limits), host calls, denials, peak memory. Never fuel, slices
// or time: they differ between the tiers by design. An error's message is kept under `note`,
// which the comparison ignores (the engines word traps differently).
//
// `divergence(name, tier)`: the few things the native tier refuses by design (listed with their
// reasons in the test), run the same way on both tiers.
const { nb } = window;

const TIERS = { interpreter: {}, native: { engine: 'native' } };

/** A sandbox of `tier` with these limits (a generous timeout unless given). */
function sandbox(tier, limits = {}) {
  if (!(tier in TIERS)) throw new Error(`unknown tier ${tier}`);
  return nb.createSandbox({ ...TIERS[tier], limits: { timeoutMs: 60_000, ...limits } });
}

const load = (sb, name) => sb.load(window.fx[name].url, { integrity: window.fx[name].integrity });
const value = (v) => (typeof v === 'bigint' ? `${v}n` : Object.is(v, -0) ? '-0' : String(v));
const text = (bytes) => (bytes === undefined ? undefined : new TextDecoder().decode(bytes));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** What a user relies on of a metrics object. */
const metricsOf = (m) => ({ hostCalls: m.hostCalls, denials: m.denials, peakMemoryBytes: m.peakMemoryBytes });

/** An error as plain data: code, trap code, limit, WASI output kept in `details`; the message as `note`. */
function errorOf(e) {
  if (!(e instanceof nb.SandboxError)) return { notSandboxError: `${e?.name}: ${e?.message}` };
  const d = e.details ?? {};
  const out = { code: e.code };
  if (d.trapCode !== undefined) out.trapCode = d.trapCode;
  if (d.limit !== undefined) out.limit = value(d.limit);
  if (d.stdout !== undefined) out.stdout = text(d.stdout);
  if (d.stderr !== undefined) out.stderr = text(d.stderr);
  if (d.imports !== undefined) out.imports = JSON.parse(JSON.stringify(d.imports));
  if (d.metrics !== undefined) out.metrics = metricsOf(d.metrics);
  out.note = e.message;
  return out;
}

/** A transcript: `step(label, fn)` runs fn and records what it returned or how it failed. */
function transcript() {
  const entries = [];
  return {
    entries,
    async step(label, fn) {
      try {
        entries.push({ step: label, ...((await fn()) ?? {}) });
      } catch (e) {
        entries.push({ step: label, error: errorOf(e) });
      }
    },
  };
}

/** A call's outcome: results (as strings, `1n` for an i64) and the metrics a user relies on. */
const callOf = (r) => ({ results: r.results.map(value), metrics: metricsOf(r.metrics) });

/** A WASI run's outcome. */
const runOf = (r) => ({
  exitCode: r.exitCode,
  stdout: r.stdoutText,
  stderr: r.stderrText,
  metrics: metricsOf(r.metrics),
});

/** Instantiates `name` in `sb` with `imports`, calls `exportName(args)`, disposes the instance. */
async function callOnce(sb, mod, imports, exportName, args = [], options = {}) {
  const inst = await sb.instantiate(mod, { imports });
  try {
    return callOf(await inst.call(exportName, args, options));
  } finally {
    inst.dispose();
  }
}

/**
 * env.log: the async one reads the string through the guest memory view; the sync one only
 * records the pointer and length it was given.
 */
const logCap = (logs, { async = false } = {}) =>
  nb.capability(
    async
      ? async (mem, ptr, len) => void logs.push(await mem.readString(ptr, len))
      : (_m, ptr, len) => void logs.push([ptr, len]),
    { params: ['i32', 'i32'], results: [] },
  );

/** A little-endian i32 read through the host: what a host function sees of guest memory. */
const peekCap = (params) =>
  nb.capability(
    async (mem, ptr) => {
      const b = await mem.read(ptr, 4);
      return new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true);
    },
    { params, results: ['i32'] },
  );

const SCENARIOS = {
  async log_and_double(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'log_and_double');
      for (const [label, async] of [
        ['sync-style', false],
        ['async', true],
      ]) {
        const logs = [];
        await t.step(`run(21), ${label} log`, async () => ({
          ...(await callOnce(sb, mod, { env: { log: logCap(logs, { async }) } }, 'run', [21])),
          logs,
        }));
      }
      const logs = [];
      const inst = await sb.instantiate(mod, { imports: { env: { log: logCap(logs) } } });
      for (const x of [0, -5, 2 ** 30, 2 ** 31 - 1, -(2 ** 31)])
        await t.step(`run(${x}) on one instance`, async () => callOf(await inst.call('run', [x])));
      await t.step('logs of those calls', () => ({ logs }));
      await t.step('unknown export', async () => callOf(await inst.call('nope', [1])));
      await t.step('no arguments', async () => callOf(await inst.call('run', [])));
      await t.step('a string argument', async () => callOf(await inst.call('run', ['1'])));
      await t.step('an i64 for an i32', async () => callOf(await inst.call('run', [1n])));
      await t.step('still usable', async () => callOf(await inst.call('run', [4])));
      inst.dispose();
      const throwing = nb.capability(
        () => {
          throw new Error('host says no');
        },
        { params: ['i32', 'i32'], results: [] },
      );
      await t.step('log throws', () => callOnce(sb, mod, { env: { log: throwing } }, 'run', [1]));
      const rejecting = nb.capability(() => Promise.reject(new Error('later no')), {
        params: ['i32', 'i32'],
        results: [],
      });
      await t.step('log rejects', () => callOnce(sb, mod, { env: { log: rejecting } }, 'run', [1]));
      await t.step('log not granted', () => callOnce(sb, mod, {}, 'run', [1]));
      const wrong = nb.capability(() => {}, { params: ['i32'], results: [] });
      await t.step('log of another type', () => callOnce(sb, mod, { env: { log: wrong } }, 'run', [1]));
      await t.step('module info', () => ({
        imports: JSON.parse(JSON.stringify(mod.imports)),
        exports: JSON.parse(JSON.stringify(mod.exports)),
      }));
    } finally {
      sb.dispose();
    }
  },

  async host_loop(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'host_loop');
      const next = nb.capability((_m, i) => i * 3, { params: ['i32'], results: ['i32'] });
      await t.step('run(1000), next(i) = 3i', () => callOnce(sb, mod, { env: { next } }, 'run', [1000]));
      await t.step('run(0)', () => callOnce(sb, mod, { env: { next } }, 'run', [0]));
      const wraps = nb.capability((_m, i) => 2 ** 31 - 1 - i, { params: ['i32'], results: ['i32'] });
      await t.step('run(5), sums wrap', () => callOnce(sb, mod, { env: { next: wraps } }, 'run', [5]));
      const bad = nb.capability(() => 'seven', { params: ['i32'], results: ['i32'] });
      await t.step('next answers a string', () => callOnce(sb, mod, { env: { next: bad } }, 'run', [3]));
      const none = nb.capability(() => undefined, { params: ['i32'], results: ['i32'] });
      await t.step('next answers nothing', () => callOnce(sb, mod, { env: { next: none } }, 'run', [3]));
      const quota = nb.capability((_m, i) => i, { params: ['i32'], results: ['i32'], quota: { maxCalls: 10 } });
      await t.step('quota of 10 calls, run(10)', () => callOnce(sb, mod, { env: { next: quota } }, 'run', [10]));
      await t.step('the 11th call', () => callOnce(sb, mod, { env: { next: quota } }, 'run', [1]));
      const revoked = nb.capability((_m, i) => i, { params: ['i32'], results: ['i32'] });
      const inst = await sb.instantiate(mod, { imports: { env: { next: revoked } } });
      await t.step('before revoke', async () => callOf(await inst.call('run', [4])));
      nb.revoke(revoked);
      await t.step('after revoke', async () => callOf(await inst.call('run', [4])));
      inst.dispose();
      await t.step('fuel budget of 5,000 for 100,000 calls', () =>
        callOnce(sb, mod, { env: { next } }, 'run', [100_000], { fuel: 5_000 }),
      );
    } finally {
      sb.dispose();
    }
  },

  async i64_add(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'i64_add');
      const add64 = nb.capability((_m, a, b) => BigInt.asIntN(64, a + b), {
        params: ['i64', 'i64'],
        results: ['i64'],
      });
      const inst = await sb.instantiate(mod, { imports: { env: { add64 } } });
      for (const [a, b] of [
        [1n, 2n],
        [-1n, 1n],
        [2n ** 62n, 2n ** 62n],
        [-(2n ** 63n), -1n],
        [2n ** 53n + 1n, 0n],
      ])
        await t.step(`run(${a}, ${b})`, async () => callOf(await inst.call('run', [a, b])));
      await t.step('numbers for i64', async () => callOf(await inst.call('run', [1, 2])));
      await t.step('out-of-range bigint', async () => callOf(await inst.call('run', [2n ** 64n, 0n])));
      inst.dispose();
      const unwrapped = nb.capability((_m, a, b) => a + b, { params: ['i64', 'i64'], results: ['i64'] });
      await t.step('host answers past i64', () =>
        callOnce(sb, mod, { env: { add64: unwrapped } }, 'run', [2n ** 62n, 2n ** 62n]),
      );
      const number = nb.capability(() => 3, { params: ['i64', 'i64'], results: ['i64'] });
      await t.step('host answers a number for an i64', () =>
        callOnce(sb, mod, { env: { add64: number } }, 'run', [1n, 2n]),
      );
    } finally {
      sb.dispose();
    }
  },

  async oob_pointer(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'oob_pointer');
      const seen = [];
      const naive = nb.capability(
        async (mem, ptr, len) => {
          seen.push([ptr, len]);
          await mem.readString(ptr, len);
        },
        { params: ['i32', 'i32'], results: [] },
      );
      await t.step('a host reading past the memory', () => callOnce(sb, mod, { env: { log: naive } }, 'run'));
      let caught;
      const careful = nb.capability(
        async (mem, ptr, len) => {
          try {
            await mem.read(ptr, len);
          } catch (e) {
            caught = errorOf(e);
          }
        },
        { params: ['i32', 'i32'], results: [] },
      );
      await t.step('a host catching the denial', async () => ({
        ...(await callOnce(sb, mod, { env: { log: careful } }, 'run')),
        caught,
        seen,
      }));
    } finally {
      sb.dispose();
    }
  },

  async secret(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'secret');
      const peek = peekCap(['i32', 'i32']);
      const a = await sb.instantiate(mod, { imports: { env: { peek } } });
      const b = await sb.instantiate(mod, { imports: { env: { peek } } });
      await t.step('a.set(0x12345678)', async () => callOf(await a.call('set', [0x12345678])));
      await t.step('a.get()', async () => callOf(await a.call('get')));
      await t.step('a.leak() through the host', async () => callOf(await a.call('leak')));
      await t.step("b.get(): b's own memory", async () => callOf(await b.call('get')));
      await t.step('b.leak()', async () => callOf(await b.call('leak')));
      await t.step('memory read by the page', async () => ({ bytes: [...(await a.memory.read(0, 8))] }));
      a.dispose();
      b.dispose();
    } finally {
      sb.dispose();
    }
  },

  async spin(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'spin');
      const inst = await sb.instantiate(mod);
      await t.step('answer()', async () => callOf(await inst.call('answer')));
      await t.step('spin() with 1M fuel', async () => callOf(await inst.call('spin', [], { fuel: 1_000_000 })));
      await t.step('answer() after it', async () => callOf(await inst.call('answer')));
      inst.dispose();
      await t.step('spin() with a 200 ms timeout', () => callOnce(sb, mod, {}, 'spin', [], { timeoutMs: 200 }));
      await t.step('spin() aborted after 100 ms', async () => {
        const controller = new AbortController();
        const running = callOnce(sb, mod, {}, 'spin', [], { signal: controller.signal });
        await sleep(100);
        controller.abort();
        return await running;
      });
      await t.step('spin() with an aborted signal', () =>
        callOnce(sb, mod, {}, 'spin', [], { signal: AbortSignal.abort() }),
      );
      const busy = await sb.instantiate(mod);
      await t.step('a second call while one runs', async () => {
        const controller = new AbortController();
        const running = busy.call('spin', [], { signal: controller.signal }).catch(errorOf);
        const second = await busy.call('answer').then(callOf, (e) => ({ error: errorOf(e) }));
        controller.abort();
        return { second, first: await running };
      });
      busy.dispose();
      await t.step('a call on a disposed instance', async () => callOf(await busy.call('answer')));
      await t.step('the sandbox carries on', () => callOnce(sb, mod, {}, 'answer'));
      await t.step('fuel over the sandbox limit', () => callOnce(sb, mod, {}, 'answer', [], { fuel: 1e300 }));
    } finally {
      sb.dispose();
    }
  },

  async start_burn(tier, t) {
    {
      const sb = await sandbox(tier);
      try {
        const mod = await load(sb, 'start_burn');
        await t.step('instantiate (start burns), answer()', () => callOnce(sb, mod, {}, 'answer'));
      } finally {
        sb.dispose();
      }
    }
    const small = await sandbox(tier, { fuel: 100_000 });
    try {
      const mod = await load(small, 'start_burn');
      await t.step('a fuel limit under the start function', () => callOnce(small, mod, {}, 'answer'));
      await t.step('the sandbox carries on', async () => callOnce(small, await load(small, 'spin'), {}, 'answer'));
    } finally {
      small.dispose();
    }
  },

  async tenant_memory(tier, t) {
    {
      const sb = await sandbox(tier);
      try {
        const mod = await load(sb, 'tenant_memory');
        const inst = await sb.instantiate(mod);
        for (const pages of [0, 1, 3, 100_000, 0])
          await t.step(`grow(${pages})`, async () => callOf(await inst.call('grow', [pages])));
        await t.step('memory size seen by the page', async () => ({ bytes: await inst.memory.size() }));
        await t.step('grow(1) with a 5-page call limit', async () =>
          callOf(await inst.call('grow', [1], { maxMemoryBytes: 5 * 65536 })),
        );
        await t.step('a call limit under the current memory', async () =>
          callOf(await inst.call('answer', [], { maxMemoryBytes: 65536 })),
        );
        inst.dispose();
        await t.step('grow(-1): 2^32-1 pages, a new instance', () => callOnce(sb, mod, {}, 'grow', [-1]));
      } finally {
        sb.dispose();
      }
    }
    const capped = await sandbox(tier, { maxMemoryBytes: 4 * 65536 });
    try {
      const mod = await load(capped, 'tenant_memory');
      const inst = await capped.instantiate(mod);
      for (const pages of [1, 1, 1])
        await t.step(`grow(${pages}) under a 4-page sandbox limit`, async () =>
          callOf(await inst.call('grow', [pages])),
        );
      inst.dispose();
    } finally {
      capped.dispose();
    }
    const tiny = await sandbox(tier, { maxMemoryBytes: 65536 });
    try {
      // The interpreter refuses it at instantiation, the native tier already at load (its
      // instrumentation clamps the memory's maximum to the limit then): one step, one outcome.
      await t.step('a minimum over the sandbox limit', async () =>
        callOnce(tiny, await load(tiny, 'tenant_memory'), {}, 'answer'),
      );
    } finally {
      tiny.dispose();
    }
  },

  async direct_host(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'direct_host');
      const next = nb.capability((_m, i) => i * i, { params: ['i32'], results: ['i32'] });
      const mix = nb.capability((_m, a, b, c, d) => [a * 2n, b + c + d], {
        params: ['i64', 'f64', 'f32', 'i32'],
        results: ['i64', 'f64'],
      });
      const peek = nb.capability(async (mem, ptr) => (await mem.read(ptr, 1))[0], {
        params: ['i32'],
        results: ['i32'],
      });
      const inst = await sb.instantiate(mod, { imports: { env: { next, mix, peek } } });
      await t.step('run(50)', async () => callOf(await inst.call('run', [50])));
      for (const args of [
        [21n, 0.25, 1.5, 7],
        [-(2n ** 62n), -0, -0.1, -1],
        [0n, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31 - 1],
      ])
        await t.step(`mix(${args.map(value)})`, async () => callOf(await inst.call('mix', args)));
      await t.step('grow_and_peek()', async () => callOf(await inst.call('grow_and_peek')));
      inst.dispose();
    } finally {
      sb.dispose();
    }
  },

  async wasi_capability(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'wasi_capability');
      const double = nb.capability((_m, x) => x * 2, { params: ['i32'], results: ['i32'] });
      await t.step('runWasi with env.double', async () =>
        runOf(await sb.runWasi(mod, { imports: { env: { double } } })),
      );
      await t.step('runWasi without it', async () => runOf(await sb.runWasi(mod)));
    } finally {
      sb.dispose();
    }
  },

  async wasi_panic(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'wasi_panic');
      await t.step('runWasi', async () => runOf(await sb.runWasi(mod)));
      await t.step('runWasi with a 10-byte stdout cap', async () =>
        runOf(await sb.runWasi(mod, { limits: { maxStdoutBytes: 10 } })),
      );
    } finally {
      sb.dispose();
    }
  },

  async wasi_start_burn(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'wasi_start_burn');
      await t.step('runWasi', async () => runOf(await sb.runWasi(mod)));
      await t.step('runWasi with 100,000 fuel', async () => runOf(await sb.runWasi(mod, { fuel: 100_000 })));
    } finally {
      sb.dispose();
    }
  },

  async wasi_tenant(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'wasi_tenant');
      await t.step('runWasi', async () => runOf(await sb.runWasi(mod)));
      await t.step('runWasi spinning, 2M fuel', async () =>
        runOf(await sb.runWasi(mod, { args: ['wasi_tenant', 'spin'], fuel: 2_000_000 })),
      );
      await t.step('runWasi spinning, 300 ms', async () =>
        runOf(await sb.runWasi(mod, { args: ['wasi_tenant', 'spin'], timeoutMs: 300 })),
      );
      await t.step('runWasi with a 1-page memory limit', async () =>
        runOf(await sb.runWasi(mod, { maxMemoryBytes: 65536 })),
      );
    } finally {
      sb.dispose();
    }
  },

  async wasi_ticker(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'wasi_ticker');
      const chunks = [];
      await t.step('runWasi, streaming stdout', async () => ({
        ...runOf(await sb.runWasi(mod, { onStdout: (c) => chunks.push(text(c)) })),
        streamed: chunks.join(''),
      }));
      await t.step('runWasi, deterministic clocks', async () =>
        runOf(await sb.runWasi(mod, { deterministic: { seed: 1, startTimeNs: 0 } })),
      );
      await t.step('runWasi aborted while it sleeps', async () => {
        const controller = new AbortController();
        const running = sb.runWasi(mod, { signal: controller.signal });
        await sleep(120);
        controller.abort();
        // How many ticks it wrote by then is a matter of timing: the code only.
        return await running.then(runOf, (e) => ({ error: { code: e.code } }));
      });
    } finally {
      sb.dispose();
    }
  },
};

/** What the native tier refuses by design: the same steps on both tiers, compared by the test. */
const DIVERGENT = {
  /** The native tier cannot trap a `memory.grow` that the engine itself performs. */
  async 'tenant_memory with trapOnGrowFailure'(tier, t) {
    const sb = await sandbox(tier, { maxMemoryBytes: 4 * 65536, trapOnGrowFailure: true });
    try {
      const mod = await load(sb, 'tenant_memory');
      await t.step('grow(1), grow(10)', async () => {
        const inst = await sb.instantiate(mod);
        try {
          const first = callOf(await inst.call('grow', [1]));
          return { first, ...callOf(await inst.call('grow', [10])) };
        } finally {
          inst.dispose();
        }
      });
    } finally {
      sb.dispose();
    }
  },
  /** A call's trace records every host call from inside the interpreter. */
  async 'log_and_double with trace'(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'log_and_double');
      await t.step('run(21) traced', async () => {
        const logs = [];
        const inst = await sb.instantiate(mod, { imports: { env: { log: logCap(logs) } } });
        try {
          const r = await inst.call('run', [21], { trace: true });
          return { ...callOf(r), traced: r.trace !== undefined };
        } finally {
          inst.dispose();
        }
      });
    } finally {
      sb.dispose();
    }
  },
  /** The same for a WASI run. */
  async 'wasi_capability with trace'(tier, t) {
    const sb = await sandbox(tier);
    try {
      const mod = await load(sb, 'wasi_capability');
      const double = nb.capability((_m, x) => x * 2, { params: ['i32'], results: ['i32'] });
      await t.step('runWasi traced', async () => {
        const r = await sb.runWasi(mod, { imports: { env: { double } }, trace: true });
        return { ...runOf(r), traced: r.trace !== undefined };
      });
    } finally {
      sb.dispose();
    }
  },
};

export const divergences = () => Object.keys(DIVERGENT).sort();

/** Runs the divergent case `name` on `tier`; its transcript. */
export async function divergence(name, tier) {
  const t = transcript();
  if (!DIVERGENT[name]) throw new Error(`no divergent case ${name}`);
  await DIVERGENT[name](tier, t);
  return t.entries;
}

/** The fixtures that have a scenario here. */
export const scenarios = () => Object.keys(SCENARIOS).sort();

/** Runs the scenario of fixture `name` on `tier`; its transcript. */
export async function scenario(name, tier) {
  const t = transcript();
  if (!SCENARIOS[name]) throw new Error(`no scenario for ${name}`);
  await SCENARIOS[name](tier, t);
  return t.entries;
}
