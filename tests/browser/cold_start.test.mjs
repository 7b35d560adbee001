// Cold start: the page compiles nestbox_bg.wasm once and sends the compiled module to every
// worker it starts (hello → boot → ready); a compile that fails ends createSandbox with
// WORKER_CRASHED and is not kept; a worker given something else than nestbox's module fails
// closed; guests loaded again in a worker reuse their verified, compiled module.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openBrowser } from './harness.mjs';

const WASM = '/pkg/nestbox_bg.wasm';
let browser;
before(async () => {
  browser = await openBrowser();
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

/** A fresh page: nothing compiled yet, no workers. */
async function freshPage() {
  await browser.page.goto(`${browser.base}/tests/index.html`);
  await browser.page.waitForFunction(() => window.ready === true || window.loadError !== undefined);
}

/** Creates `n` sandboxes with `options`, runs a call in each, disposes them: the answers. */
function runSandboxes(n, options = {}) {
  return browser.page.evaluate(
    async ({ n, options }) => {
      const { nb, fx } = window;
      const pool = options.pool ? nb.createWorkerPool() : undefined;
      const answers = [];
      for (let i = 0; i < n; i++) {
        const sb = await nb.createSandbox(pool ? { worker: pool } : options.sandbox);
        const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
        const inst = await sb.instantiate(mod);
        answers.push((await inst.call('answer')).results[0]);
        sb.dispose();
      }
      pool?.dispose();
      return answers;
    },
    { n, options },
  );
}

test('nestbox_bg.wasm is fetched once per page, for any number of workers', async () => {
  await freshPage();
  const before = browser.served(WASM);
  // Several at once (the compile is shared while in flight), then one after another, then
  // a shared pool, then a custom workerUrl next to the same wasm.
  const concurrent = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sandboxes = await Promise.all([1, 2, 3].map(() => nb.createSandbox()));
    const answers = [];
    for (const sb of sandboxes) {
      const inst = await sb.instantiate(await sb.load(fx.spin.url, { integrity: fx.spin.integrity }));
      answers.push((await inst.call('answer')).results[0]);
      sb.dispose();
    }
    return answers;
  });
  assert.deepEqual(concurrent, [42, 42, 42]);
  assert.deepEqual(await runSandboxes(3), [42, 42, 42]);
  assert.deepEqual(await runSandboxes(2, { pool: true }), [42, 42]);
  assert.deepEqual(await runSandboxes(1, { sandbox: { workerUrl: '/pkg/worker.js' } }), [42]);
  assert.equal(browser.served(WASM) - before, 1, 'one fetch of nestbox_bg.wasm for 9 sandboxes in 8 workers');
});

test('a replaced worker gets the same module: no new fetch', async () => {
  const before = browser.served(WASM);
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    // One slice as large as the whole budget: the loop never yields, the watchdog replaces the worker.
    const sb = await nb.createSandbox({
      watchdogGraceMs: 100,
      limits: { timeoutMs: 300, fuel: 10_000_000_000, fuelPerSlice: 10_000_000_000 },
    });
    const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    const hung = await window.caught((await sb.instantiate(mod)).call('spin'));
    const answer = (await (await sb.instantiate(mod)).call('answer')).results[0];
    const restarts = sb.stats.workerRestarts;
    sb.dispose();
    return { hung, answer, restarts };
  });
  assert.equal(out.hung.code, 'TIMEOUT');
  assert.equal(out.restarts, 1);
  assert.equal(out.answer, 42);
  assert.equal(browser.served(WASM) - before, 0);
});

test('a failed fetch or compile: createSandbox rejects with WORKER_CRASHED, the next one tries again', async () => {
  await freshPage();
  browser.failNext(WASM, { status: 500 });
  browser.failNext(WASM, { status: 200, type: 'application/wasm', body: 'not wasm at all' });
  const before = browser.served(WASM);
  const out = await browser.page.evaluate(async () => {
    const { nb } = window;
    const httpError = await window.caught(nb.createSandbox());
    const compileError = await window.caught(nb.createSandbox());
    const sb = await nb.createSandbox();
    const stats = sb.stats;
    sb.dispose();
    return { httpError, compileError, stats };
  });
  assert.equal(out.httpError.code, 'WORKER_CRASHED');
  assert.equal(out.httpError.isSandboxError, true);
  assert.match(out.httpError.message, /nestbox_bg\.wasm: HTTP 500/);
  assert.equal(out.compileError.code, 'WORKER_CRASHED');
  assert.match(out.compileError.message, /could not compile .*nestbox_bg\.wasm/);
  assert.equal(out.stats.workerRestarts, 0, 'the third sandbox started normally');
  assert.equal(browser.served(WASM) - before, 3, 'a failure is not kept: each try fetches again');
});

test('the wasm served with another MIME type still compiles (without streaming)', async () => {
  await freshPage();
  const { readFileSync } = await import('node:fs');
  const { join, dirname } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const wasm = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'pkg', 'nestbox_bg.wasm'));
  browser.failNext(WASM, { status: 200, type: 'application/octet-stream', body: wasm });
  assert.deepEqual(await runSandboxes(2), [42, 42]);
});

test('a custom workerUrl without nestbox_bg.wasm next to it: the worker loads its own', async () => {
  await freshPage();
  const before = browser.served(WASM);
  // /tests/evil-worker.js (untampered) imports /pkg/worker.js; /tests/nestbox_bg.wasm is 404.
  // No spare worker: each sandbox starts exactly one worker, which this test counts.
  assert.deepEqual(
    await runSandboxes(2, { sandbox: { workerUrl: '/tests/evil-worker.js', spareWorker: false } }),
    [42, 42],
  );
  assert.equal(browser.served('/tests/nestbox_bg.wasm'), 2, 'looked for next to the worker script (404, not kept)');
  assert.equal(browser.served(WASM) - before, 2, 'each worker fetched the one its script imports');
});

for (const mode of ['notModule', 'wrongModule', 'twice']) {
  test(`a worker whose boot message is tampered with (${mode}) fails closed: WORKER_CRASHED`, async () => {
    const out = await browser.page.evaluate(
      (mode) => window.caught(window.nb.createSandbox({ workerUrl: `/tests/evil-worker.js?boot=${mode}` })),
      mode,
    );
    assert.equal(out.code, 'WORKER_CRASHED');
    assert.match(out.message, /could not load nestbox_bg\.wasm/);
    const reason = {
      notModule: /no WebAssembly\.Module/,
      wrongModule: /.+/,
      twice: /a second boot message/,
    }[mode];
    assert.match(out.details.reason, reason);
  });
}

test('a guest loaded again in a worker reuses its compiled module; the load is still verified', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const cachedLoads = async (sb) =>
      (await sb.audit.entries()).filter((e) => e.event === 'load').map((e) => e.extra?.cached === 'true');
    // A dedicated worker loading the same bytes twice.
    const sb = await nb.createSandbox();
    const m1 = await sb.load(fx.secret.url, { integrity: fx.secret.integrity });
    const m2 = await sb.load(fx.secret.url, { integrity: fx.secret.integrity });
    const wrong = await window.caught(sb.load(fx.secret.url, { integrity: fx.spin.integrity }));
    const peek = nb.capability(() => 0, { params: ['i32', 'i32'], results: ['i32'] });
    const a = await sb.instantiate(m1, { imports: { env: { peek } } });
    const b = await sb.instantiate(m2, { imports: { env: { peek } } });
    await a.call('set', [111]);
    const isolated = [(await a.call('get')).results[0], (await b.call('get')).results[0]];
    const dedicated = await cachedLoads(sb);
    sb.dispose();
    // Other limits (another engine configuration) in the same pool: compiled again.
    const pool = nb.createWorkerPool();
    const p1 = await nb.createSandbox({ worker: pool });
    const p2 = await nb.createSandbox({ worker: pool });
    const p3 = await nb.createSandbox({ worker: pool, limits: { maxRecursionDepth: 500 } });
    for (const s of [p1, p2, p3]) await s.load(fx.secret.url, { integrity: fx.secret.integrity });
    const pooled = [await cachedLoads(p1), await cachedLoads(p2), await cachedLoads(p3)];
    pool.dispose();
    return { dedicated, wrong, isolated, pooled };
  });
  assert.deepEqual(out.dedicated, [false, true, false], 'the second load is a hit; a wrong digest is refused');
  assert.equal(out.wrong.code, 'INTEGRITY_MISMATCH');
  assert.deepEqual(out.isolated, [111, 0], 'two instances of one cached module share no memory');
  assert.deepEqual(out.pooled, [[false], [true], [false]]);
});

/** Counts the page's `Worker`s: started, and terminated by nestbox (`window.workers`). */
async function countWorkers() {
  await browser.page.evaluate(() => {
    const Native = window.Worker;
    const workers = [];
    window.workers = workers;
    window.Worker = class extends Native {
      constructor(...args) {
        super(...args);
        this.ended = false;
        workers.push(this);
      }
      terminate() {
        this.ended = true;
        super.terminate();
      }
    };
  });
}

test('a later sandbox adopts a worker started in advance; the spare ends with the last sandbox', async () => {
  await freshPage();
  await countWorkers();
  const out = await browser.page.evaluate(async () => {
    const { nb, fx, workers } = window;
    const answer = async (sb) =>
      (await (await sb.instantiate(await sb.load(fx.spin.url, { integrity: fx.spin.integrity }))).call('answer'))
        .results[0];
    const first = await nb.createSandbox();
    const afterFirst = workers.length; // its own + the spare
    const spare = workers[1];
    await new Promise((r) => setTimeout(r, 300)); // the spare boots meanwhile
    const second = await nb.createSandbox();
    const answers = [await answer(first), await answer(second)];
    const afterSecond = workers.length; // + the next spare only: the second adopted the first spare
    const spareKept = !spare.ended;
    // Three at once: one adopts the spare, the others start their own; none shares a worker:
    // disposing one leaves the others working.
    const three = await Promise.all([1, 2, 3].map(() => nb.createSandbox()));
    three[0].dispose();
    const rest = [await answer(three[1]), await answer(three[2])];
    const stats = [second.stats.workerRestarts, three[1].stats.workerRestarts];
    for (const sb of [first, second, ...three]) sb.dispose();
    const leftRunning = workers.filter((w) => !w.ended).length;
    return { afterFirst, afterSecond, spareKept, answers, rest, stats, leftRunning };
  });
  assert.equal(out.afterFirst, 2, 'the first sandbox starts its worker and one spare');
  assert.equal(out.afterSecond, 3, 'the second sandbox adopted the spare; a new spare started');
  assert.equal(out.spareKept, true, 'the adopted spare runs the second sandbox');
  assert.deepEqual(out.answers, [42, 42]);
  assert.deepEqual(out.rest, [42, 42], 'sandboxes created at once do not share a worker');
  assert.deepEqual(out.stats, [0, 0]);
  assert.equal(out.leftRunning, 0, 'disposing the last sandbox terminates the spare too');
});

test('spareWorker: false starts no spare; a spare that failed before it was taken is discarded', async () => {
  await freshPage();
  await countWorkers();
  const out = await browser.page.evaluate(async () => {
    const { nb, fx, workers } = window;
    const alone = await nb.createSandbox({ spareWorker: false });
    const withoutSpare = workers.length;
    alone.dispose();
    const endedAlone = workers.every((w) => w.ended);
    let bad;
    try {
      await nb.createSandbox({ spareWorker: 'yes' });
    } catch (e) {
      bad = { code: e.code, message: e.message };
    }
    // A spare that crashes while it waits is not adopted: the next sandbox starts afresh.
    const first = await nb.createSandbox();
    const spare = workers[workers.length - 1];
    spare.dispatchEvent(new ErrorEvent('error', { message: 'injected crash' }));
    await new Promise((r) => setTimeout(r, 50));
    const second = await nb.createSandbox();
    const inst = await second.instantiate(await second.load(fx.spin.url, { integrity: fx.spin.integrity }));
    const answer = (await inst.call('answer')).results[0];
    const restarts = second.stats.workerRestarts;
    first.dispose();
    second.dispose();
    return {
      withoutSpare,
      endedAlone,
      bad,
      answer,
      restarts,
      spareEnded: spare.ended,
      leftRunning: workers.filter((w) => !w.ended).length,
    };
  });
  assert.equal(out.withoutSpare, 1);
  assert.equal(out.endedAlone, true);
  assert.equal(out.bad.code, 'INVALID_ARGUMENT');
  assert.match(out.bad.message, /spareWorker must be a boolean/);
  assert.equal(out.answer, 42);
  assert.equal(out.restarts, 0, 'the crashed spare was not adopted');
  assert.equal(out.spareEnded, true);
  assert.equal(out.leftRunning, 0);
});
