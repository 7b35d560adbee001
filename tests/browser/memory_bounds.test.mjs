// Guest pointers reach host functions only through the bounds-checked view: an
// out-of-bounds (ptr, len) is TRAP / memory_out_of_bounds — never a clamp — and a denial.
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

test('an out-of-bounds pointer from the guest: the view rejects; propagated, the guest call ends with TRAP', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.oob_pointer.url, { integrity: fx.oob_pointer.integrity });
    const seen = [];
    const naive = nb.capability(
      async (mem, ptr, len) => {
        seen.push([ptr, len]);
        await mem.readString(ptr, len);
      },
      { params: ['i32', 'i32'], results: [] },
    );
    const inst = await sb.instantiate(mod, { imports: { env: { log: naive } } });
    const propagated = await window.caught(inst.call('run'));

    let caughtInHost;
    const careful = nb.capability(
      async (mem, ptr, len) => {
        try {
          await mem.read(ptr, len);
        } catch (e) {
          caughtInHost = window.describe(e);
        }
      },
      { params: ['i32', 'i32'], results: [] },
    );
    const inst2 = await sb.instantiate(mod, { imports: { env: { log: careful } } });
    const handled = await inst2.call('run');

    // The embedder's own view refuses too; the last byte is fine, one past it is not.
    const edge = await window.caught(inst2.memory.read(65535, 1));
    const past = await window.caught(inst2.memory.read(65535, 2));
    const notI32 = await window.caught(inst2.memory.read(2 ** 32, 1));
    const stats = sb.stats;
    sb.dispose();
    return {
      seen,
      propagated,
      caughtInHost,
      handled: { results: handled.results, metrics: handled.metrics },
      edge,
      past,
      notI32,
      stats,
    };
  });
  assert.deepEqual(out.seen, [[-16, 32]], 'the host gets the guest i32 as it is');
  assert.equal(out.propagated.code, 'TRAP');
  assert.equal(out.propagated.details.trapCode, 'memory_out_of_bounds');
  assert.equal(out.propagated.details.import, 'env.log');
  assert.equal(out.propagated.details.metrics.denials, 1);
  assert.equal(out.caughtInHost.code, 'TRAP');
  assert.equal(out.caughtInHost.details.trapCode, 'memory_out_of_bounds');
  assert.deepEqual(out.handled.results, [7], 'a refusal the host handled does not end the call');
  assert.equal(out.handled.metrics.denials, 1);
  assert.equal(out.edge.resolved, true);
  assert.equal(out.past.code, 'TRAP');
  assert.equal(out.notI32.code, 'INVALID_ARGUMENT');
  assert.equal(out.notI32.isTypeError, true);
  assert.equal(out.stats.denials, 2);
});

test('a view used after its host call returned is refused', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    let kept;
    const log = nb.capability((mem) => void (kept = mem), { params: ['i32', 'i32'], results: [] });
    const inst = await sb.instantiate(mod, { imports: { env: { log } } });
    await inst.call('run', [1]);
    const late = await window.caught(kept.read(16, 4));
    sb.dispose();
    return late;
  });
  assert.ok(['INVALID_ARGUMENT', 'CANCELLED'].includes(out.code), out.code);
});
