// Cancellation and deadlines: an AbortSignal stops an infinite loop within a slice without
// killing the worker; timeoutMs is enforced by the core between slices; a host function that
// never settles is abandoned at the deadline; a worker that stops answering is replaced by
// the watchdog — and in every case the sandbox stays usable.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openBrowser } from './harness.mjs';

let browser;
before(async () => {
  browser = await openBrowser();
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

test('AbortSignal cancels an infinite loop within a few ms, and the worker lives on', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    const latencies = [];
    let last;
    for (let i = 0; i < 5; i++) {
      const inst = await sb.instantiate(mod);
      const controller = new AbortController();
      const running = window.caught(inst.call('spin', [], { signal: controller.signal }));
      await new Promise((r) => setTimeout(r, 100));
      const t0 = performance.now();
      controller.abort();
      last = await running;
      latencies.push(performance.now() - t0);
      const poisoned = await window.caught(inst.call('answer'));
      if (poisoned.code !== 'POISONED') return { unexpected: poisoned };
      inst.dispose();
    }
    const fresh = await sb.instantiate(mod);
    const answer = (await fresh.call('answer')).results[0];
    const stats = sb.stats;
    sb.dispose();
    return { latencies, last, answer, stats };
  });
  assert.equal(out.unexpected, undefined);
  assert.equal(out.last.code, 'CANCELLED');
  assert.ok(out.last.details.metrics.slices > 1, 'the loop ran in slices');
  assert.equal(out.answer, 42);
  assert.equal(out.stats.workerRestarts, 0, 'cancelled without terminating the worker');
  const max = Math.max(...out.latencies);
  console.log(
    `cancel latency (abort() → rejection), 5 runs: ${out.latencies.map((l) => l.toFixed(1)).join(', ')} ms; max ${max.toFixed(1)} ms`,
  );
  assert.ok(max < 500, `cancel took ${max} ms`);
});

test('timeoutMs ends an infinite loop with TIMEOUT (core-enforced, worker kept)', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox({ limits: { timeoutMs: 5_000 } });
    const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    const inst = await sb.instantiate(mod);
    const t0 = performance.now();
    const r = await window.caught(inst.call('spin', [], { timeoutMs: 200 }));
    const ms = performance.now() - t0;
    const sandboxLimit = await window.caught((await sb.instantiate(mod)).call('spin'));
    const stats = sb.stats;
    sb.dispose();
    return { r, ms, stats, sandboxLimit: sandboxLimit.code };
  });
  assert.equal(out.r.code, 'TIMEOUT');
  assert.equal(out.r.details.limit, 200);
  assert.equal(out.r.details.workerRestarted, undefined);
  assert.equal(out.stats.workerRestarts, 0);
  assert.equal(out.sandboxLimit, 'TIMEOUT');
  console.log(`timeoutMs 200 → TIMEOUT after ${out.ms.toFixed(0)} ms`);
  assert.ok(out.ms >= 200 && out.ms < 1_000, `${out.ms} ms`);
});

test('a host function that never settles: TIMEOUT at the deadline, the sandbox stays usable', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox({ limits: { timeoutMs: 300 } });
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    let abortedReason;
    const stuck = nb.capability(
      (mem) =>
        new Promise(() => {
          mem.signal.addEventListener('abort', () => (abortedReason ??= mem.signal.reason?.code));
        }),
      { params: ['i32', 'i32'], results: [] },
    );
    const inst = await sb.instantiate(mod, { imports: { env: { log: stuck } } });
    const t0 = performance.now();
    const r = await window.caught(inst.call('run', [1]));
    const ms = performance.now() - t0;
    const quick = nb.capability(() => {}, { params: ['i32', 'i32'], results: [] });
    const after = (await (await sb.instantiate(mod, { imports: { env: { log: quick } } })).call('run', [4])).results[0];
    // Cancelling while a host function hangs ends the call at once too.
    const inst2 = await sb.instantiate(mod, { imports: { env: { log: stuck } } });
    const controller = new AbortController();
    const running = window.caught(inst2.call('run', [1], { signal: controller.signal }));
    await new Promise((r) => setTimeout(r, 50));
    const t1 = performance.now();
    controller.abort();
    const cancelled = await running;
    const cancelMs = performance.now() - t1;
    const stats = sb.stats;
    sb.dispose();
    return { r, ms, after, abortedReason, stats, cancelled, cancelMs };
  });
  assert.equal(out.r.code, 'TIMEOUT');
  assert.equal(out.r.details.import, 'env.log');
  assert.equal(out.r.details.metrics.hostCalls, 1);
  assert.equal(out.abortedReason, 'TIMEOUT', "the host function's signal says why its call ended");
  assert.equal(out.after, 8);
  assert.equal(out.stats.workerRestarts, 0, 'no need to kill the worker: it was only waiting');
  assert.equal(out.cancelled.code, 'CANCELLED');
  console.log(
    `never-settling host function: TIMEOUT after ${out.ms.toFixed(0)} ms (timeoutMs 300); cancel while it hangs: ${out.cancelMs.toFixed(1)} ms`,
  );
  assert.ok(out.ms >= 290 && out.ms < 1_000, `${out.ms} ms`);
  assert.ok(out.cancelMs < 500);
});

test('a worker that stops answering: the watchdog replaces it, TIMEOUT, modules reload, old instances say WORKER_CRASHED', async () => {
  // tests/browser/pages/evil-worker.js hangs for good on a call of `__hang`.
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox({
      workerUrl: '/tests/evil-worker.js',
      watchdogGraceMs: 200,
      limits: { timeoutMs: 2_000 },
    });
    const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    const old = await sb.instantiate(mod);
    const t0 = performance.now();
    const hung = await window.caught(old.call('__hang', [], { timeoutMs: 200 }));
    const ms = performance.now() - t0;
    const oldAgain = await window.caught(old.call('answer'));
    const fresh = await sb.instantiate(mod); // the module is loaded into the new worker first
    const answer = (await fresh.call('answer')).results[0];
    const stats = sb.stats;
    const alive = { sandbox: sb.alive, old: old.alive, fresh: fresh.alive };
    sb.dispose();
    return { hung, ms, oldAgain, answer, stats, alive };
  });
  assert.equal(out.hung.code, 'TIMEOUT');
  assert.equal(out.hung.details.workerRestarted, true);
  assert.equal(out.oldAgain.code, 'WORKER_CRASHED');
  assert.match(out.oldAgain.message, /instantiate the module again/);
  assert.equal(out.answer, 42);
  assert.equal(out.stats.workerRestarts, 1);
  assert.deepEqual(out.alive, { sandbox: true, old: false, fresh: true });
  console.log(`stuck worker: watchdog TIMEOUT after ${out.ms.toFixed(0)} ms (timeoutMs 200 + grace 200)`);
  assert.ok(out.ms >= 390 && out.ms < 1_500, `${out.ms} ms`);
});
