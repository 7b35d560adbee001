// A worker the test page creates itself, running WASI guests through `nestbox/worker`
// (/pkg/local.js): async-iterable stdin, a source the guest never drains, streaming output,
// cancelling during a sleep, and an output callback that throws. Reports to the page.
import { createLocalSandbox } from '/pkg/local.js';

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

self.onmessage = async ({ data: { fx, stdio, sleep } }) => {
  const report = {};
  try {
    const sb = await createLocalSandbox();

    // stdin from an async generator, ten bytes at a time.
    const stdioMod = await sb.load(stdio.url, { integrity: stdio.integrity });
    const all = new Uint8Array(await (await fetch('/wasi/fixtures/stdin/hello.txt')).arrayBuffer());
    let pulls = 0;
    async function* chunks() {
      for (let i = 0; i < all.length; i += 10) {
        pulls++;
        await pause(1);
        yield all.slice(i, i + 10);
      }
    }
    const r = await sb.runWasi(stdioMod, { args: ['stdio'], stdin: chunks() });
    report.stdio = { exitCode: r.exitCode, stdout: r.stdoutText, pulls };

    // A source the guest never reads is stopped (`return()`) when the run ends.
    const sleepMod = await sb.load(sleep.url, { integrity: sleep.integrity });
    let returned = false;
    const endless = {
      [Symbol.asyncIterator]: () => ({
        next: async () => ({ done: false, value: 'x' }),
        return: async () => {
          returned = true;
          return { done: true, value: undefined };
        },
      }),
    };
    await sb.runWasi(sleepMod, { args: ['sleep', '0'], stdin: endless });
    report.stdio.returned = returned;

    // Output streams to onStdout while the guest sleeps between lines.
    const ticker = await sb.load(fx.wasi_ticker.url, { integrity: fx.wasi_ticker.integrity });
    const t0 = performance.now();
    let firstChunkAt;
    const t = await sb.runWasi(ticker, { onStdout: () => (firstChunkAt ??= performance.now() - t0) });
    report.ticker = { stdout: t.stdoutText, firstChunkAt, end: performance.now() - t0 };

    // Cancelling during a 10 s sleep.
    const controller = new AbortController();
    const running = sb.runWasi(sleepMod, { args: ['sleep', '10000'], signal: controller.signal }).catch((e) => e);
    await pause(300);
    const t1 = performance.now();
    controller.abort();
    const cancelled = await running;
    report.cancelled = { code: cancelled.code, latency: performance.now() - t1 };

    // An output callback that throws ends the run with HOST_ERROR.
    const throwing = await sb
      .runWasi(ticker, {
        onStdout: () => {
          throw new Error('no thanks');
        },
      })
      .catch((e) => e);
    report.throwing = { code: throwing.code, message: throwing.message, cause: throwing.details?.cause };
    sb.dispose();
  } catch (e) {
    report.error = `${e?.code ?? ''} ${e?.message ?? e}`;
  }
  self.postMessage(report);
};
