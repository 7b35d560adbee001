// A WASI run that ends in an error keeps what the guest wrote: a guest that writes to stdout
// and stderr and then traps (as a Rust panic does: its message on stderr, then `unreachable`)
// fails with TRAP and `details.stdout` / `details.stderr` (Uint8Array), on the page
// (`sandbox.runWasi`) and in `nestbox/worker` (LocalSandbox.runWasi) alike.
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

const PANIC = "thread 'main' panicked at src/main.rs:2:5:\nboom\n";

/** Checks the error of the panicking guest (described as plain data, output decoded). */
function assertKeptOutput(e, where) {
  assert.equal(e.code, 'TRAP', `${where}: ${JSON.stringify(e)}`);
  assert.equal(e.trapCode, 'unreachable', where);
  assert.equal(e.stdoutIsBytes, true, `${where}: details.stdout is a Uint8Array`);
  assert.equal(e.stderrIsBytes, true, `${where}: details.stderr is a Uint8Array`);
  assert.equal(e.stdout, 'partial result\n', where);
  assert.equal(e.stderr, PANIC, `${where}: the panic message is kept`);
  assert.ok(e.fuelConsumed > 0, `${where}: metrics too`);
}

test('runWasi on the page: a guest that panics is TRAP with its stdout and stderr in the details', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.wasi_panic.url, { integrity: fx.wasi_panic.integrity });
    const streamed = [];
    const describe = (e) => ({
      code: e.code,
      trapCode: e.details?.trapCode,
      stdoutIsBytes: e.details?.stdout instanceof Uint8Array,
      stderrIsBytes: e.details?.stderr instanceof Uint8Array,
      stdout: e.details?.stdout && new TextDecoder().decode(e.details.stdout),
      stderr: e.details?.stderr && new TextDecoder().decode(e.details.stderr),
      fuelConsumed: e.details?.metrics?.fuelConsumed,
    });
    const e = await sb.runWasi(mod, { onStderr: (c) => streamed.push(new TextDecoder().decode(c)) }).catch(describe);
    // Within a tenant pool too (its error wraps nothing here: the trap is the guest's own).
    const pool = nb.createTenantPool({ fuelPerWindow: { fuel: 1_000_000_000, windowMs: 60_000 } });
    const t = await pool.sandboxFor('t');
    const tmod = await t.load(fx.wasi_panic.url, { integrity: fx.wasi_panic.integrity });
    const te = await t.runWasi(tmod).catch(describe);
    // Capped output: the details hold what the caps let through, no more.
    const capped = await sb.runWasi(mod, { limits: { maxStderrBytes: 10 } }).catch(describe);
    pool.dispose();
    sb.dispose();
    return { e, streamed: streamed.join(''), te, capped };
  });
  assertKeptOutput(out.e, 'page');
  assert.equal(out.streamed, PANIC, 'onStderr saw it too');
  assertKeptOutput(out.te, 'tenant');
  assert.equal(out.capped.code, 'OUTPUT_LIMIT', JSON.stringify(out.capped));
  assert.equal(out.capped.stderr, PANIC.slice(0, 10));
  assert.equal(out.capped.stdout, 'partial result\n');
});

test('runWasi in nestbox/worker (LocalSandbox): the same error, the same details', async () => {
  const out = await browser.page.evaluate(
    () =>
      new Promise((resolve) => {
        const worker = new Worker('/tests/wasi-panic-local-worker.js', { type: 'module' });
        worker.onmessage = (e) => {
          worker.terminate();
          resolve(e.data);
        };
        worker.onerror = (e) => resolve({ error: e.message });
        worker.postMessage(window.fx.wasi_panic);
      }),
  );
  assert.equal(out.error, undefined, out.error);
  assertKeptOutput(out.e, 'nestbox/worker');
});
