// The trust policy (signatures, origins, the deny list) and the audit log through the page
// API: every decision logged, entries streamed to onAudit in order, a log that verifies with
// the core's verifier and fails at the right index when tampered with, revocations and
// denials logged with their codes, and a log that survives the worker being replaced.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
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

/** An Ed25519 key pair as `nestbox keygen` makes one: the public key in base64, a signer. */
function keyPair(id) {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url');
  return {
    id,
    publicKey: raw.toString('base64'),
    /** `<key id>:<base64>` over "nestbox-module-v1\n" ‖ SHA-256(bytes), as `nestbox sign`. */
    sign(bytes, asId = id) {
      const message = Buffer.concat([Buffer.from('nestbox-module-v1\n'), createHash('sha256').update(bytes).digest()]);
      return `${asId}:${sign(null, message, privateKey).toString('base64')}`;
    },
  };
}

test('signatures: a good one loads; wrong key, other bytes, malformed or missing are SIGNATURE_INVALID, each logged', async () => {
  const release = keyPair('release');
  const attacker = keyPair('release'); // same id, other key
  const { spin, host_loop: other } = browser.fixtures;
  const sigs = {
    good: release.sign(spin.bytes),
    wrongKey: attacker.sign(spin.bytes),
    otherBytes: release.sign(other.bytes),
    unknownKey: release.sign(spin.bytes, 'nobody'),
    malformed: 'release:not-base64!',
    noColon: 'releaseAAAA',
  };
  const out = await browser.page.evaluate(
    async ({ keys, sigs }) => {
      const { nb, fx } = window;
      const results = {};
      for (const [name, signature] of Object.entries(sigs)) {
        // denyAfterFailure off: each case starts from a clean slate in one sandbox.
        const sb = await nb.createSandbox({ policy: { keys, requireSignature: true, denyAfterFailure: false } });
        const r = await window.caught(sb.load(fx.spin.url, { integrity: fx.spin.integrity, signature }));
        const entries = await sb.audit.entries();
        results[name] = { r, policy: entries.filter((e) => e.event === 'policy') };
        sb.dispose();
      }
      const sb = await nb.createSandbox({ policy: { keys, requireSignature: true } });
      results.missing = { r: await window.caught(sb.load(fx.spin.url, { integrity: fx.spin.integrity })) };
      sb.dispose();
      const notRequired = await nb.createSandbox({ policy: { keys } });
      results.optional = { r: await window.caught(notRequired.load(fx.spin.url, { integrity: fx.spin.integrity })) };
      notRequired.dispose();
      return results;
    },
    { keys: [{ id: release.id, publicKey: release.publicKey }], sigs },
  );
  assert.equal(out.good.r.resolved, true, JSON.stringify(out.good.r));
  assert.equal(out.good.policy[0].outcome, 'ok');
  assert.equal(out.good.policy[0].extra.keyId, 'release');
  for (const name of ['wrongKey', 'otherBytes', 'unknownKey', 'malformed', 'noColon']) {
    assert.equal(out[name].r.code, 'SIGNATURE_INVALID', `${name}: ${JSON.stringify(out[name].r)}`);
    assert.equal(out[name].policy.length, 1, name);
    assert.equal(out[name].policy[0].outcome, 'SIGNATURE_INVALID', name);
    assert.equal(out[name].policy[0].moduleSha256, browser.fixtures.spin.integrity, name);
    assert.ok(out[name].policy[0].extra.reason.length > 0, name);
  }
  assert.match(out.unknownKey.r.message, /unknown key/);
  assert.match(out.malformed.r.message, /malformed signature/);
  assert.equal(out.missing.r.code, 'SIGNATURE_INVALID');
  assert.match(out.missing.r.message, /requires one/);
  assert.equal(out.optional.r.resolved, true, 'unsigned is fine when signatures are not required');
});

test('deny list: a module that failed integrity or its signature stays denied, even when right later', async () => {
  const release = keyPair('release');
  const { spin, host_loop: hostLoop } = browser.fixtures;
  const out = await browser.page.evaluate(
    async ({ keys, bad, good }) => {
      const { nb, fx } = window;
      const sb = await nb.createSandbox({ policy: { keys } });
      const badSig = await window.caught(sb.load(fx.spin.url, { integrity: fx.spin.integrity, signature: bad }));
      const goodSig = await window.caught(sb.load(fx.spin.url, { integrity: fx.spin.integrity, signature: good }));
      // Integrity: the bytes of host_loop pinned as spin's digest; later pinned right.
      const mismatch = await window.caught(sb.load(fx.host_loop.url, { integrity: fx.spin.integrity }));
      const rightDigest = await window.caught(sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity }));
      const entries = await sb.audit.entries();
      sb.dispose();
      return { badSig, goodSig, mismatch, rightDigest, entries };
    },
    {
      keys: [{ id: release.id, publicKey: release.publicKey }],
      bad: keyPair('release').sign(spin.bytes),
      good: release.sign(spin.bytes),
    },
  );
  assert.equal(out.badSig.code, 'SIGNATURE_INVALID');
  assert.equal(out.goodSig.code, 'POLICY_DENIED');
  assert.match(out.goodSig.message, /failed verification earlier/);
  assert.equal(out.mismatch.code, 'INTEGRITY_MISMATCH');
  assert.equal(out.rightDigest.code, 'POLICY_DENIED');
  const outcomes = out.entries.map((e) => `${e.event}:${e.outcome}`);
  assert.deepEqual(outcomes, [
    'policy:SIGNATURE_INVALID',
    'policy:POLICY_DENIED',
    'load:INTEGRITY_MISMATCH',
    'policy:POLICY_DENIED',
  ]);
  assert.equal(out.entries[2].moduleSha256, hostLoop.integrity, 'the digest of the bytes received is denied');
});

test('the deny list survives a worker replaced by the watchdog', async () => {
  const release = keyPair('release');
  const { spin } = browser.fixtures;
  const out = await browser.page.evaluate(
    async ({ keys, bad, good }) => {
      const { nb, fx } = window;
      const sb = await nb.createSandbox({
        policy: { keys },
        workerUrl: '/tests/evil-worker.js',
        watchdogGraceMs: 200,
        limits: { timeoutMs: 2_000 },
      });
      const badSig = await window.caught(sb.load(fx.spin.url, { integrity: fx.spin.integrity, signature: bad }));
      const other = await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
      const next = nb.capability((_m, i) => i, { params: ['i32'], results: ['i32'] });
      const inst = await sb.instantiate(other, { imports: { env: { next } } });
      const hung = await window.caught(inst.call('__hang', [], { timeoutMs: 100 }));
      const goodSig = await window.caught(sb.load(fx.spin.url, { integrity: fx.spin.integrity, signature: good }));
      const entries = await sb.audit.entries();
      const verified = await nb.verifyAuditLog(entries, await sb.audit.head());
      sb.dispose();
      return { badSig, hung, goodSig, last: entries.at(-1), restarts: sb.stats.workerRestarts, verified };
    },
    {
      keys: [{ id: release.id, publicKey: release.publicKey }],
      bad: keyPair('release').sign(spin.bytes),
      good: release.sign(spin.bytes),
    },
  );
  assert.equal(out.badSig.code, 'SIGNATURE_INVALID');
  assert.equal(out.hung.code, 'TIMEOUT');
  assert.equal(out.restarts, 1);
  assert.equal(out.goodSig.code, 'POLICY_DENIED', 'still denied in the new worker');
  assert.match(out.goodSig.message, /since replaced/);
  assert.equal(out.last.event, 'policy');
  assert.equal(out.last.outcome, 'POLICY_DENIED');
  assert.deepEqual(out.verified, { ok: true });
});

test('origins: the origin is where the bytes were fetched from; a digest allowed for another origin is denied', async () => {
  const { spin, host_loop: hostLoop } = browser.fixtures;
  const out = await browser.page.evaluate(
    async ({ here, there }) => {
      const { nb, fx } = window;
      const policy = { origins: { [here]: [fx.spin.integrity], [there]: [fx.host_loop.integrity] } };
      const sb = await nb.createSandbox({ policy });
      const spinHere = await window.caught(sb.load(`${here}${fx.spin.url}`, { integrity: fx.spin.integrity }));
      const relative = await window.caught(sb.load(fx.spin.url, { integrity: fx.spin.integrity }));
      const spinThere = await window.caught(sb.load(`${there}${fx.spin.url}`, { integrity: fx.spin.integrity }));
      const loopThere = await window.caught(
        sb.load(new URL(`${there}${fx.host_loop.url}`), { integrity: fx.host_loop.integrity }),
      );
      const response = await window.caught(
        sb.load(await fetch(`${there}${fx.host_loop.url}`), { integrity: fx.host_loop.integrity }),
      );
      const bytes = await window.bytesOf('spin');
      const bytesUnknown = await window.caught(sb.load(bytes, { integrity: fx.spin.integrity }));
      const bytesClaimed = await window.caught(sb.load(bytes, { integrity: fx.spin.integrity, origin: here }));
      const disagree = await window.caught(
        sb.load(`${there}${fx.spin.url}`, { integrity: fx.spin.integrity, origin: here }),
      );
      const notAnOrigin = await window.caught(sb.load(bytes, { integrity: fx.spin.integrity, origin: `${here}/x` }));
      const badPolicy = await window.caught(nb.createSandbox({ policy: { origins: { [`${here}/`]: [] } } }));
      const entries = await sb.audit.entries();
      sb.dispose();
      return {
        spinHere,
        relative,
        spinThere,
        loopThere,
        response,
        bytesUnknown,
        bytesClaimed,
        disagree,
        notAnOrigin,
        badPolicy,
        origins: entries.filter((e) => e.event === 'policy').map((e) => [e.outcome, e.extra?.origin ?? null]),
      };
    },
    { here: browser.base, there: browser.otherBase },
  );
  for (const ok of ['spinHere', 'relative', 'loopThere', 'response', 'bytesClaimed']) {
    assert.equal(out[ok].resolved, true, `${ok}: ${JSON.stringify(out[ok])}`);
  }
  assert.equal(out.spinThere.code, 'POLICY_DENIED');
  assert.match(out.spinThere.message, /not allowed for origin/);
  assert.equal(out.bytesUnknown.code, 'POLICY_DENIED');
  assert.match(out.bytesUnknown.message, /origin is unknown/);
  for (const misuse of ['disagree', 'notAnOrigin', 'badPolicy']) {
    assert.equal(out[misuse].code, 'INVALID_ARGUMENT', misuse);
    assert.equal(out[misuse].isTypeError, true, misuse);
  }
  assert.deepEqual(out.disagree.details, { origin: browser.base, fetchedFrom: browser.otherBase });
  assert.deepEqual(out.origins, [
    ['ok', browser.base],
    ['ok', browser.base],
    ['POLICY_DENIED', browser.otherBase],
    ['ok', browser.otherBase],
    ['ok', browser.otherBase],
    ['POLICY_DENIED', null],
    ['ok', browser.base],
  ]);
  assert.ok(spin && hostLoop);
});

test('a malformed policy is a TypeError (INVALID_ARGUMENT) from createSandbox', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb } = window;
    const cases = {
      unknownField: { allowDigests: [] },
      badDigest: { allowedDigests: ['md5-x'] },
      badKey: { keys: [{ id: 'k', publicKey: 'AAAA' }] },
      noKeys: { requireSignature: true },
      notObject: 'strict',
    };
    const out = {};
    for (const [name, policy] of Object.entries(cases)) out[name] = await window.caught(nb.createSandbox({ policy }));
    return out;
  });
  for (const [name, r] of Object.entries(out)) {
    assert.equal(r.code, 'INVALID_ARGUMENT', `${name}: ${JSON.stringify(r)}`);
    assert.equal(r.isTypeError, true, name);
  }
  assert.match(out.badDigest.message, /allowedDigests\[0\]/);
});

test('audit entries stream to onAudit in order, before each reply; the log verifies and tampering is found by index', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const streamed = [];
    const sb = await nb.createSandbox({ onAudit: (e) => streamed.push(e) });
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const afterLoad = streamed.map((e) => e.event);
    const log = nb.capability(() => {}, { params: ['i32', 'i32'], results: [], name: 'log' });
    const inst = await sb.instantiate(mod, { imports: { env: { log } } });
    const afterInstantiate = streamed.map((e) => e.event);
    await inst.call('run', [21]);
    const afterCall = streamed.map((e) => e.event);
    inst.dispose();
    const entries = await sb.audit.entries();
    const head = await sb.audit.head();
    const jsonl = await sb.audit.toJSONL();
    const same = JSON.stringify(entries) === JSON.stringify(streamed);
    const lines = jsonl.trim().split('\n');
    const v = (log, h) => nb.verifyAuditLog(log, h);
    const tampered = lines.map((l, i) => (i === 3 ? l.replace('"ok"', '"TRAP"') : l)).join('\n');
    const deleted = entries.filter((_, i) => i !== 2);
    const reordered = [entries[0], entries[2], entries[1], ...entries.slice(3)];
    const truncated = entries.slice(0, -1);
    const refreshed = { ...entries[1], time: entries[1].time + 1 };
    const checks = {
      ok: await v(jsonl, head),
      okEntries: await v(entries, head),
      okMethod: await sb.audit.verify(head),
      tampered: await v(tampered, head),
      deleted: await v(deleted, head),
      reordered: await v(reordered, head),
      truncatedNoHead: await v(truncated),
      truncated: await v(truncated, head),
      timeChanged: await v([entries[0], refreshed, ...entries.slice(2)], head),
      garbage: await v(['{"seq": 0}', ...lines.slice(1)]),
      wrongHead: await v(jsonl, '0'.repeat(64)),
    };
    const misuse = await window.caught(nb.verifyAuditLog(42));
    sb.dispose();
    const afterDispose = (await sb.audit.entries()).length;
    return { afterLoad, afterInstantiate, afterCall, entries, head, same, checks, misuse, afterDispose };
  });
  assert.deepEqual(out.afterLoad, ['policy', 'load']);
  assert.deepEqual(out.afterInstantiate, ['policy', 'load', 'instantiate', 'grant']);
  assert.deepEqual(out.afterCall, ['policy', 'load', 'instantiate', 'grant', 'call']);
  assert.deepEqual(
    out.entries.map((e) => e.event),
    ['policy', 'load', 'instantiate', 'grant', 'call', 'dispose'],
  );
  assert.ok(out.same, 'onAudit saw exactly the entries of the log, in order');
  assert.deepEqual(
    out.entries.map((e) => e.seq),
    [0, 1, 2, 3, 4, 5],
  );
  const call = out.entries[4];
  assert.equal(call.export, 'run');
  assert.equal(call.outcome, 'ok');
  assert.ok(call.fuel > 0);
  assert.match(call.extra.args, /^sha256-/);
  assert.match(call.extra.results, /^sha256-/);
  assert.equal(out.entries[3].extra.import, 'env.log');
  assert.equal(out.head, out.entries[5].hash);
  assert.deepEqual(out.checks.ok, { ok: true });
  assert.deepEqual(out.checks.okEntries, { ok: true });
  assert.deepEqual(out.checks.okMethod, { ok: true });
  assert.deepEqual(out.checks.truncatedNoHead, { ok: true }, 'without the head a cut tail cannot be seen');
  const at = (r) => (r.ok ? 'ok' : r.index);
  assert.equal(at(out.checks.tampered), 3);
  assert.equal(at(out.checks.deleted), 2);
  assert.equal(at(out.checks.reordered), 1);
  assert.equal(at(out.checks.truncated), 5);
  assert.equal(at(out.checks.timeChanged), 1);
  assert.equal(at(out.checks.garbage), 0);
  assert.equal(at(out.checks.wrongHead), 6);
  assert.match(out.checks.truncated.reason, /removed from the end/);
  assert.equal(out.misuse.code, 'INVALID_ARGUMENT');
  assert.equal(out.afterDispose, 6, 'the log is still readable after dispose');
});

test('revoke() is logged in every live sandbox that granted the token, once', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const next = nb.capability((_m, i) => i, { params: ['i32'], results: ['i32'], name: 'next' });
    const sbs = [await nb.createSandbox(), await nb.createSandbox(), await nb.createSandbox()];
    for (const sb of sbs.slice(0, 2)) {
      const mod = await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
      await sb.instantiate(mod, { imports: { env: { next } } });
    }
    const disposed = await nb.createSandbox();
    const dmod = await disposed.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
    await disposed.instantiate(dmod, { imports: { env: { next } } });
    disposed.dispose();
    nb.revoke(next);
    nb.revoke(next);
    const revokes = [];
    for (const sb of sbs) {
      revokes.push((await sb.audit.entries()).filter((e) => e.event === 'revoke'));
      sb.dispose();
    }
    return revokes;
  });
  assert.equal(out[0].length, 1);
  assert.equal(out[1].length, 1);
  assert.equal(out[2].length, 0, 'a sandbox that never granted it logs nothing');
  for (const [e] of out.slice(0, 2)) {
    assert.equal(e.outcome, 'ok');
    assert.equal(e.extra.capabilityName, 'next');
    assert.equal(e.extra.capability, '1');
    assert.equal(e.extra.source, 'page');
  }
});

test('denials reach the core log with their own codes (revoked, quota, out of bounds, refused grant)', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const loop = await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
    const oob = await sb.load(fx.oob_pointer.url, { integrity: fx.oob_pointer.integrity });
    const revoked = nb.capability((_m, i) => i, { params: ['i32'], results: ['i32'], name: 'revoked' });
    const quota = nb.capability((_m, i) => i, {
      params: ['i32'],
      results: ['i32'],
      name: 'quota',
      quota: { maxCalls: 1 },
    });
    const reader = nb.capability(async (mem, p, n) => void (await mem.read(p, n)), {
      params: ['i32', 'i32'],
      results: [],
      name: 'reader',
    });
    const a = await sb.instantiate(loop, { imports: { env: { next: revoked } } });
    nb.revoke(revoked);
    const r1 = await window.caught(a.call('run', [2]));
    const b = await sb.instantiate(loop, { imports: { env: { next: quota } } });
    const r2 = await window.caught(b.call('run', [2]));
    const c = await sb.instantiate(oob, { imports: { env: { log: reader } } });
    const r3 = await window.caught(c.call('run'));
    const r4 = await window.caught(sb.instantiate(loop, { imports: { env: { next: revoked } } }));
    const entries = await sb.audit.entries();
    sb.dispose();
    return {
      codes: [r1.code, r2.code, r3.code, r4.code],
      calls: entries.filter((e) => e.event === 'call').map((e) => e.outcome),
      denies: entries.filter((e) => e.event === 'deny').map((e) => [e.outcome, e.extra.source ?? 'core']),
      limits: entries.filter((e) => e.event === 'limit').map((e) => e.outcome),
    };
  });
  assert.deepEqual(out.codes, ['CAPABILITY_REVOKED', 'CAPABILITY_QUOTA', 'TRAP', 'CAPABILITY_REVOKED']);
  assert.deepEqual(out.calls, ['CAPABILITY_REVOKED', 'CAPABILITY_QUOTA', 'TRAP']);
  assert.deepEqual(out.denies, [
    ['CAPABILITY_REVOKED', 'core'],
    ['CAPABILITY_QUOTA', 'core'],
    ['CAPABILITY_REVOKED', 'page'],
  ]);
  assert.deepEqual(out.limits, ['CAPABILITY_QUOTA']);
});

test('a replaced worker loses no entries: the new chain links to the old one and the whole log verifies', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const streamed = [];
    const sb = await nb.createSandbox({
      workerUrl: '/tests/evil-worker.js',
      watchdogGraceMs: 200,
      limits: { timeoutMs: 2_000 },
      onAudit: (e) => streamed.push(e),
    });
    const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    const old = await sb.instantiate(mod);
    await old.call('answer');
    const hung = await window.caught(old.call('__hang', [], { timeoutMs: 200 }));
    const fresh = await sb.instantiate(mod);
    const answer = (await fresh.call('answer')).results[0];
    const entries = await sb.audit.entries();
    const head = await sb.audit.head();
    const v = (log, h) => nb.verifyAuditLog(log, h);
    const boundary = entries.findIndex((e, i) => i > 0 && e.seq === 0);
    const checks = {
      ok: await v(entries, head),
      jsonl: await v(await sb.audit.toJSONL(), head),
      cutBeforeReplacement: await v(
        entries.filter((_, i) => i !== boundary - 1),
        head,
      ),
      linkRemoved: await v(
        entries.filter((_, i) => i !== boundary),
        head,
      ),
    };
    sb.dispose();
    return {
      hung: hung.code,
      answer,
      entries,
      boundary,
      checks,
      same: JSON.stringify(streamed) === JSON.stringify(entries),
    };
  });
  assert.equal(out.hung, 'TIMEOUT');
  assert.equal(out.answer, 42);
  assert.ok(out.same);
  const link = out.entries[out.boundary];
  assert.deepEqual(
    out.entries.slice(0, out.boundary).map((e) => e.event),
    ['policy', 'load', 'instantiate', 'call'],
  );
  assert.equal(link.event, 'dispose');
  assert.equal(link.outcome, 'WORKER_CRASHED');
  assert.equal(link.extra.segment, 'worker_replaced');
  assert.equal(link.extra.previousHead, out.entries[out.boundary - 1].hash);
  assert.match(link.extra.reason, /no answer to call/);
  assert.deepEqual(
    out.entries.slice(out.boundary + 1).map((e) => e.event),
    ['policy', 'load', 'instantiate', 'call'],
    'the module was loaded again in the new worker, with its policy decision',
  );
  assert.deepEqual(out.checks.ok, { ok: true });
  assert.deepEqual(out.checks.jsonl, { ok: true });
  assert.equal(out.checks.cutBeforeReplacement.index, out.boundary - 1);
  assert.equal(out.checks.linkRemoved.index, out.boundary);
});
