// Tenants and lifecycle: per-tenant quotas (live instances, memory, fuel per window) as
// errors with `details.tenant`, for calls and for `runWasi` (the `wasi_tenant` guest), workers recycled after N runs or above a wasm-memory
// threshold while calls keep working, instances dropped in the core on dispose, and the
// warning for a sandbox garbage-collected without dispose() (Chromium with --expose-gc).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { chromiumOnly, openBrowser } from './harness.mjs';

let browser;
/** A `Uint8Array` of the page, as JSON made it (`{ "0": byte, … }`), decoded as UTF-8. */
const textOf = (bytes) => Buffer.from(Object.values(bytes)).toString('utf8');
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

test('memory per tenant: checked at instantiation, capped by the core during each call at what is left, checked after each call (MEMORY_LIMIT, details.tenant)', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const page = 64 * 1024;
    const pagesOf = async (i) => (await i.memory.size()) / page;
    // 5 pages for the tenant; the fixture starts with 2.
    const pool = nb.createTenantPool({ maxMemoryBytesPerTenant: 5 * page });
    const t = await pool.sandboxFor('t');
    const mod = await t.load(fx.tenant_memory.url, { integrity: fx.tenant_memory.integrity });
    const i1 = await t.instantiate(mod);
    const i2 = await t.instantiate(mod);
    const third = await window.caught(t.instantiate(mod));
    const before = t.stats.memoryBytes;
    // i2 holds 2 pages: a call of i1 may take it to the 3 pages left, not further.
    const grewOne = (await i1.call('grow', [1])).results[0]; // 3 + 2 = 5 pages: at the quota
    const grewTwo = (await i1.call('grow', [1])).results[0]; // 6 pages: refused by the core
    const i2Grew = (await i2.call('grow', [1])).results[0]; // 3 + 3: refused too
    const full = { stats: t.stats, pages: [await pagesOf(i1), await pagesOf(i2)], alive: [i1.alive, i2.alive] };
    // With i1 gone, i2 has the whole quota: 5 pages, not 6.
    i1.dispose();
    const wide = (await i2.call('grow', [3])).results[0];
    const alone = (await i2.call('grow', [1])).results[0];
    i2.dispose();
    // Two calls in flight at once: the first reserves its cap (the page left) before the
    // second starts, which is then capped at what it holds: one grows, the other is refused
    // in the guest, and nothing goes over the quota.
    const j = [await t.instantiate(mod), await t.instantiate(mod)];
    const both = await Promise.all(j.map((i) => window.caught(i.call('grow', [1]))));
    const after = { stats: t.stats, alive: j.map((i) => i.alive) };
    pool.dispose();
    return { third, before, grewOne, grewTwo, i2Grew, full, wide, alone, both, after };
  });
  const page = 64 * 1024;
  assert.equal(out.third.code, 'MEMORY_LIMIT');
  assert.equal(out.third.details.tenant, 't');
  assert.equal(out.third.details.limit, 5 * page);
  assert.equal(out.third.details.memoryBytes, 6 * page);
  assert.equal(out.before, 4 * page);
  assert.equal(out.grewOne, 2, 'memory.grow returned the old size in pages');
  assert.equal(out.grewTwo, -1, 'memory.grow fails in the guest at what the tenant has left');
  assert.equal(out.i2Grew, -1);
  assert.deepEqual(out.full.pages, [3, 2]);
  assert.equal(out.full.stats.memoryBytes, 5 * page);
  assert.deepEqual(out.full.alive, [true, true], 'nothing went over: no instance was disposed');
  assert.equal(out.wide, 2);
  assert.equal(out.alone, -1, 'one instance alone is capped at the tenant quota');
  assert.deepEqual(
    out.both.map((b) => b.value?.results),
    [[2], [-1]],
    `the first call's reservation leaves the second nothing to grow into: ${JSON.stringify(out.both)}`,
  );
  assert.deepEqual(out.after.alive, [true, true], 'nothing went over: no instance was disposed');
  assert.equal(out.after.stats.liveInstances, 2);
  assert.equal(out.after.stats.memoryBytes, 5 * page);
});

test("a call capped at what the tenant has left traps with the tenant's MEMORY_LIMIT (trapOnGrowFailure); a tighter maxMemoryBytes of the caller is the caller's", async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const page = 64 * 1024;
    const pool = nb.createTenantPool({
      maxMemoryBytesPerTenant: 6 * page,
      sandboxOptions: { limits: { trapOnGrowFailure: true } },
    });
    const t = await pool.sandboxFor('q');
    const mod = await t.load(fx.tenant_memory.url, { integrity: fx.tenant_memory.integrity });
    const i1 = await t.instantiate(mod);
    const i2 = await t.instantiate(mod);
    // i1 holds 2 pages, so i2 may reach 4: growing to 5 ends the call.
    const tenantCap = await window.caught(i2.call('grow', [3]));
    const poisoned = await window.caught(i2.call('answer'));
    // The caller's own cap (3 pages) is tighter than the 4 pages left: it is the caller's limit.
    const ownCap = await window.caught(i1.call('grow', [2], { maxMemoryBytes: 3 * page }));
    const badCap = await window.caught(i1.call('grow', [1], { maxMemoryBytes: -1 }));
    pool.dispose();
    return { tenantCap, poisoned, ownCap, badCap };
  });
  const page = 64 * 1024;
  assert.equal(out.tenantCap.code, 'MEMORY_LIMIT');
  assert.equal(out.tenantCap.details.tenant, 'q');
  assert.equal(out.tenantCap.details.limit, 6 * page);
  assert.match(out.tenantCap.message, new RegExp(`capped at the ${4 * page} bytes`));
  assert.match(out.tenantCap.cause, new RegExp(`limit of ${4 * page} bytes`), 'the core held it at what was left');
  assert.equal(out.poisoned.code, 'POISONED');
  assert.equal(out.ownCap.code, 'MEMORY_LIMIT');
  assert.equal(out.ownCap.details.tenant, undefined);
  assert.equal(out.ownCap.details.limit, 3 * page);
  assert.equal(out.badCap.code, 'INVALID_ARGUMENT');
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

test('runWasi within the quotas: its stdout, counted live while it runs, a run for recycling', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const pool = nb.createTenantPool({
      maxLiveInstancesPerTenant: 1,
      maxMemoryBytesPerTenant: 4 * 64 * 1024,
      fuelPerWindow: { fuel: 1_000_000_000, windowMs: 60_000 },
      recycleWorkerAfterRuns: 2,
    });
    const t = await pool.sandboxFor('t');
    const mod = await t.load(fx.wasi_tenant.url, { integrity: fx.wasi_tenant.integrity });
    const first = await t.runWasi(mod);
    const afterFirst = t.stats;
    // While a run is in flight it holds the tenant's only place: an instantiation is refused.
    const ticker = await t.load(fx.wasi_ticker.url, { integrity: fx.wasi_ticker.integrity });
    const ticking = t.runWasi(ticker);
    const during = await window.caught(t.instantiate(mod));
    const liveDuring = t.stats.liveInstances;
    const ticked = await ticking;
    await t.load(fx.wasi_tenant.url, { integrity: fx.wasi_tenant.integrity }); // waits for the recycle
    const afterTwo = t.stats;
    const second = await t.runWasi(mod);
    pool.dispose();
    return {
      first: { exitCode: first.exitCode, stdout: first.stdoutText, metrics: first.metrics },
      afterFirst,
      during,
      liveDuring,
      ticks: ticked.stdoutText.split('\n').length - 1,
      afterTwo,
      second: second.stdoutText,
    };
  });
  assert.equal(out.first.exitCode, 0);
  assert.equal(out.first.stdout, 'hello\n');
  assert.equal(out.afterFirst.liveInstances, 0, 'the run is no longer live');
  assert.equal(out.afterFirst.memoryBytes, 0);
  assert.equal(out.afterFirst.fuelInWindow, out.first.metrics.fuelConsumed, 'its fuel is charged to the window');
  assert.ok(out.first.metrics.fuelConsumed > 0);
  assert.equal(out.afterFirst.runsSinceRecycle, 1);
  assert.equal(out.during.code, 'INSTANCE_LIMIT');
  assert.equal(out.during.details.tenant, 't');
  assert.equal(out.liveDuring, 1);
  assert.equal(out.ticks, 10);
  assert.equal(out.afterTwo.recycles, 1, 'two WASI runs: recycled once the second ended');
  assert.equal(out.afterTwo.runsSinceRecycle, 0);
  assert.equal(out.second, 'hello\n', 'and runs in the new worker');
});

test('runWasi over the live-instance quota is INSTANCE_LIMIT with details.tenant (nothing runs)', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const pool = nb.createTenantPool({ maxLiveInstancesPerTenant: 1 });
    const t = await pool.sandboxFor('alice');
    const spin = await t.load(fx.spin.url, { integrity: fx.spin.integrity });
    const mod = await t.load(fx.wasi_tenant.url, { integrity: fx.wasi_tenant.integrity });
    const held = await t.instantiate(spin);
    const runsBefore = t.stats.runsSinceRecycle;
    const refused = await window.caught(t.runWasi(mod));
    const stats = t.stats;
    held.dispose();
    const after = (await t.runWasi(mod)).stdoutText;
    pool.dispose();
    return { refused, runsBefore, stats, after };
  });
  assert.equal(out.refused.code, 'INSTANCE_LIMIT');
  assert.equal(out.refused.details.tenant, 'alice');
  assert.equal(out.refused.details.limit, 1);
  assert.match(out.refused.message, /tenant "alice"/);
  assert.equal(out.stats.liveInstances, 1);
  assert.equal(out.stats.runsSinceRecycle, out.runsBefore, 'a refused run did not run');
  assert.equal(out.after, 'hello\n', 'the place was freed');
});

test('runWasi memory: refused when the live instances hold the quota, capped by the core at what is left (MEMORY_LIMIT before it runs)', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const page = 64 * 1024;
    const run = async (quota) => {
      const pool = nb.createTenantPool({ maxMemoryBytesPerTenant: quota * page });
      const t = await pool.sandboxFor('m');
      const held = await t.instantiate(await t.load(fx.tenant_memory.url, { integrity: fx.tenant_memory.integrity })); // 2 pages
      const mod = await t.load(fx.wasi_tenant.url, { integrity: fx.wasi_tenant.integrity }); // 2 pages
      const error = await window.caught(t.runWasi(mod));
      const stats = t.stats;
      held.dispose();
      const alone = (await t.runWasi(mod)).stdoutText;
      pool.dispose();
      return { error, stats, alone };
    };
    return { full: await run(2), over: await run(3) };
  });
  const page = 64 * 1024;
  assert.equal(out.full.error.code, 'MEMORY_LIMIT');
  assert.equal(out.full.error.details.tenant, 'm');
  assert.match(out.full.error.message, /none is left/);
  assert.equal(out.full.stats.runsSinceRecycle, 0, 'refused before running');
  // 1 page is left besides the held instance; the run's 2 initial pages are over it: the core
  // refuses the run before it starts.
  assert.equal(out.over.error.code, 'MEMORY_LIMIT');
  assert.equal(out.over.error.details.tenant, 'm');
  assert.equal(out.over.error.details.limit, 3 * page);
  assert.match(out.over.error.message, new RegExp(`capped at the ${page} bytes`));
  assert.match(out.over.error.cause, new RegExp(`over the call's limit of ${page} bytes`));
  assert.equal(textOf(out.over.error.details.stdout ?? {}), '', 'nothing ran');
  assert.equal(out.over.stats.liveInstances, 1, 'the run is no longer live');
  assert.equal(out.over.stats.memoryBytes, 2 * page);
  assert.equal(out.full.alone, 'hello\n');
  assert.equal(out.over.alone, 'hello\n');
});

test('runWasi fuel: cut to what is left of the window (FUEL_EXHAUSTED, details.tenant), then refused until the next window', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const pool = nb.createTenantPool({ fuelPerWindow: { fuel: 3_000_000, windowMs: 700 } });
    const t = await pool.sandboxFor('greedy');
    const mod = await t.load(fx.wasi_tenant.url, { integrity: fx.wasi_tenant.integrity });
    const small = (await t.runWasi(mod)).stdoutText;
    const t0 = performance.now();
    const spun = await window.caught(t.runWasi(mod, { args: ['guest', 'spin'] }));
    const blocked = await window.caught(t.runWasi(mod));
    const stats = t.stats;
    await new Promise((r) => setTimeout(r, Math.max(0, 750 - (performance.now() - t0))));
    const later = (await t.runWasi(mod)).stdoutText;
    pool.dispose();
    return { small, spun, blocked, stats, later };
  });
  assert.equal(out.small, 'hello\n');
  assert.equal(out.spun.code, 'FUEL_EXHAUSTED');
  assert.equal(out.spun.details.tenant, 'greedy');
  assert.equal(out.spun.details.limit, 3_000_000);
  assert.match(out.spun.message, /ran out during the WASI run/);
  assert.ok(out.spun.details.retryAfterMs > 0 && out.spun.details.retryAfterMs <= 700);
  assert.ok(out.spun.details.metrics.fuelConsumed <= 3_000_000, JSON.stringify(out.spun.details.metrics));
  assert.equal(textOf(out.spun.details.stdout), 'hello\n', 'what it wrote before');
  assert.equal(out.blocked.code, 'FUEL_EXHAUSTED');
  assert.match(out.blocked.message, /is used up/, 'refused before running');
  assert.equal(out.blocked.details.tenant, 'greedy');
  assert.equal(out.stats.fuelInWindow, 3_000_000, 'the window is used up');
  assert.equal(out.stats.liveInstances, 0);
  assert.equal(out.later, 'hello\n', 'a new window, new fuel');
});

test("runWasi's fuel is charged to the window, also when it fails: a following run is refused", async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    // What one WASI run costs, measured in a tenant without a window.
    const probe = nb.createTenantPool();
    const p = await probe.sandboxFor('probe');
    const pmod = await p.load(fx.wasi_tenant.url, { integrity: fx.wasi_tenant.integrity });
    const cost = (await p.runWasi(pmod)).metrics.fuelConsumed;
    probe.dispose();
    // A window of exactly that: the run succeeds and uses it up.
    const pool = nb.createTenantPool({ fuelPerWindow: { fuel: cost, windowMs: 60_000 } });
    const t = await pool.sandboxFor('t');
    const mod = await t.load(fx.wasi_tenant.url, { integrity: fx.wasi_tenant.integrity });
    const spin = await t.load(fx.spin.url, { integrity: fx.spin.integrity });
    const ran = await t.runWasi(mod);
    const used = t.stats.fuelInWindow;
    const refused = await window.caught(t.run(spin, 'answer'));
    pool.dispose();
    // A run that fails on its own (smaller) fuel budget is charged from details.metrics.
    const pool2 = nb.createTenantPool({ fuelPerWindow: { fuel: 2_000_000, windowMs: 60_000 } });
    const u = await pool2.sandboxFor('u');
    const umod = await u.load(fx.wasi_tenant.url, { integrity: fx.wasi_tenant.integrity });
    const uspin = await u.load(fx.spin.url, { integrity: fx.spin.integrity });
    const failed = await window.caught(u.runWasi(umod, { args: ['guest', 'spin'], fuel: 1_500_000 }));
    const charged = u.stats.fuelInWindow;
    const cut = await window.caught(u.run(uspin, 'spin'));
    const refused2 = await window.caught(u.run(uspin, 'answer'));
    pool2.dispose();
    return { cost, ran: ran.stdoutText, used, refused, failed, charged, cut, refused2 };
  });
  assert.ok(out.cost > 0);
  assert.equal(out.ran, 'hello\n');
  assert.equal(out.used, out.cost, 'the run was charged what it consumed');
  assert.equal(out.refused.code, 'FUEL_EXHAUSTED');
  assert.equal(out.refused.details.tenant, 't');
  assert.match(out.refused.message, /is used up/);
  assert.equal(out.failed.code, 'FUEL_EXHAUSTED');
  assert.equal(out.failed.details.tenant, undefined, "its own budget ran out, not the tenant's window");
  assert.equal(out.charged, out.failed.details.metrics.fuelConsumed, 'charged from details.metrics');
  assert.ok(out.charged > 1_000_000, String(out.charged));
  assert.equal(out.cut.code, 'FUEL_EXHAUSTED');
  assert.equal(out.cut.details.tenant, 'u', 'the rest of the window was cut for the next call');
  assert.ok(out.cut.details.metrics.fuelConsumed <= 2_000_000 - out.charged);
  assert.equal(out.refused2.code, 'FUEL_EXHAUSTED');
  assert.equal(out.refused2.details.tenant, 'u');
});

test('fuel per window under concurrency: each call reserves its budget before it runs, so concurrent calls share the window and the one that gets none is FUEL_EXHAUSTED', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const F = 30_000_000;
    const pool = nb.createTenantPool({ fuelPerWindow: { fuel: F, windowMs: 60_000 } });
    const t = await pool.sandboxFor('t');
    const mod = await t.load(fx.spin.url, { integrity: fx.spin.integrity });
    const instances = await Promise.all([0, 1, 2, 3].map(() => t.instantiate(mod)));
    // Four calls at once, each asking for a third of the window: three fit, the fourth cannot.
    const calls = instances.map((i) => window.caught(i.call('spin', [], { fuel: 10_000_000 })));
    for (let k = 0; k < 5; k++) await null; // the calls start (microtasks), none can end yet
    const reservedDuring = t.stats.fuelReserved;
    const asked = await Promise.all(calls);
    const afterAsked = t.stats;
    // Calls refused before they run cost nothing and hold nothing: a bad fuel option, a
    // poisoned instance.
    const spare = await t.instantiate(mod);
    const bad = await window.caught(spare.call('answer', [], { fuel: -1 }));
    const badType = await window.caught(spare.call('answer', [], { fuel: '5' }));
    const poisoned = await window.caught(instances[0].call('answer'));
    const afterRefused = t.stats;
    // Three calls at once on their default budget (the sandbox's limits.fuel, more than the
    // window): the first reserves all the window has, the others get nothing.
    const pool2 = nb.createTenantPool({ fuelPerWindow: { fuel: 5_000_000, windowMs: 60_000 } });
    const u = await pool2.sandboxFor('u');
    const umod = await u.load(fx.spin.url, { integrity: fx.spin.integrity });
    const uinstances = await Promise.all([0, 1, 2].map(() => u.instantiate(umod)));
    const defaults = await Promise.all(uinstances.map((i) => window.caught(i.call('spin'))));
    const afterDefaults = u.stats;
    pool.dispose();
    pool2.dispose();
    return { asked, reservedDuring, afterAsked, bad, badType, poisoned, afterRefused, defaults, afterDefaults };
  });
  const consumed = (runs) => runs.reduce((n, r) => n + (r.details?.metrics?.fuelConsumed ?? 0), 0);
  assert.equal(out.reservedDuring, 30_000_000, 'three budgets reserved while the calls run');
  const ran = out.asked.filter((r) => r.details?.metrics !== undefined);
  const refused = out.asked.filter((r) => r.details?.metrics === undefined);
  assert.equal(ran.length, 3, JSON.stringify(out.asked));
  for (const r of ran) {
    assert.equal(r.code, 'FUEL_EXHAUSTED', 'each spun through its own budget');
    assert.equal(r.details.tenant, undefined, 'its own budget, not the window');
  }
  assert.equal(refused.length, 1);
  assert.equal(refused[0].code, 'FUEL_EXHAUSTED');
  assert.equal(refused[0].details.tenant, 't');
  assert.equal(refused[0].details.limit, 30_000_000);
  assert.match(refused[0].message, /reserved by calls in flight/);
  assert.ok(refused[0].details.retryAfterMs > 0 && refused[0].details.retryAfterMs <= 60_000);
  assert.ok(consumed(out.asked) <= 30_000_000, `consumed ${consumed(out.asked)}`);
  assert.equal(out.afterAsked.fuelInWindow, consumed(out.asked), 'charged what they consumed');
  assert.equal(out.afterAsked.fuelReserved, 0, 'every reservation settled');
  assert.equal(out.bad.code, 'INVALID_ARGUMENT');
  assert.equal(out.badType.code, 'INVALID_ARGUMENT');
  assert.equal(out.poisoned.code, 'POISONED');
  assert.equal(out.afterRefused.fuelInWindow, out.afterAsked.fuelInWindow, 'refused calls are not charged');
  assert.equal(out.afterRefused.fuelReserved, 0);

  const uran = out.defaults.filter((r) => r.details?.metrics !== undefined);
  assert.equal(uran.length, 1, JSON.stringify(out.defaults));
  assert.equal(uran[0].code, 'FUEL_EXHAUSTED');
  assert.equal(uran[0].details.tenant, 'u', 'cut to the window');
  assert.ok(uran[0].details.metrics.fuelConsumed <= 5_000_000);
  for (const r of out.defaults.filter((x) => x.details?.metrics === undefined)) {
    assert.equal(r.code, 'FUEL_EXHAUSTED');
    assert.equal(r.details.tenant, 'u');
  }
  assert.ok(consumed(out.defaults) <= 5_000_000, `consumed ${consumed(out.defaults)}`);
  assert.equal(out.afterDefaults.fuelReserved, 0);
});

test("a start function's fuel is charged to the tenant's window; with the window used up, instantiation is refused", async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const pool = nb.createTenantPool({ fuelPerWindow: { fuel: 1_000_000_000, windowMs: 60_000 } });
    const t = await pool.sandboxFor('t');
    const mod = await t.load(fx.start_burn.url, { integrity: fx.start_burn.integrity });
    const inst = await t.instantiate(mod);
    const startFuel = inst.startFuel;
    const charged = t.stats.fuelInWindow;
    const answer = (await inst.call('answer')).results[0];
    pool.dispose();
    // A window smaller than the start function: it runs (it cannot be cut), is charged, and
    // the window is used up for the next call and the next instantiation.
    const small = nb.createTenantPool({ fuelPerWindow: { fuel: 100_000, windowMs: 60_000 } });
    const u = await small.sandboxFor('u');
    const umod = await u.load(fx.start_burn.url, { integrity: fx.start_burn.integrity });
    const uinst = await u.instantiate(umod);
    const uCharged = u.stats.fuelInWindow;
    const call = await window.caught(uinst.call('answer'));
    const again = await window.caught(u.instantiate(umod));
    small.dispose();
    // A start function that runs out of the sandbox's fuel: charged from details.metrics.
    const tight = nb.createTenantPool({
      fuelPerWindow: { fuel: 1_000_000_000, windowMs: 60_000 },
      sandboxOptions: { limits: { fuel: 500_000 } },
    });
    const v = await tight.sandboxFor('v');
    const vmod = await v.load(fx.start_burn.url, { integrity: fx.start_burn.integrity });
    const failed = await window.caught(v.instantiate(vmod));
    const vCharged = v.stats.fuelInWindow;
    tight.dispose();
    return { startFuel, charged, answer, uCharged, call, again, failed, vCharged };
  });
  assert.ok(out.startFuel > 600_000, `start fuel ${out.startFuel}`);
  assert.equal(out.charged, out.startFuel, 'the window was charged what the start function consumed');
  assert.equal(out.answer, 42);
  assert.equal(out.uCharged, out.startFuel);
  assert.equal(out.call.code, 'FUEL_EXHAUSTED');
  assert.equal(out.call.details.tenant, 'u');
  assert.match(out.call.message, /is used up/);
  assert.equal(out.again.code, 'FUEL_EXHAUSTED');
  assert.equal(out.again.details.tenant, 'u');
  assert.equal(out.failed.code, 'FUEL_EXHAUSTED');
  assert.equal(out.failed.details.tenant, undefined, "the sandbox's own limit");
  assert.ok(out.failed.details.metrics.fuelConsumed > 490_000, JSON.stringify(out.failed.details));
  assert.equal(out.vCharged, out.failed.details.metrics.fuelConsumed);
});

test("runWasi's metrics include a start function's fuel, and the tenant's window is charged it", async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const smod = await sb.load(fx.wasi_start_burn.url, { integrity: fx.wasi_start_burn.integrity });
    const plain = await sb.runWasi(smod);
    const bmod = await sb.load(fx.start_burn.url, { integrity: fx.start_burn.integrity });
    const startFuel = (await sb.instantiate(bmod)).startFuel; // the same loop, not under WASI
    sb.dispose();
    const pool = nb.createTenantPool({ fuelPerWindow: { fuel: 1_000_000_000, windowMs: 60_000 } });
    const t = await pool.sandboxFor('t');
    const mod = await t.load(fx.wasi_start_burn.url, { integrity: fx.wasi_start_burn.integrity });
    const run = await t.runWasi(mod);
    const stats = t.stats;
    pool.dispose();
    return { plain: plain.metrics, startFuel, run: run.metrics, exitCode: run.exitCode, stats };
  });
  assert.equal(out.exitCode, 0);
  assert.ok(out.startFuel > 600_000, String(out.startFuel));
  assert.ok(out.plain.fuelConsumed >= out.startFuel, `run ${out.plain.fuelConsumed}, start ${out.startFuel}`);
  assert.equal(out.run.fuelConsumed, out.plain.fuelConsumed);
  assert.equal(out.stats.fuelInWindow, out.run.fuelConsumed, 'the window was charged the start function too');
});

test('a call the watchdog ends (no metrics) is charged its whole fuel reservation', async () => {
  // tests/browser/pages/evil-worker.js hangs for good on a call of `__hang`.
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const pool = nb.createTenantPool({
      fuelPerWindow: { fuel: 1_000_000_000, windowMs: 60_000 },
      sandboxOptions: { workerUrl: '/tests/evil-worker.js', watchdogGraceMs: 200, limits: { timeoutMs: 2_000 } },
    });
    const t = await pool.sandboxFor('t');
    const mod = await t.load(fx.spin.url, { integrity: fx.spin.integrity });
    const inst = await t.instantiate(mod);
    const hung = await window.caught(inst.call('__hang', [], { timeoutMs: 200, fuel: 300_000_000 }));
    const stats = t.stats;
    pool.dispose();
    return { hung, stats };
  });
  assert.equal(out.hung.code, 'TIMEOUT');
  assert.equal(out.hung.details.workerRestarted, true);
  assert.equal(out.hung.details.metrics.slices, 0, 'the worker was replaced: no measure');
  assert.equal(out.stats.fuelInWindow, 300_000_000, 'charged the whole reservation');
  assert.equal(out.stats.fuelReserved, 0);
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

test('a Sandbox garbage-collected without dispose() is reported (console.warn and onSandboxLeak) and its worker ended', async (t) => {
  if (chromiumOnly(t, 'forcing garbage collection needs V8’s --expose-gc (gc())')) return;
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
