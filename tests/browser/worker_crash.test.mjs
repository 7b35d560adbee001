// A worker that crashes (an `error` event) or whose core panics (`fatal`): the call in
// flight gets WORKER_CRASHED, the page replaces the worker, the sandbox stays usable, and the
// instances that lived in the dead worker say so.
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

for (const trigger of ['__crash', '__panic']) {
  test(`${trigger === '__crash' ? 'an uncaught error in the worker' : 'a core panic'}: WORKER_CRASHED, then recovery`, async () => {
    // tests/browser/pages/evil-worker.js: `__crash` throws an uncaught error in the worker;
    // `__panic` makes Core.start throw a non-record (what a Rust panic looks like).
    const out = await browser.page.evaluate(async (trigger) => {
      const { nb, fx } = window;
      const sb = await nb.createSandbox({ workerUrl: '/tests/evil-worker.js' });
      const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      const a = await sb.instantiate(mod);
      const b = await sb.instantiate(mod);
      const running = window.caught(b.call('spin', [], { timeoutMs: 10_000 }));
      await new Promise((r) => setTimeout(r, 50));
      const crashed = await window.caught(a.call(trigger));
      const bystander = await running;
      const lost = await window.caught(a.call('answer'));
      const fresh = await sb.instantiate(mod);
      const answer = (await fresh.call('answer')).results[0];
      const stats = sb.stats;
      sb.dispose();
      return { crashed, bystander, lost, answer, stats };
    }, trigger);
    assert.equal(out.crashed.code, 'WORKER_CRASHED');
    assert.equal(out.crashed.details.workerRestarted, true);
    assert.equal(out.bystander.code, 'WORKER_CRASHED', 'the other call in that worker ends too');
    assert.equal(out.lost.code, 'WORKER_CRASHED');
    assert.equal(out.answer, 42);
    assert.equal(out.stats.workerRestarts, 1);
  });
}

test('a worker script that cannot be loaded: createSandbox rejects with WORKER_CRASHED', async () => {
  const out = await browser.page.evaluate(async () =>
    window.caught(window.nb.createSandbox({ workerUrl: '/tests/no-such-worker.js' })),
  );
  assert.equal(out.code, 'WORKER_CRASHED');
});
