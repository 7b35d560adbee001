// In-worker capability calls: `nestbox/worker` (/pkg/local.js) runs the core in this thread,
// so a syncCapability is called by the interpreter itself from inside the guest's call (the
// direct path: no step, no message passing). Next to it, the same guest in plain wasmi in
// the same build (`benchBareHostCalls`: no sandbox, the import a direct call of a JS
// function) — the floor, so the cost of nestbox's own layers shows as a ratio.
// Answers one message: { url, integrity, calls } → { perCallUs, bareUs, totalMs, result, expected }.
import { createLocalSandbox, syncCapability } from '/pkg/local.js';
import { benchBareHostCalls } from '/pkg/nestbox.js';

self.onmessage = async ({ data: { url, integrity, calls } }) => {
  try {
    const sb = await createLocalSandbox({ limits: { timeoutMs: 60_000 } });
    const mod = await sb.load(url, { integrity });
    const next = syncCapability((_mem, i) => i, { params: ['i32'], results: ['i32'] });
    const inst = await sb.instantiate(mod, { imports: { env: { next } } });
    await inst.call('run', [1_000]); // warm-up
    const t0 = performance.now();
    const { results, metrics } = await inst.call('run', [calls]);
    const totalMs = performance.now() - t0;
    sb.dispose();
    // host_loop sums next(i) = i for i in 0..calls, wrapping like an i32.
    const expected = Number(BigInt.asIntN(32, (BigInt(calls) * BigInt(calls - 1)) / 2n));

    // The bare baseline: the time of `calls` calls less that of none (compiling, instantiating).
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const host = { next: (i) => i };
    benchBareHostCalls(bytes, host, 1_000); // warm-up
    const b0 = performance.now();
    benchBareHostCalls(bytes, host, 0);
    const b1 = performance.now();
    const bare = benchBareHostCalls(bytes, host, calls);
    const b2 = performance.now();
    if (bare !== expected) throw new Error(`bare host_loop: got ${bare}, expected ${expected}`);
    self.postMessage({
      ok: true,
      totalMs,
      perCallUs: (totalMs * 1000) / calls,
      bareUs: (Math.max(0, b2 - b1 - (b1 - b0)) * 1000) / calls,
      result: results[0],
      expected,
      hostCalls: metrics.hostCalls,
    });
  } catch (e) {
    self.postMessage({ ok: false, error: `${e?.code ?? ''} ${e?.message ?? e}` });
  }
};
