// A worker the test page creates itself: it uses the `nestbox/worker` entry (/pkg/local.js),
// which runs the core right in this thread with synchronous host functions, and reports
// what happened to the page.
import { capability, createLocalSandbox, syncCapability } from '/pkg/local.js';

const describe = (e) => ({
  code: e?.code,
  message: e?.message,
  trapCode: e?.details?.trapCode,
  denials: e?.details?.metrics?.denials,
});

self.onmessage = async ({ data: fx }) => {
  const report = {};
  try {
    const sb = await createLocalSandbox({ limits: { timeoutMs: 5_000 } });
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });

    // A synchronous host function with the synchronous view.
    const seen = [];
    const log = syncCapability(
      (mem, ptr, len) => {
        seen.push(mem.readString(ptr, len));
        mem.writeString(ptr, 'HELLO', len);
      },
      { params: ['i32', 'i32'], results: [] },
    );
    const inst = await sb.instantiate(mod, { imports: { env: { log } } });
    const t0 = performance.now();
    const run = await inst.call('run', [21]);
    report.syncCallMs = performance.now() - t0;
    report.run = run.results;
    report.hostCalls = run.metrics.hostCalls;
    report.seen = seen;
    report.after = new TextDecoder().decode(inst.memory.read(16, 5));

    // 1,000 synchronous host calls in one guest call.
    const loop = await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
    const next = syncCapability((_mem, i) => i, { params: ['i32'], results: ['i32'] });
    const looping = await sb.instantiate(loop, { imports: { env: { next } } });
    const t1 = performance.now();
    report.loop = (await looping.call('run', [1000])).results[0];
    report.loopMs = performance.now() - t1;

    // A capability from the main entry (async view) works here too.
    const asyncLog = capability(async (mem, ptr, len) => void seen.push(await mem.readString(ptr, len)), {
      params: ['i32', 'i32'],
      results: [],
    });
    await (await sb.instantiate(mod, { imports: { env: { log: asyncLog } } })).call('run', [1]);

    // Out of bounds with the synchronous view.
    const oob = await sb.load(fx.oob_pointer.url, { integrity: fx.oob_pointer.integrity });
    const naive = syncCapability((mem, ptr, len) => void mem.read(ptr, len), { params: ['i32', 'i32'], results: [] });
    try {
      await (await sb.instantiate(oob, { imports: { env: { log: naive } } })).call('run');
    } catch (e) {
      report.oob = describe(e);
    }

    // Cancelling an infinite loop from this thread's own event loop.
    const spin = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    const spinner = await sb.instantiate(spin);
    const controller = new AbortController();
    let abortedAt = 0;
    setTimeout(() => {
      abortedAt = performance.now();
      controller.abort();
    }, 100);
    try {
      await spinner.call('spin', [], { signal: controller.signal });
    } catch (e) {
      report.cancelled = describe(e);
      report.cancelMs = performance.now() - abortedAt;
    }
    try {
      await (await sb.instantiate(spin)).call('spin', [], { timeoutMs: 100 });
    } catch (e) {
      report.timeout = describe(e);
    }

    // BUSY and DISPOSED.
    const busyOne = await sb.instantiate(spin);
    const stop = new AbortController();
    const running = busyOne.call('spin', [], { signal: stop.signal }).catch((e) => e);
    try {
      await busyOne.call('answer');
    } catch (e) {
      report.busy = describe(e);
    }
    stop.abort();
    await running;
    report.stats = sb.stats;
    sb.dispose();
    try {
      await inst.call('run', [1]);
    } catch (e) {
      report.disposed = describe(e);
    }
    report.seenAll = seen;
  } catch (e) {
    report.error = String(e?.stack ?? e);
  }
  self.postMessage(report);
};
