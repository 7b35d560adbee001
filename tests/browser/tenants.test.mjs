// Tenants and lifecycle: per-tenant quotas (live instances, memory, fuel per window) as
// errors with `details.tenant`, workers recycled after N runs or above a wasm-memory
// threshold while calls keep working, instances dropped in the core on dispose, and the
// warning for a sandbox garbage-collected without dispose() (Chromium with --expose-gc).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openBrowser } from './harness.mjs';

let browser;
before(async () => {
  browser = await openBrowser({ extraArgs: ['--js-flags=--expose-gc'] });
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

test('live instances per tenant: the next one is INSTANCE_LIMIT with details.tenant; other tenants are not affected', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const pool = nb.createTenantPool({ maxLiveInstancesPerTenant: 2 });
    const alice = await pool.sandboxFor('alice');
    const bob = await pool.sandboxFor('bob');
    const same = alice === (await pool.sandboxFor('alice'));
    const mod = await alice.load(fx.spin.url, { integrity: fx.spin.integrity });
    const a1 = await alice.instantiate(mod);
    const a2 = await alice.instantiate(mod);
    const third = await window.caught(alice.instantiate(mod));
    const bmod = await bob.load(fx.spin.url, { integrity: fx.spin.integrity });
    const b1 = await bob.instantiate(bmod);
    a1.dispose();
    const again = await alice.instantiate(mod);
    const answer = (await again.call('answer')).results[0];
    const stats = alice.stats;
    const tenants = pool.tenants;
    pool.dispose();
    return { same, third, answer, stats, tenants, alive: [a2.alive, b1.alive, alice.alive] };
  });
  assert.equal(out.same, true, 'one sandbox per tenant');
  assert.equal(out.third.code, 'INSTANCE_LIMIT');
  assert.equal(out.third.details.tenant, 'alice');
  assert.equal(out.third.details.limit, 2);
  assert.match(out.third.message, /tenant "alice"/);
  assert.equal(out.answer, 42);
  assert.equal(out.stats.liveInstances, 2);
  assert.deepEqual(out.tenants, ['alice', 'bob']);
  assert.deepEqual(out.alive, [false, false, false], 'disposing the pool disposes every tenant');
});

test('memory per tenant: checked at instantiation and after each call (MEMORY_LIMIT, details.tenant)', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const page = 64 * 1024;
    // 5 pages for the tenant; the fixture starts with 2.
    const pool = nb.createTenantPool({ maxMemoryBytesPerTenant: 5 * page });
    const t = await pool.sandboxFor('t');
    const mod = await t.load(fx.tenant_memory.url, { integrity: fx.tenant_memory.integrity });
    const i1 = await t.instantiate(mod);
    const i2 = await t.instantiate(mod);
    const third = await window.caught(t.instantiate(mod));
    const before = t.stats.memoryBytes;
    const grewOne = (await i1.call('grow', [1])).results[0]; // 3 + 2 = 5 pages: at the quota
    const grewTwo = await window.caught(i1.call('grow', [1])); // 6 pages: over
    const after = t.stats;
    // One instance alone can never pass the tenant's quota: the core caps it.
    const alone = (await i2.call('grow', [10])).results[0];
    pool.dispose();
    return { third, before, grewOne, grewTwo, after, alone, i1Alive: i1.alive };
  });
  const page = 64 * 1024;
  assert.equal(out.third.code, 'MEMORY_LIMIT');
  assert.equal(out.third.details.tenant, 't');
  assert.equal(out.third.details.limit, 5 * page);
  assert.equal(out.third.details.memoryBytes, 6 * page);
  assert.equal(out.before, 4 * page);
  assert.equal(out.grewOne, 2, 'memory.grow returned the old size in pages');
  assert.equal(out.grewTwo.code, 'MEMORY_LIMIT');
  assert.equal(out.grewTwo.details.tenant, 't');
  assert.equal(out.grewTwo.details.memoryBytes, 6 * page);
  assert.equal(out.i1Alive, false, 'the instance that went over was disposed');
  assert.equal(out.after.liveInstances, 1);
  assert.equal(out.after.memoryBytes, 2 * page);
  assert.equal(out.alone, -1, 'memory.grow fails in the guest at the core limit (the tenant quota)');
});

test('fuel per window: a call is cut to what is left (FUEL_EXHAUSTED, details.tenant), the next waits for the window', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const pool = nb.createTenantPool({ fuelPerWindow: { fuel: 3_000_000, windowMs: 700 } });
    const t = await pool.sandboxFor('greedy');
    const other = await pool.sandboxFor('other');
    const mod = await t.load(fx.spin.url, { integrity: fx.spin.integrity });
    const omod = await other.load(fx.spin.url, { integrity: fx.spin.integrity });
    const small = await t.run(mod, 'answer');
    const t0 = performance.now();
    const spun = await window.caught(t.run(mod, 'spin'));
    const blocked = await window.caught(t.run(mod, 'answer'));
    const otherAnswer = (await other.run(omod, 'answer')).results[0];
    const used = t.stats.fuelInWindow;
    await new Promise((r) => setTimeout(r, Math.max(0, 750 - (performance.now() - t0))));
    const later = (await t.run(mod, 'answer')).results[0];
    pool.dispose();
    return { small: small.results[0], spun, blocked, otherAnswer, used, later };
  });
  assert.equal(out.small, 42);
  assert.equal(out.spun.code, 'FUEL_EXHAUSTED');
  assert.equal(out.spun.details.tenant, 'greedy');
  assert.equal(out.spun.details.limit, 3_000_000);
  assert.ok(out.spun.details.metrics.fuelConsumed <= 3_000_000, JSON.stringify(out.spun.details.metrics));
  assert.match(out.blocked.message, /is used up/, 'refused before running');
  assert.equal(out.blocked.code, 'FUEL_EXHAUSTED');
  assert.equal(out.blocked.details.tenant, 'greedy');
  assert.ok(out.blocked.details.retryAfterMs > 0 && out.blocked.details.retryAfterMs <= 700);
  assert.equal(out.otherAnswer, 42, 'another tenant has its own window');
  assert.equal(out.used, 3_000_000, 'the window is used up');
  assert.equal(out.later, 42, 'a new window, new fuel');
});

test('a worker is recycled after N runs: calls keep working, a held instance pins it, the log links the workers', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const pool = nb.createTenantPool({ recycleWorkerAfterRuns: 3 });
    const t = await pool.sandboxFor('t');
    const mod = await t.load(fx.spin.url, { integrity: fx.spin.integrity });
    const answers = [];
    for (let i = 0; i < 7; i++) answers.push((await t.run(mod, 'answer')).results[0]);
    const afterRuns = t.stats;
    // A held instance pins the worker: runs pass N, nothing is recycled, its calls work.
    const held = await t.instantiate(mod);
    for (let i = 0; i < 4; i++) answers.push((await held.call('answer')).results[0]);
    const pinned = t.stats;
    held.dispose();
    // The recycle starts now; the next run waits for it.
    answers.push((await t.run(mod, 'answer')).results[0]);
    const released = t.stats;
    const entries = await t.audit.entries();
    const head = await t.audit.head();
    const verified = await nb.verifyAuditLog(entries, head);
    pool.dispose();
    const links = entries.filter((e) => e.extra?.segment === 'worker_replaced');
    return { answers, afterRuns, pinned, released, verified, links };
  });
  assert.deepEqual(out.answers, Array(12).fill(42));
  assert.equal(out.afterRuns.recycles, 2, '7 runs, recycled after the 3rd and the 6th');
  assert.equal(out.afterRuns.runsSinceRecycle, 1);
  assert.equal(out.pinned.recycles, 2, 'not while an instance lives');
  assert.equal(out.pinned.runsSinceRecycle, 5);
  assert.equal(out.released.recycles, 3, 'recycled as soon as it was disposed');
  assert.equal(out.released.runsSinceRecycle, 1);
  assert.deepEqual(out.verified, { ok: true });
  assert.equal(out.links.length, 3);
  for (const link of out.links) {
    assert.equal(link.outcome, 'ok', 'a recycle is not a crash');
    assert.match(link.extra.reason, /recycled by the tenant pool: \d+ runs/);
  }
});

test('a worker is recycled when its own wasm memory passes a threshold (asked from the worker)', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    // Measure a fresh worker's wasm memory first, then set the threshold just under it.
    const probe = nb.createTenantPool({ recycleWorkerAboveMemoryBytes: Number.MAX_SAFE_INTEGER });
    const p = await probe.sandboxFor('probe');
    const pmod = await p.load(fx.spin.url, { integrity: fx.spin.integrity });
    await p.run(pmod, 'answer');
    const measured = p.stats.workerMemoryBytes;
    probe.dispose();
    const pool = nb.createTenantPool({ recycleWorkerAboveMemoryBytes: measured - 1 });
    const t = await pool.sandboxFor('t');
    const mod = await t.load(fx.spin.url, { integrity: fx.spin.integrity });
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push((await t.run(mod, 'answer')).results[0]);
    await t.load(fx.spin.url, { integrity: fx.spin.integrity }); // waits for the last recycle
    const stats = t.stats;
    pool.dispose();
    return { measured, answers, stats };
  });
  assert.ok(out.measured > 1 << 20, `nestbox's wasm memory in a worker: ${out.measured} bytes`);
  assert.deepEqual(out.answers, [42, 42, 42]);
  assert.equal(out.stats.recycles, 3);
  console.log(
    `worker wasm memory after one run: ${(out.measured / 2 ** 20).toFixed(1)} MiB (buffer.byteLength); 3 runs above it: 3 recycles`,
  );
});

test('dispose drops an instance in the core (logged, place freed); pool.recycle forces a new worker', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const pool = nb.createTenantPool({ maxLiveInstancesPerTenant: 1 });
    const t = await pool.sandboxFor('t');
    const mod = await t.load(fx.spin.url, { integrity: fx.spin.integrity });
    const i = await t.instantiate(mod);
    i.dispose();
    const events = (await t.audit.entries()).map((e) => e.event);
    const next = await t.instantiate(mod); // the place was freed
    pool.recycle('t');
    const lost = await window.caught(next.call('answer'));
    const fresh = (await t.run(mod, 'answer')).results[0];
    const stats = pool.stats('t');
    pool.dispose();
    const afterPool = await window.caught(pool.sandboxFor('t'));
    return { events, lost, fresh, stats, afterPool, none: pool.stats === undefined };
  });
  assert.deepEqual(out.events, ['policy', 'load', 'instantiate', 'dispose']);
  assert.equal(out.lost.code, 'WORKER_CRASHED');
  assert.equal(out.fresh, 42);
  assert.equal(out.stats.recycles, 1);
  assert.equal(out.afterPool.code, 'DISPOSED');
});

test('bad tenant pool options are TypeErrors', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb } = window;
    const cases = [
      { maxLiveInstances: 1 },
      { maxMemoryBytesPerTenant: -1 },
      { fuelPerWindow: { fuel: 10 } },
      { recycleWorkerAfterRuns: 0 },
      { sandboxOptions: { worker: nb.createWorkerPool() } },
    ];
    return cases.map((c) => {
      try {
        nb.createTenantPool(c);
        return 'accepted';
      } catch (e) {
        return `${e.code} ${e instanceof TypeError}`;
      }
    });
  });
  assert.deepEqual(out, Array(5).fill('INVALID_ARGUMENT true'));
});

test('a Sandbox garbage-collected without dispose() is reported (console.warn and onSandboxLeak) and its worker ended', async () => {
  const { page } = browser;
  await page.goto(`${browser.base}/tests/gc.html`);
  await page.waitForFunction(() => window.ready === true || window.loadError !== undefined);
  assert.equal(await page.evaluate(() => window.loadError), undefined);
  assert.equal(await page.evaluate(() => window.hasGc), true, 'Chromium runs with --expose-gc');
  await page.evaluate(() => window.keepInstance());
  await page.evaluate(() => window.leakOne());
  const out = await page.evaluate(async () => {
    const rounds = await window.collect(() => window.leaks.length > 0);
    // More rounds: the sandbox kept alive by its instance must never be reported.
    await window.collect(() => false, 10);
    const kept = (await window.kept.call('answer')).results[0];
    return { rounds, leaks: window.leaks, warnings: window.warnings, kept };
  });
  assert.equal(out.leaks.length, 1, JSON.stringify(out));
  assert.equal(out.leaks[0].calls, 1);
  assert.equal(out.leaks[0].auditEntries, 4, 'policy, load, instantiate, call');
  assert.equal(out.warnings.length, 1);
  assert.match(out.warnings[0], /garbage-collected without dispose\(\)/);
  assert.equal(out.kept, 42, 'a sandbox reachable through its instance is not collected');
  console.log(`leaked sandbox reported after ${out.rounds} gc() round(s)`);
  await page.goto(`${browser.base}/tests/index.html`);
});
