// The browser benchmark's measurements, run in the page by bench/browser/run.mjs. Each
// export takes the guests' manifest (`{ name: { url, integrity } }`) and returns plain data.
// Nothing here asserts a speed: the numbers are printed. Results are checked, though: a fast
// wrong answer is not a measurement.
import { capability, createSandbox, createWorkerPool } from '/pkg/index.js';

const now = () => performance.now();
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const check = (what, actual, expected) => {
  if (String(actual) !== String(expected)) throw new Error(`${what}: got ${actual}, expected ${expected}`);
};

/** Sandboxes kept between steps (the cold-start ones are reused by later steps). */
const sandboxes = [];

/**
 * createSandbox → load → instantiate (one capability) → first call's result, for a new
 * sandbox (a new worker: the page compiles nestbox_bg.wasm once, the first time, and sends
 * the compiled module to every worker). `keep`: the sandbox stays for later steps.
 */
export async function coldStart(fx, keep = true) {
  const t0 = now();
  const sb = await createSandbox({ limits: { timeoutMs: 60_000 } });
  const t1 = now();
  const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
  const t2 = now();
  const log = capability(async () => {}, { params: ['i32', 'i32'], results: [] });
  const inst = await sb.instantiate(mod, { imports: { env: { log } } });
  const t3 = now();
  const { results } = await inst.call('run', [21]);
  const t4 = now();
  check('log_and_double run(21)', results[0], 42);
  inst.dispose();
  if (keep) sandboxes.push(sb);
  else sb.dispose();
  return { totalMs: t4 - t0, createMs: t1 - t0, loadMs: t2 - t1, instantiateMs: t3 - t2, callMs: t4 - t3 };
}

/** {@link coldStart} `runs` times more, each a new sandbox (disposed after): medians. */
export async function nextColdStarts(fx, runs) {
  const all = [];
  for (let i = 0; i < runs; i++) {
    all.push(await coldStart(fx, false));
    await sleep(20); // the disposed worker's teardown is not the next one's start
  }
  const out = {};
  for (const key of Object.keys(all[0])) out[key] = median(all.map((r) => r[key]));
  out.minTotalMs = Math.min(...all.map((r) => r.totalMs));
  out.maxTotalMs = Math.max(...all.map((r) => r.totalMs));
  return out;
}

/**
 * A guest's `load` (bytes given: no fetch) in sandboxes of one shared worker: compiled
 * (each sandbox with another `maxRecursionDepth`, so another engine configuration: a cache
 * miss) and cached (the same limits as a sandbox that loaded it: a hit, marked `cached` in
 * its audit log). Medians of `runs`.
 */
export async function guestLoad(fx, name, runs) {
  const bytes = new Uint8Array(await (await fetch(fx[name].url)).arrayBuffer());
  const integrity = fx[name].integrity;
  const pool = createWorkerPool();
  try {
    const timed = async (limits) => {
      const sb = await createSandbox({ worker: pool, limits });
      const t0 = now();
      await sb.load(bytes, { integrity });
      const ms = now() - t0;
      const load = (await sb.audit.entries()).findLast((e) => e.event === 'load');
      sb.dispose();
      return { ms, cached: load?.extra?.cached === 'true' };
    };
    const compiled = [];
    const cached = [];
    for (let i = 0; i < runs; i++) {
      const miss = await timed({ maxRecursionDepth: 5_000 + i });
      check(`${name} load with new limits is cached`, miss.cached, false);
      compiled.push(miss.ms);
      const hit = await timed({ maxRecursionDepth: 5_000 + i });
      check(`${name} load with the same limits is cached`, hit.cached, true);
      cached.push(hit.ms);
    }
    return { sizeBytes: bytes.length, compiledMs: median(compiled), cachedMs: median(cached) };
  } finally {
    pool.dispose();
  }
}

/** One capability call from the guest to a host function on this page, per call. */
export async function pageCapability(fx, calls) {
  const sb = sandboxes[0];
  const mod = await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
  const next = capability((_mem, i) => i, { params: ['i32'], results: ['i32'] });
  const inst = await sb.instantiate(mod, { imports: { env: { next } } });
  await inst.call('run', [100]); // warm-up
  const t0 = now();
  const { results, metrics } = await inst.call('run', [calls]);
  const totalMs = now() - t0;
  check('host_loop hostCalls', metrics.hostCalls, calls);
  check('host_loop run', results[0], Number(BigInt.asIntN(32, (BigInt(calls) * BigInt(calls - 1)) / 2n)));
  inst.dispose();
  return { totalMs, perCallUs: (totalMs * 1000) / calls };
}

/** The same through nestbox/worker in a worker of this page: a synchronous capability. */
export async function workerCapability(fx, calls) {
  const worker = new Worker('./local-worker.js', { type: 'module' });
  try {
    const reply = await new Promise((resolve, reject) => {
      worker.onmessage = ({ data }) => resolve(data);
      worker.onerror = (e) => reject(new Error(`local-worker: ${e.message}`));
      worker.postMessage({
        url: new URL(fx.host_loop.url, location.href).href,
        integrity: fx.host_loop.integrity,
        calls,
      });
    });
    if (!reply.ok) throw new Error(`local-worker: ${reply.error}`);
    check('host_loop run (in worker)', reply.result, reply.expected);
    check('host_loop hostCalls (in worker)', reply.hostCalls, calls);
    return { totalMs: reply.totalMs, perCallUs: reply.perCallUs, bareUs: reply.bareUs };
  } finally {
    worker.terminate();
  }
}

/** A bare postMessage round trip main ↔ worker (an echo worker), per round trip. */
export async function postMessageRoundTrip(trips) {
  const worker = new Worker('./echo-worker.js', { type: 'module' });
  try {
    const once = (i) =>
      new Promise((resolve) => {
        worker.onmessage = ({ data }) => resolve(data);
        worker.postMessage({ type: 'ping', id: i });
      });
    for (let i = 0; i < 100; i++) await once(i); // warm-up (and the worker's start)
    const t0 = now();
    for (let i = 0; i < trips; i++) await once(i);
    const totalMs = now() - t0;
    return { totalMs, perTripUs: (totalMs * 1000) / trips };
  } finally {
    worker.terminate();
  }
}

/** abort() → the call's CANCELLED rejection, on an infinite loop that has run `runMs`. */
export async function cancelLatency(fx, runs, runMs) {
  const sb = sandboxes[0];
  const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
  const latencies = [];
  for (let i = 0; i < runs; i++) {
    const inst = await sb.instantiate(mod);
    const controller = new AbortController();
    const running = inst.call('spin', [], { signal: controller.signal }).then(
      () => 'resolved',
      (e) => e.code,
    );
    await sleep(runMs);
    const t0 = now();
    controller.abort();
    const code = await running;
    latencies.push(now() - t0);
    check('spin after abort()', code, 'CANCELLED');
    inst.dispose();
  }
  return { medianMs: median(latencies), minMs: Math.min(...latencies), maxMs: Math.max(...latencies) };
}

/**
 * `runs` timed calls of `call()` (each resolving to `{ result, ... }`) after one untimed
 * warm-up: V8 starts wasm in its baseline tier (Liftoff) and optimizes a hot function in the
 * background, and the comparison is with its optimized code. Every call must give the
 * warm-up's result. Median, min and max wall ms (as the page sees it) and the last call's data.
 */
async function timedCalls(what, call, runs) {
  const first = await call();
  await sleep(100);
  const times = [];
  let last = first;
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    last = await call();
    times.push(now() - t0);
    check(`${what}, call ${i + 1} vs the first`, last.result, first.result);
  }
  return { ...last, ms: median(times), minMs: Math.min(...times), maxMs: Math.max(...times) };
}

/** The plain column: the uninstrumented module in a worker of its own (plain-worker.js). */
async function plainKernel(fx, name, exportName, args, runs) {
  const worker = new Worker('./plain-worker.js');
  const ask = (message) =>
    new Promise((resolve, reject) => {
      worker.onmessage = ({ data }) => (data.ok ? resolve(data) : reject(new Error(`plain-worker: ${data.error}`)));
      worker.onerror = (e) => reject(new Error(`plain-worker: ${e.message}`));
      worker.postMessage(message);
    });
  try {
    await ask({ op: 'compile', url: new URL(fx[name].url, location.href).href });
    return await timedCalls(`${exportName}(${args}) plain`, () => ask({ op: 'call', exportName, args }), runs);
  } finally {
    worker.terminate();
  }
}

/**
 * A nestbox column: `options` for createSandbox (`{}` is the interpreter, `{ engine: 'native' }`
 * the native tier); a new instance for every call, the call alone timed. When the sandbox or
 * the load is refused (no native tier in this build, no JSPI in this browser) the column is
 * `{ unavailable }` with the error's code and message.
 */
async function nestboxKernel(fx, name, exportName, args, runs, options) {
  let sb;
  let mod;
  try {
    sb = await createSandbox({ ...options, limits: { timeoutMs: 120_000 } });
    mod = await sb.load(fx[name].url, { integrity: fx[name].integrity });
  } catch (e) {
    sb?.dispose();
    return { unavailable: `${e.code ?? e.name}: ${e.message}` };
  }
  try {
    const call = async () => {
      const inst = await sb.instantiate(mod);
      try {
        const { results, metrics } = await inst.call(exportName, args);
        return { result: String(results[0]), fuel: metrics.fuelConsumed, coreMs: metrics.wallTimeUs / 1000 };
      } finally {
        inst.dispose();
      }
    };
    return await timedCalls(`${exportName}(${args}) ${JSON.stringify(options)}`, call, runs);
  } finally {
    sb.dispose();
  }
}

/**
 * One compute kernel in three columns, each in a dedicated worker: the plain module on the
 * browser's engine, nestbox's native tier (the instrumented module on the same engine) and
 * nestbox's interpreter. Results are strings (checksums); run.mjs compares the columns.
 */
export async function kernel(fx, name, exportName, args, runs) {
  const plain = await plainKernel(fx, name, exportName, args, runs);
  const native = await nestboxKernel(fx, name, exportName, args, runs, { engine: 'native' });
  const interpreter = await nestboxKernel(fx, name, exportName, args, runs, {});
  return { plain, native, interpreter };
}

/** Disposes the sandboxes this page made. */
export function disposeAll() {
  for (const sb of sandboxes.splice(0)) sb.dispose();
}
