// Two sandboxes cannot see each other's memory or capabilities — with dedicated workers, and
// with one shared worker (separate cores in one thread), even when that worker forges the
// sandbox id of a host request.
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

async function twoSandboxes(poolOptions) {
  return browser.page.evaluate(async (poolOptions) => {
    const { nb, fx } = window;
    const pool = poolOptions ? nb.createWorkerPool(poolOptions) : undefined;
    const opts = pool ? { worker: pool } : {};
    const sa = await nb.createSandbox(opts);
    const sbx = await nb.createSandbox(opts);
    const seenBy = { a: [], b: [] };
    const peekA = nb.capability(
      async (mem, p, n) => (seenBy.a.push(new DataView((await mem.read(p, n)).buffer).getInt32(0, true)), 0),
      {
        params: ['i32', 'i32'],
        results: ['i32'],
      },
    );
    const peekB = nb.capability(
      async (mem, p, n) => (seenBy.b.push(new DataView((await mem.read(p, n)).buffer).getInt32(0, true)), 0),
      {
        params: ['i32', 'i32'],
        results: ['i32'],
      },
    );
    const ma = await sa.load(fx.secret.url, { integrity: fx.secret.integrity });
    const mb = await sbx.load(fx.secret.url, { integrity: fx.secret.integrity });
    const a = await sa.instantiate(ma, { imports: { env: { peek: peekA } } });
    const b = await sbx.instantiate(mb, { imports: { env: { peek: peekB } } });
    await a.call('set', [111]);
    await b.call('set', [222]);
    const getA = (await a.call('get')).results[0];
    const getB = (await b.call('get')).results[0];
    const leakA = await window.caught(a.call('leak'));
    const leakB = await window.caught(b.call('leak'));
    const misuse = {
      moduleOfOther: await window.caught(sa.instantiate(mb, { imports: { env: { peek: peekA } } })),
    };
    const stats = { a: sa.stats, b: sbx.stats };
    sa.dispose();
    sbx.dispose();
    pool?.dispose();
    return { getA, getB, seenBy, leakA, leakB, misuse, stats };
  }, poolOptions);
}

for (const [name, pool] of [
  ['dedicated workers', undefined],
  ['one shared worker', {}],
]) {
  test(`${name}: each sandbox sees only its own memory; modules do not cross`, async () => {
    const out = await twoSandboxes(pool);
    assert.equal(out.getA, 111);
    assert.equal(out.getB, 222);
    assert.deepEqual(out.seenBy, { a: [111], b: [222] });
    assert.equal(out.leakA.resolved, true);
    assert.equal(out.leakB.resolved, true);
    assert.equal(out.misuse.moduleOfOther.code, 'INVALID_ARGUMENT');
  });
}

test('shared worker that forges the sandbox id of a host request: refused, no capability of the other sandbox runs', async () => {
  // evil-worker.js?cross=1 sends sandbox N's host requests as sandbox N-1's. Sandbox 1's go to
  // "sandbox 0", which this worker does not serve: a protocol violation, so the shared worker
  // is replaced and A's call fails closed with CAPABILITY_REVOKED (forged). B's instance lived
  // in that worker too (a pool is one trust domain): its call is WORKER_CRASHED. No peek ran.
  const out = await twoSandboxes({ workerUrl: '/tests/evil-worker.js?cross=1' });
  assert.deepEqual(out.seenBy, { a: [], b: [] });
  assert.equal(out.leakA.code, 'CAPABILITY_REVOKED');
  assert.equal(out.leakA.details.forged, true);
  assert.equal(out.leakA.details.protocolViolation, true);
  assert.equal(out.leakB.code, 'WORKER_CRASHED');
  assert.equal(out.stats.a.protocolViolations, 1);
  assert.equal(out.getA, 111);
  assert.equal(out.getB, 222);
});
