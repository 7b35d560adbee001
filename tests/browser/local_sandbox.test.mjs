// The `nestbox/worker` entry inside a worker the page created: the core runs in that
// thread, synchronous host functions get a synchronous view, and cancellation still works.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { openBrowser, skipWithoutUsing } from './harness.mjs';

let browser;
before(async () => {
  browser = await openBrowser();
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

test('createLocalSandbox in a page-created worker, with a synchronous host function', async () => {
  const report = await browser.page.evaluate(
    () =>
      new Promise((resolve) => {
        const worker = new Worker('/tests/local-worker.js', { type: 'module' });
        worker.onmessage = (e) => {
          worker.terminate();
          resolve(e.data);
        };
        worker.onerror = (e) => resolve({ error: e.message });
        worker.postMessage(window.fx);
      }),
  );
  assert.equal(report.error, undefined, report.error);
  assert.deepEqual(report.run, [42]);
  assert.equal(report.hostCalls, 1);
  assert.deepEqual(report.seen.slice(0, 1), ['hello from the guest']);
  assert.equal(report.after, 'HELLO');
  assert.equal(report.loop, 499500);
  assert.equal(
    report.seenAll[1],
    'hello from the guest',
    'an async capability works in a local sandbox (fresh instance)',
  );
  assert.equal(report.oob.code, 'TRAP');
  assert.equal(report.oob.trapCode, 'memory_out_of_bounds');
  assert.equal(report.oob.denials, 1);
  assert.equal(report.cancelled.code, 'CANCELLED');
  assert.equal(report.timeout.code, 'TIMEOUT');
  assert.equal(report.busy.code, 'BUSY');
  assert.equal(report.disposed.code, 'DISPOSED');
  assert.equal(report.stats.denials, 1);
  console.log(
    `local sandbox: 1,000 sync host calls in ${report.loopMs.toFixed(1)} ms; cancel latency ${report.cancelMs.toFixed(1)} ms`,
  );
  assert.ok(report.cancelMs < 500);
});

test('a local sandbox has the audit log of a page sandbox: entries, chain, head, onAudit, tampering detected; `using` disposes', async (t) => {
  if (await skipWithoutUsing(t, browser.page)) return;
  const report = await browser.page.evaluate(
    () =>
      new Promise((resolve) => {
        const worker = new Worker('/tests/local-audit-worker.js', { type: 'module' });
        worker.onmessage = (e) => {
          worker.terminate();
          resolve(e.data);
        };
        worker.onerror = (e) => resolve({ error: e.message });
        worker.postMessage(window.fx);
      }),
  );
  assert.equal(report.error, undefined, report.error);
  assert.deepEqual(report.run, [42]);
  assert.equal(report.refused, 'CAPABILITY_REVOKED');
  assert.equal(report.mismatch, 'INTEGRITY_MISMATCH');
  // Every operation is in the log, in order.
  const expected = [
    'load:ok',
    'instantiate:ok',
    'call:ok',
    'revoke:ok',
    'deny:CAPABILITY_REVOKED',
    'load:INTEGRITY_MISMATCH',
  ];
  let at = -1;
  for (const event of expected) {
    const next = report.events.indexOf(event, at + 1);
    assert.ok(next > at, `${event} after the previous ones in ${report.events.join(', ')}`);
    at = next;
  }
  assert.ok(
    report.events.some((e) => e.startsWith('grant:')),
    'the grant is logged',
  );
  assert.deepEqual(
    report.seqs,
    report.seqs.map((_, i) => i),
    'one chain from seq 0',
  );
  assert.deepEqual(report.streamed, report.hashes, 'onAudit saw every entry, in order');
  assert.equal(report.head, report.hashes.at(-1));
  assert.equal(report.jsonlLines, report.hashes.length);
  assert.deepEqual(report.verify, { ok: true });
  assert.deepEqual(report.verifyHead, { ok: true });
  assert.equal(report.verifyWrongHead.ok, false, 'a head that is not the log’s is refused');
  assert.equal(report.tampered.ok, false, 'a changed entry is detected');
  assert.equal(report.tampered.index, report.callIndex);
  assert.equal(report.removed.ok, false, 'a removed entry is detected');
  // `using` on a local sandbox, module and instance.
  assert.deepEqual(report.answer, [42]);
  assert.deepEqual(report.aliveInside, [true, true, true]);
  assert.deepEqual(report.aliveAfter, [false, false, false]);
  // After dispose (twice): the log is still there and still verifies.
  assert.ok(report.afterDispose >= report.hashes.length);
  assert.deepEqual(report.afterDisposeVerify, { ok: true });
  assert.equal(report.disposed, 'DISPOSED');
});
