// A worker the trace test creates: `nestbox/worker` (/pkg/local.js) records traces too — a
// numeric call with a synchronous capability, and a WASI run — and reports them to the page.
import { createLocalSandbox, spansOf, syncCapability } from '/pkg/local.js';

self.onmessage = async ({ data: fx }) => {
  try {
    const sb = await createLocalSandbox();
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const log = syncCapability(() => undefined, { params: ['i32', 'i32'], results: [] });
    const inst = await sb.instantiate(mod, { imports: { env: { log } } });
    const call = await inst.call('run', [21], { trace: true });
    const plain = await inst.call('run', [21]);
    const wasiMod = await sb.load(fx.wasi_capability.url, { integrity: fx.wasi_capability.integrity });
    const double = syncCapability((_mem, x) => x * 2, { params: ['i32'], results: ['i32'] });
    const wasi = await sb.runWasi(wasiMod, { imports: { env: { double } }, trace: { maxSpans: 50 } });
    self.postMessage({
      call: spansOf(call.trace).map((s) => [s.name, s.parentSpanId === '' ? 'root' : 'child']),
      plainHasTrace: 'trace' in plain,
      wasi: spansOf(wasi.trace).map((s) => s.name),
      exitCode: wasi.exitCode,
    });
  } catch (e) {
    self.postMessage({ error: `${e?.code}: ${e?.message}` });
  }
};
