// nestbox/worker's direct path: a syncCapability is called by the interpreter from inside
// the guest's call (no host-call step). Its values and memory are those of the step path,
// and every failure — a throw, a wrong answer, a revocation or quota reached mid-call, a
// capability that re-enters its sandbox or disposes it — ends as it does there, with the
// same codes, counts and audit entries, never with a half-answered guest.
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

/** The guest of every case. */
const GUEST = 'direct_host';

/** Runs one case of pages/local-direct-worker.js in a worker of the test page. */
async function run(name) {
  const report = await browser.page.evaluate(
    ([name, guest]) =>
      new Promise((resolve) => {
        const worker = new Worker('/tests/local-direct-worker.js', { type: 'module' });
        worker.onmessage = (e) => {
          worker.terminate();
          resolve(e.data);
        };
        worker.onerror = (e) => resolve({ error: e.message });
        worker.postMessage({ guest: window.fx[guest], name });
      }),
    [name, GUEST],
  );
  assert.equal(report.error, undefined, report.error);
  if (process.env.DUMP) console.log(name, JSON.stringify(report, null, 1));
  return report;
}

test('values cross as on the step path: i64 as BigInt (wrapped to 64 bits), f32, f64, two results', async () => {
  const r = await run('values');
  assert.deepEqual(r.seen, [
    ['bigint', '-1099511627776', 1.5, 0.25, -3],
    ['bigint', String(2n ** 62n), 0, 0, 0],
  ]);
  assert.deepEqual(r.big, ['-2199023255552', '-1.25']);
  assert.deepEqual(r.wrapped, [String(-(2n ** 63n)), '0'], '2^63 is taken as a u64 and wraps, as the core does');
  assert.equal(r.loop, 49_995_000);
  assert.equal(r.hostCalls, 10_000);
});

test('each direct call costs the same fuel and counts as a host call, as a stepped one', async () => {
  const r = await run('fuel');
  assert.deepEqual(r.direct, r.stepped);
  assert.equal(r.direct[1], 500);
});

test('the memory view follows a guest memory that grows (and moves) between calls, and closes after each', async () => {
  const r = await run('memory');
  assert.equal(r.result, 79, 'peek(0) = 7 before the growth, peek(1 MiB) = 9 after it');
  assert.equal(r.size, 17 * 65536);
  assert.equal(r.after.code, 'INVALID_ARGUMENT');
  assert.match(r.after.message, /after its host call returned/);
});

test('a capability that throws ends the call with HOST_ERROR, the instance poisoned, the sandbox fine', async () => {
  const r = await run('throws');
  assert.equal(r.failed.code, 'HOST_ERROR');
  assert.equal(r.failed.cause, 'boom');
  assert.equal(r.failed.capabilityName, 'flaky');
  assert.equal(r.failed.hostCalls, 3);
  assert.match(r.failed.message, /flaky \(env\.next\) threw: boom/);
  assert.equal(r.again.code, 'POISONED');
  assert.equal(r.works, true);
});

test('an answer of the wrong type is HOST_ERROR, with the messages of the step path', async () => {
  const r = await run('wrongTypes');
  for (const label of ['string', 'bigint for i32', 'over 2^32', 'fraction', 'array of two', 'nothing']) {
    assert.equal(r[label].code, 'HOST_ERROR', label);
    assert.equal(r[label].name, 'SandboxError', label);
    assert.equal(r[label].hostCalls, 1, label);
  }
  assert.match(r.string.message, /returned string, not a number or bigint/);
  assert.match(r['bigint for i32'].message, /must be an i32/);
  assert.match(r['over 2^32'].message, /got number 4294967296/);
  assert.equal(r.array, 6, '[x] answers one result');
  assert.equal(r.wrapped, -3, '2^32-1 is -1');
});

test('revoked mid-call: the call that revoked returns, the next is CAPABILITY_REVOKED, logged in order', async () => {
  const r = await run('revokedMidCall');
  assert.equal(r.calls, 5, 'the function never ran after its revocation');
  assert.equal(r.failed.code, 'CAPABILITY_REVOKED');
  assert.equal(r.failed.hostCalls, 6);
  assert.equal(r.failed.denials, 1);
  assert.deepEqual(r.events.slice(-3), ['revoke:ok', 'deny:CAPABILITY_REVOKED', 'call:CAPABILITY_REVOKED']);
  assert.equal(r.verified, true);
});

test('a quota of N calls: the N+1th is CAPABILITY_QUOTA, a deny entry and a denial', async () => {
  const r = await run('quota');
  assert.equal(r.within, 45);
  assert.equal(r.failed.code, 'CAPABILITY_QUOTA');
  assert.equal(r.failed.denials, 1);
  assert.deepEqual(r.deny, ['CAPABILITY_QUOTA']);
  assert.equal(r.denials, 1);
});

test('a synchronous capability that re-enters its sandbox gets BUSY, and the sandbox is unharmed', async () => {
  const r = await run('reentry');
  for (const what of ['memory', 'otherCall', 'load']) {
    assert.equal(r[what].code, 'BUSY', what);
    assert.match(r[what].message, /cannot use its own sandbox/, what);
  }
  assert.equal(r.stats, true);
  assert.equal(r.result, 6);
  assert.equal(r.afterwards, 6, 'the other instance works after the call');
  assert.equal(r.verified, true);
});

test('a capability that disposes its own instance or its sandbox ends the call with DISPOSED', async () => {
  const own = await run('disposeInside');
  assert.equal(own.failed.code, 'DISPOSED');
  assert.equal(own.later.code, 'DISPOSED');
  assert.equal(own.works, true, 'the instance was dropped from the core (maxInstances)');
  assert.equal(own.disposeEntries, 1);
  const sandbox = await run('disposeSandboxInside');
  assert.equal(sandbox.failed.code, 'DISPOSED');
  assert.equal(sandbox.failed.hostCalls, 3);
  assert.equal(sandbox.alive, false);
});

test('a syncCapability answering with a promise takes the step path for that call', async () => {
  const r = await run('promise');
  assert.equal(r.result, 45);
  assert.equal(r.hostCalls, 10);
  assert.equal(r.failed.code, 'HOST_ERROR');
  assert.equal(r.failed.cause, 'later');
  assert.equal(r.failed.hostCalls, 4);
});

test('a traced call steps, with a span per capability call', async () => {
  const r = await run('traced');
  assert.equal(r.result, 3);
  assert.equal(r.capabilitySpans, 3);
});

test('the deadline is checked after each direct call: a slow capability ends the call with TIMEOUT', async () => {
  const r = await run('timeout');
  assert.equal(r.failed.code, 'TIMEOUT');
  assert.ok(r.failed.hostCalls >= 1 && r.failed.hostCalls < 1000, String(r.failed.hostCalls));
});
