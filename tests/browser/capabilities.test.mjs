// The capability table: opaque tokens, link-time checks by the core (IMPORT_NOT_GRANTED,
// SIGNATURE_MISMATCH), revocation, quotas, and forged ids from a compromised worker — every
// denial an error with its code, counted in the metrics.
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

test('a capability token is an empty, frozen object that exposes nothing', async () => {
  const out = await browser.page.evaluate(() => {
    const { nb } = window;
    const fn = () => 1;
    const token = nb.capability(fn, { params: [], results: ['i32'], name: 'secret' });
    return {
      keys: Reflect.ownKeys(token).length,
      protoKeys: Reflect.ownKeys(Object.getPrototypeOf(token)).map(String),
      frozen: Object.isFrozen(token),
      json: JSON.stringify(token),
      text: Object.prototype.toString.call(token),
      badDecl: window.describe(
        (() => {
          try {
            nb.capability(fn, { params: ['i33'], results: [] });
          } catch (e) {
            return e;
          }
        })(),
      ),
      notToken: window.describe(
        (() => {
          try {
            nb.revoke({});
          } catch (e) {
            return e;
          }
        })(),
      ),
    };
  });
  assert.equal(out.keys, 0);
  assert.deepEqual(out.protoKeys, ['Symbol(Symbol.toStringTag)']);
  assert.equal(out.frozen, true);
  assert.equal(out.json, '{}');
  assert.equal(out.text, '[object nestbox.Capability]');
  assert.equal(out.badDecl.code, 'INVALID_ARGUMENT');
  assert.equal(out.badDecl.isTypeError, true);
  assert.equal(out.badDecl.isSandboxError, true);
  assert.equal(out.notToken.isTypeError, true);
});

test('an import that was not granted fails instantiation with IMPORT_NOT_GRANTED from the core', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const other = nb.capability(() => {}, { params: ['i32', 'i32'], results: [] });
    const none = await window.caught(sb.instantiate(mod));
    const wrongName = await window.caught(sb.instantiate(mod, { imports: { env: { print: other } } }));
    sb.dispose();
    return { none, wrongName };
  });
  for (const e of [out.none, out.wrongName]) {
    assert.equal(e.code, 'IMPORT_NOT_GRANTED');
    assert.deepEqual(e.details.imports, ['env.log']);
  }
});

test('a capability declared with another signature fails with SIGNATURE_MISMATCH from the core', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const log = nb.capability(() => {}, { params: ['i32'], results: [] });
    const r = await window.caught(sb.instantiate(mod, { imports: { env: { log } } }));
    sb.dispose();
    return r;
  });
  assert.equal(out.code, 'SIGNATURE_MISMATCH');
  assert.deepEqual(out.details.imports, ['env.log']);
});

test('revoke(): the next call fails the guest call with CAPABILITY_REVOKED, in every sandbox', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb1 = await nb.createSandbox();
    const sb2 = await nb.createSandbox();
    let calls = 0;
    const next = nb.capability((_m, i) => (calls++, i), { params: ['i32'], results: ['i32'], name: 'next' });
    const mod1 = await sb1.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
    const mod2 = await sb2.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
    const a = await sb1.instantiate(mod1, { imports: { env: { next } } });
    const b = await sb2.instantiate(mod2, { imports: { env: { next } } });
    const before = (await a.call('run', [3])).results[0];
    nb.revoke(next);
    const ra = await window.caught(a.call('run', [3]));
    const rb = await window.caught(b.call('run', [3]));
    const regrant = await window.caught(sb1.instantiate(mod1, { imports: { env: { next } } }));
    const stats = sb1.stats;
    sb1.dispose();
    sb2.dispose();
    return { before, calls, ra, rb, regrant, revoked: nb.isRevoked(next), stats };
  });
  assert.equal(out.before, 3);
  assert.equal(out.calls, 3, 'the function never runs after revoke');
  for (const e of [out.ra, out.rb]) {
    assert.equal(e.code, 'CAPABILITY_REVOKED');
    assert.equal(e.details.import, 'env.next');
    assert.equal(e.details.capabilityName, 'next');
    assert.equal(e.details.metrics.denials, 1);
    assert.equal(e.details.metrics.hostCalls, 1);
  }
  assert.equal(out.regrant.code, 'CAPABILITY_REVOKED');
  assert.equal(out.revoked, true);
  assert.equal(out.stats.denials, 2);
});

test('quota of calls: the call past maxCalls fails with CAPABILITY_QUOTA', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
    let calls = 0;
    const next = nb.capability(() => (calls++, 1), { params: ['i32'], results: ['i32'], quota: { maxCalls: 5 } });
    const inst = await sb.instantiate(mod, { imports: { env: { next } } });
    const ok = (await inst.call('run', [3])).results[0];
    const inst2 = await sb.instantiate(mod, { imports: { env: { next } } });
    const over = await window.caught(inst2.call('run', [3]));
    sb.dispose();
    return { ok, calls, over };
  });
  assert.equal(out.ok, 3);
  assert.equal(out.calls, 5);
  assert.equal(out.over.code, 'CAPABILITY_QUOTA');
  assert.equal(out.over.details.quota, 'calls');
  assert.equal(out.over.details.limit, 5);
  assert.equal(out.over.details.metrics.hostCalls, 3);
  assert.equal(out.over.details.metrics.denials, 1);
});

test('quota of bytes: a read past maxBytes is refused; caught, the call goes on and counts the denial', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const refusals = [];
    const careful = nb.capability(
      async (mem, ptr, len) => {
        await mem.read(ptr, len); // 20 bytes: within the quota of 30
        try {
          await mem.read(ptr, len); // 40 in all: refused
        } catch (e) {
          refusals.push(e.code);
        }
      },
      { params: ['i32', 'i32'], results: [], quota: { maxBytes: 30 } },
    );
    const inst = await sb.instantiate(mod, { imports: { env: { log: careful } } });
    const ok = await inst.call('run', [1]);
    const careless = nb.capability(async (mem, ptr, len) => void (await mem.read(ptr, len)), {
      params: ['i32', 'i32'],
      results: [],
      quota: { maxBytes: 10 },
    });
    const inst2 = await sb.instantiate(mod, { imports: { env: { log: careless } } });
    const over = await window.caught(inst2.call('run', [1]));
    sb.dispose();
    return { refusals, okMetrics: ok.metrics, over };
  });
  assert.deepEqual(out.refusals, ['CAPABILITY_QUOTA']);
  assert.equal(out.okMetrics.denials, 1);
  assert.equal(out.over.code, 'CAPABILITY_QUOTA');
  assert.equal(out.over.details.quota, 'bytes');
  assert.equal(out.over.details.metrics.denials, 1);
});

test('quota of bytes under concurrency: accesses in flight together cannot pass maxBytes (reserved before the round trip, refunded when refused)', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const outcomes = [];
    // Five reads of 20 bytes at once against a quota of 50: exactly two fit.
    const greedy = nb.capability(
      async (mem, ptr, len) => {
        const settled = await Promise.allSettled([0, 1, 2, 3, 4].map(() => mem.read(ptr, len)));
        for (const s of settled) outcomes.push(s.status === 'fulfilled' ? s.value.length : s.reason.code);
      },
      { params: ['i32', 'i32'], results: [], quota: { maxBytes: 50 } },
    );
    const inst = await sb.instantiate(mod, { imports: { env: { log: greedy } } });
    const ran = await inst.call('run', [1]);
    // Two instances calling it at once share the same quota: 10 bytes left, two reads of 20
    // from one host call and one from the other: none fits.
    const firstOutcomes = [...outcomes];
    const inst2 = await sb.instantiate(mod, { imports: { env: { log: greedy } } });
    const inst3 = await sb.instantiate(mod, { imports: { env: { log: greedy } } });
    outcomes.length = 0;
    const both = await Promise.all([window.caught(inst2.call('run', [1])), window.caught(inst3.call('run', [1]))]);
    const later = [...outcomes];
    // A read that fails (out of bounds) is refunded: it moved nothing.
    const refunded = [];
    const once = nb.capability(
      async (mem, ptr, len) => {
        refunded.push(await mem.read(0xffff_fff0, 8).catch((e) => e.code));
        refunded.push((await mem.read(ptr, 8)).length);
      },
      { params: ['i32', 'i32'], results: [], quota: { maxBytes: 8 } },
    );
    const inst4 = await sb.instantiate(mod, { imports: { env: { log: once } } });
    const refund = await window.caught(inst4.call('run', [1]));
    sb.dispose();
    return { first: ran.metrics, firstOutcomes, later, both, refunded, refund };
  });
  // The first host call: two reads of 20 bytes moved (40 of 50), three refused.
  assert.deepEqual(out.firstOutcomes, [20, 20, 'CAPABILITY_QUOTA', 'CAPABILITY_QUOTA', 'CAPABILITY_QUOTA']);
  assert.equal(out.first.denials, 3);
  assert.equal(out.later.filter((o) => o === 20).length, 0, JSON.stringify(out.later));
  assert.equal(out.later.filter((o) => o === 'CAPABILITY_QUOTA').length, 10);
  for (const b of out.both) assert.equal(b.value?.metrics.denials, 5, JSON.stringify(b));
  assert.deepEqual(out.refunded, ['TRAP', 8], 'the failed read was refunded, the next one fits');
  assert.equal(out.refund.resolved, true, JSON.stringify(out.refund));
});

test('a forged capability id from the worker fails the guest call closed and replaces the worker, even if the worker then lies', async () => {
  // The "compromised worker" is tests/browser/pages/evil-worker.js: it wraps the real worker
  // script and rewrites the capability id of every host request to 999 (?forge); with ?lie it
  // also reports the failed call as a success. A forged id is a protocol violation: the
  // worker is terminated before it can say anything else, and the sandbox carries on in a
  // new one.
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const results = {};
    for (const query of ['forge=1', 'forge=1&lie=1']) {
      const sb = await nb.createSandbox({ workerUrl: `/tests/evil-worker.js?${query}` });
      const mod = await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
      let calls = 0;
      const next = nb.capability(() => (calls++, 1), { params: ['i32'], results: ['i32'] });
      const inst = await sb.instantiate(mod, { imports: { env: { next } } });
      const error = await window.caught(inst.call('run', [2]));
      // The sandbox works again in the replacement worker (the old instance is gone).
      const again = await window.caught(inst.call('run', [2]));
      const mod2 = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      const fresh = (await (await sb.instantiate(mod2)).call('answer')).results;
      results[query] = { error, again, fresh, calls, stats: sb.stats };
      sb.dispose();
    }
    return results;
  });
  for (const [query, r] of Object.entries(out)) {
    assert.equal(r.error.code, 'CAPABILITY_REVOKED', query);
    assert.equal(r.error.details.forged, true, query);
    assert.equal(r.error.details.capability, 999, query);
    assert.equal(r.error.details.metrics.denials, 1, query);
    assert.equal(r.calls, 0, `${query}: the host function never ran`);
    assert.equal(r.error.details.protocolViolation, true, query);
    assert.equal(r.error.details.workerRestarted, true, query);
    assert.equal(r.stats.denials, 1, query);
    assert.equal(r.stats.workerRestarts, 1, query);
    assert.equal(r.stats.protocolViolations, 1, query);
    assert.equal(r.again.code, 'WORKER_CRASHED', query);
    assert.deepEqual(r.fresh, [42], query);
    // Nothing the worker said about the call was believed: no metrics of its.
    assert.equal(r.error.details.metrics.fuelConsumed, 0, query);
  }
});

test('a synchronous capability cannot be granted to a page sandbox', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const local = await import('/pkg/local.js');
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const log = local.syncCapability(() => {}, { params: ['i32', 'i32'], results: [] });
    const r = await window.caught(sb.instantiate(mod, { imports: { env: { log } } }));
    sb.dispose();
    return r;
  });
  assert.equal(out.code, 'INVALID_ARGUMENT');
  assert.equal(out.isTypeError, true);
  assert.match(out.message, /createLocalSandbox/);
});
