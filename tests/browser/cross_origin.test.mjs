// The package served from another origin (a CDN): the test server is also
// http://localhost:PORT, a second origin next to the page's http://127.0.0.1:PORT, and answers
// with `Access-Control-Allow-Origin: *` as a CDN must. A browser refuses `new Worker()` for a
// script of another origin; nestbox starts the worker from a `blob:` module that imports it, so
// the worker's nestbox.js and nestbox_bg.wasm load from the CDN. A page whose CSP forbids blob:
// workers gets a SandboxError (WORKER_CRASHED) naming the directive, never a raw SecurityError;
// a page with the CSP the README documents runs the guest.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chromiumOnly, openBrowser } from './harness.mjs';

let browser;
before(async () => {
  browser = await openBrowser();
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

test('the two origins really are different: a plain new Worker of the other origin fails', async () => {
  // Chromium throws a SecurityError; Firefox creates the worker and fires `error`.
  const out = await browser.page.evaluate(async (url) => {
    try {
      const worker = new Worker(url, { type: 'module' });
      return await new Promise((resolve) => {
        const end = (how) => {
          worker.terminate();
          resolve(how);
        };
        worker.onerror = () => end('error event');
        worker.onmessage = () => end('it ran');
        setTimeout(() => end('silent'), 10_000);
      });
    } catch (e) {
      return e.name;
    }
  }, `${browser.otherBase}/pkg/worker.js`);
  assert.ok(['SecurityError', 'error event'].includes(out), out);
});

test('workerUrl on another origin: the worker starts from a blob: bootstrap and runs the guest', async () => {
  const out = await browser.page.evaluate(async (workerUrl) => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox({ workerUrl });
    const log = [];
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const cap = nb.capability(async (mem, ptr, len) => void log.push(await mem.readString(ptr, len)), {
      params: ['i32', 'i32'],
      results: [],
    });
    const inst = await sb.instantiate(mod, { imports: { env: { log: cap } } });
    const { results } = await inst.call('run', [21]);
    // The watchdog and the replacement work for such a worker too.
    const spin = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    const cancelled = await window.caught(
      (await sb.instantiate(spin)).call('spin', [], { signal: AbortSignal.timeout(50), timeoutMs: 10_000 }),
    );
    const stats = sb.stats;
    sb.dispose();
    return { results, log, cancelled: cancelled.code, stats };
  }, `${browser.otherBase}/pkg/worker.js`);
  assert.deepEqual(out.results, [42]);
  assert.deepEqual(out.log, ['hello from the guest']);
  assert.equal(out.cancelled, 'CANCELLED');
  assert.equal(out.stats.workerRestarts, 0);
});

test('the package itself imported from another origin: its default worker starts from a blob: bootstrap', async () => {
  const out = await browser.page.evaluate(async (base) => {
    const { fx } = window;
    const cdn = await import(`${base}/pkg/index.js`);
    const sb = await cdn.createSandbox();
    const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    const { results } = await (await sb.instantiate(mod)).call('answer');
    sb.dispose();
    return results;
  }, browser.otherBase);
  assert.deepEqual(out, [42]);
});

test('a cross-origin worker that is not there: WORKER_CRASHED', async () => {
  const out = await browser.page.evaluate(
    (workerUrl) => window.caught(window.nb.createSandbox({ workerUrl })),
    `${browser.otherBase}/pkg/no-such-worker.js`,
  );
  assert.equal(out.code, 'WORKER_CRASHED');
  assert.equal(out.isSandboxError, true);
  // The message says what a cross-origin worker needs.
  assert.match(out.message, /no-such-worker\.js\) did not load from its blob: bootstrap/);
  assert.match(out.message, /Access-Control-Allow-Origin/);
});

async function cspPage(t, name) {
  if (chromiumOnly(t, 'opens extra pages with playwright')) return undefined;
  const page = await browser.page.context().newPage();
  t.after(() => page.close());
  await page.goto(`${browser.base}/tests/${name}`);
  await page.waitForFunction(() => window.ready === true || window.loadError !== undefined, null, { timeout: 10_000 });
  assert.equal(await page.evaluate(() => window.loadError), undefined);
  return page;
}

test('a page whose CSP forbids blob: workers: a SandboxError naming worker-src, not a raw SecurityError', async (t) => {
  const page = await cspPage(t, 'csp-blocked.html');
  if (page === undefined) return;
  const fx = await browser.page.evaluate(() => window.fx.spin);
  const out = await page.evaluate(([url, fx]) => window.runWith(url, fx), [`${browser.otherBase}/pkg/worker.js`, fx]);
  assert.equal(out.code, 'WORKER_CRASHED', JSON.stringify(out));
  assert.equal(out.isSandboxError, true);
  assert.equal(out.name, 'SandboxError');
  assert.match(out.message, /Content-Security-Policy refused it \(worker-src, policy "default-src 'self'; /);
  assert.match(out.message, /allow worker-src blob: http:\/\/localhost:\d+\)$/);
  // Chromium throws nothing there: it reports the violation (the cause) and fails the worker.
  // A browser that throws a SecurityError from `new Worker` gets the same code and that cause.
  assert.match(out.cause ?? '', /^securitypolicyviolation: worker-src$|^SecurityError/);
  // Same-origin workers are still allowed by that policy.
  assert.deepEqual(await page.evaluate(([url, fx]) => window.runWith(url, fx), ['/pkg/worker.js', fx]), {
    results: [42],
  });
});

test('a page with the CSP the README documents runs a guest in a worker from another origin', async (t) => {
  const page = await cspPage(t, 'csp-allowed.html');
  if (page === undefined) return;
  const fx = await browser.page.evaluate(() => window.fx.spin);
  const out = await page.evaluate(([url, fx]) => window.runWith(url, fx), [`${browser.otherBase}/pkg/worker.js`, fx]);
  assert.deepEqual(out, { results: [42] });
});
