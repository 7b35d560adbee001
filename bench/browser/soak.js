// The soak's page side (bench/browser/soak.mjs): rounds of many sandboxes, each in its own
// worker with its own capability, each making many capability calls in one guest call, then
// all disposed; and the page's and workers' memory, during and between rounds.
import * as nb from '/pkg/index.js';

/** The sandboxes of the round in progress. */
let live = [];

/**
 * A round's first half: `sandboxes` sandboxes created at once, each with its own
 * capability, each calling it `calls` times (host_loop) concurrently with the others. They
 * stay alive until {@link finish}, so their memory can be measured.
 */
export async function start(guest, { sandboxes, calls }) {
  const t0 = performance.now();
  let answered = 0;
  live = await Promise.all(
    Array.from({ length: sandboxes }, async () => {
      const sb = await nb.createSandbox();
      const mod = await sb.load(guest.url, { integrity: guest.integrity });
      const next = nb.capability(() => (answered++, 1), { params: ['i32'], results: ['i32'] });
      const inst = await sb.instantiate(mod, { imports: { env: { next } } });
      return { sb, inst };
    }),
  );
  const t1 = performance.now();
  const results = await Promise.all(live.map(({ inst }) => inst.call('run', [calls])));
  const t2 = performance.now();
  const wrong = results.filter((r) => r.results[0] !== calls || r.metrics.hostCalls !== calls).length;
  const restarts = live.reduce((n, { sb }) => n + sb.stats.workerRestarts, 0);
  return { createMs: t1 - t0, callMs: t2 - t1, answered, wrong, restarts };
}

/**
 * A round's second half: every sandbox disposed (their workers terminated), then a second
 * for the terminations to finish: a measurement that starts while a worker is still being torn
 * down waits for that worker's answer until Chromium's own timeout (about a minute).
 */
export async function finish() {
  for (const { sb } of live) sb.dispose();
  live = [];
  await new Promise((resolve) => setTimeout(resolve, 1_000));
}

/**
 * Memory now: `performance.measureUserAgentSpecificMemory()` (cross-origin isolated pages
 * only), its bytes split into the page (Window) and its dedicated workers; and
 * `performance.memory.usedJSHeapSize` (the page's JS heap) as a second opinion.
 */
export async function measure() {
  globalThis.gc?.();
  const out = { crossOriginIsolated: globalThis.crossOriginIsolated === true };
  if (typeof performance.measureUserAgentSpecificMemory === 'function') {
    try {
      const m = await performance.measureUserAgentSpecificMemory();
      let page = 0;
      let workers = 0;
      let other = 0;
      for (const entry of m.breakdown) {
        const scopes = entry.attribution.map((a) => a.scope);
        if (scopes.includes('DedicatedWorkerGlobalScope')) workers += entry.bytes;
        else if (scopes.includes('Window')) page += entry.bytes;
        else other += entry.bytes;
      }
      out.uasm = { bytes: m.bytes, page, workers, other };
    } catch (e) {
      out.uasmError = String(e);
    }
  } else {
    out.uasmError = 'performance.measureUserAgentSpecificMemory is not available';
  }
  out.jsHeapUsed = performance.memory?.usedJSHeapSize;
  return out;
}
