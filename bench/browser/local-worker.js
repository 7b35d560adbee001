// In-worker capability calls: `nestbox/worker` (/pkg/local.js) runs the core in this thread,
// so a syncCapability is a plain function call from the call loop — no message passing.
// Answers one message: { url, integrity, calls } → { perCallUs, totalMs, result, expected }.
import { createLocalSandbox, syncCapability } from '/pkg/local.js';

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
    self.postMessage({
      ok: true,
      totalMs,
      perCallUs: (totalMs * 1000) / calls,
      result: results[0],
      expected,
      hostCalls: metrics.hostCalls,
    });
  } catch (e) {
    self.postMessage({ ok: false, error: `${e?.code ?? ''} ${e?.message ?? e}` });
  }
};
