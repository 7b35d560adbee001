// Lifetimes and misuse: dispose() and `using` (DISPOSED), one call at a time per instance
// (BUSY), verify-before-parse errors, and bad options as TypeErrors with a code.
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

test('use after dispose is DISPOSED everywhere; a call in flight ends with DISPOSED', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    const inst = await sb.instantiate(mod);
    const spinning = window.caught(inst.call('spin'));
    await new Promise((r) => setTimeout(r, 50));
    sb.dispose();
    sb.dispose(); // idempotent
    return {
      alive: [sb.alive, mod.alive, inst.alive],
      inFlight: await spinning,
      call: await window.caught(inst.call('answer')),
      load: await window.caught(sb.load(fx.spin.url, { integrity: fx.spin.integrity })),
      instantiate: await window.caught(sb.instantiate(mod)),
      memory: await window.caught(inst.memory.size()),
    };
  });
  assert.deepEqual(out.alive, [false, false, false]);
  for (const key of ['inFlight', 'call', 'load', 'instantiate', 'memory']) {
    assert.equal(out[key].code, 'DISPOSED', key);
    assert.equal(out[key].isSandboxError, true, key);
  }
});

test('`using` disposes the sandbox at the end of its block', async (t) => {
  if (await skipWithoutUsing(t, browser.page)) return;
  // A string: Node 20 itself cannot parse `using`, Chromium can.
  const out = await browser.page.evaluate(`(async () => {
    const { nb, fx } = window;
    let kept;
    {
      using sb = await nb.createSandbox();
      kept = sb;
      const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      using inst = await sb.instantiate(mod);
      await inst.call('answer');
    }
    return { alive: kept.alive, after: await window.caught(kept.load(fx.spin.url, { integrity: fx.spin.integrity })) };
  })()`);
  assert.equal(out.alive, false);
  assert.equal(out.after.code, 'DISPOSED');
});

test('a second call on a running instance is BUSY; other instances run concurrently', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    const inst = await sb.instantiate(mod);
    const other = await sb.instantiate(mod);
    const controller = new AbortController();
    const spinning = window.caught(inst.call('spin', [], { signal: controller.signal }));
    const busy = await window.caught(inst.call('answer'));
    const memoryBusy = await window.caught(inst.memory.size());
    const concurrent = (await other.call('answer')).results[0];
    const flag = inst.busy;
    controller.abort();
    const cancelled = await spinning;
    const disposedInstance = await sb.instantiate(mod);
    disposedInstance.dispose();
    const afterDispose = await window.caught(disposedInstance.call('answer'));
    sb.dispose();
    return { busy, memoryBusy, concurrent, flag, cancelled: cancelled.code, afterDispose };
  });
  assert.equal(out.busy.code, 'BUSY');
  assert.equal(out.memoryBusy.code, 'BUSY');
  assert.equal(out.concurrent, 42);
  assert.equal(out.flag, true);
  assert.equal(out.cancelled, 'CANCELLED');
  assert.equal(out.afterDispose.code, 'DISPOSED');
});

test('integrity is verified before parsing; bad options are TypeErrors with code INVALID_ARGUMENT', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const bytes = await window.bytesOf('spin');
    const wrong = fx.log_and_double.integrity;
    const notWasm = new TextEncoder().encode('definitely not wasm');
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', notWasm));
    const notWasmIntegrity = 'sha256-' + btoa(String.fromCharCode(...digest));
    const mod = await sb.load(bytes.buffer, { integrity: fx.spin.integrity });
    const inst = await sb.instantiate(mod);
    const r = {
      mismatch: await window.caught(sb.load(bytes, { integrity: wrong })),
      invalid: await window.caught(sb.load(notWasm, { integrity: notWasmIntegrity })),
      notFound: await window.caught(sb.load('/fixtures/nope.wasm', { integrity: wrong })),
      noIntegrity: await window.caught(sb.load(bytes, {})),
      badDigest: await window.caught(sb.load(bytes, { integrity: 'md5-xyz' })),
      unknownLimit: await window.caught(nb.createSandbox({ limits: { fuelPerSlise: 1 } })),
      // maxMemoryBytes is the limit's name; memoryLimitBytes, its deprecated alias, must agree with it.
      coreName: await window.caught(nb.createSandbox({ limits: { maxMemoryBytes: 1 << 20, memoryLimitBytes: 1 } })),
      badLimitType: await window.caught(nb.createSandbox({ limits: { fuel: 'lots' } })),
      unknownOption: await window.caught(nb.createSandbox({ limit: {} })),
      badCallOption: await window.caught(inst.call('answer', [], { timeout: 5 })),
      unknownExport: await window.caught(inst.call('nope')),
      badArgs: await window.caught(inst.call('answer', [1])),
      response: (
        await (
          await sb.instantiate(await sb.load(await fetch(fx.spin.url), { integrity: fx.spin.integrity }))
        ).call('answer')
      ).results[0],
      url: (
        await (
          await sb.instantiate(await sb.load(new URL(fx.spin.url, location.href), { integrity: fx.spin.integrity }))
        ).call('answer')
      ).results[0],
    };
    sb.dispose();
    return r;
  });
  assert.equal(out.mismatch.code, 'INTEGRITY_MISMATCH');
  assert.equal(out.mismatch.details.expectedDigest, browser.fixtures.log_and_double.integrity);
  assert.equal(out.mismatch.details.actualDigest, browser.fixtures.spin.integrity);
  assert.equal(out.invalid.code, 'INVALID_MODULE');
  assert.equal(out.notFound.code, 'INVALID_MODULE');
  assert.equal(out.notFound.details.status, 404);
  for (const key of [
    'noIntegrity',
    'badDigest',
    'unknownLimit',
    'coreName',
    'badLimitType',
    'unknownOption',
    'badCallOption',
    'unknownExport',
    'badArgs',
  ]) {
    assert.equal(out[key].code, 'INVALID_ARGUMENT', key);
    assert.equal(out[key].isTypeError, true, key);
    assert.equal(out[key].isSandboxError, true, key);
  }
  assert.match(out.unknownLimit.message, /fuelPerSlise/);
  assert.match(out.coreName.message, /memoryLimitBytes/);
  assert.equal(out.response, 42);
  assert.equal(out.url, 42);
});

test('memoryLimitBytes is the core limit on guest memory', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    // One page (64 KiB) is needed by log_and_double; a limit below it fails instantiation.
    const sb = await nb.createSandbox({ limits: { memoryLimitBytes: 32 * 1024 } });
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const log = nb.capability(() => {}, { params: ['i32', 'i32'], results: [] });
    const r = await window.caught(sb.instantiate(mod, { imports: { env: { log } } }));
    sb.dispose();
    return r;
  });
  assert.equal(out.code, 'MEMORY_LIMIT');
});

test('limits.maxMemoryBytes (the core name) is the limit on guest memory; the deprecated alias agrees with it', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const log = nb.capability(() => {}, { params: ['i32', 'i32'], results: [] });
    const attempt = async (limits) => {
      const sb = await nb.createSandbox({ limits });
      try {
        const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
        const inst = await sb.instantiate(mod, { imports: { env: { log } } });
        return { results: (await inst.call('run', [21])).results };
      } catch (e) {
        return { code: e.code, limit: e.details?.limit };
      } finally {
        sb.dispose();
      }
    };
    return {
      // One page (64 KiB) is needed by log_and_double.
      tooSmall: await attempt({ maxMemoryBytes: 32 * 1024 }),
      enough: await attempt({ maxMemoryBytes: 1 << 20 }),
      bothAgree: await attempt({ maxMemoryBytes: 32 * 1024, memoryLimitBytes: 32 * 1024 }),
      bothAgreeBigint: await attempt({ maxMemoryBytes: 1n << 20n, memoryLimitBytes: 1 << 20 }),
      disagree: await window.caught(
        nb.createSandbox({ limits: { maxMemoryBytes: 1 << 20, memoryLimitBytes: 2 << 20 } }),
      ),
    };
  });
  assert.equal(out.tooSmall.code, 'MEMORY_LIMIT');
  assert.deepEqual(out.enough.results, [42]);
  assert.equal(out.bothAgree.code, 'MEMORY_LIMIT');
  assert.deepEqual(out.bothAgreeBigint.results, [42]);
  assert.equal(out.disagree.code, 'INVALID_ARGUMENT');
  assert.equal(out.disagree.isTypeError, true);
  assert.match(out.disagree.message, /memoryLimitBytes/);
  assert.match(out.disagree.message, /maxMemoryBytes/);
});

test('`using` and Symbol.dispose dispose a SandboxModule, a SandboxInstance and their Sandbox', async (t) => {
  if (await skipWithoutUsing(t, browser.page)) return;
  // A string: the page's Chromium parses `using`, the Node running this file may not.
  const out = await browser.page.evaluate(`(async () => {
    const { nb, fx } = window;
    let sb, mod, inst;
    {
      using sandbox = await nb.createSandbox();
      using m = await sandbox.load(fx.spin.url, { integrity: fx.spin.integrity });
      using i = await sandbox.instantiate(m);
      sb = sandbox; mod = m; inst = i;
      var inside = [sandbox.alive, m.alive, i.alive, (await i.call('answer')).results[0]];
    }
    const after = [sb.alive, mod.alive, inst.alive];
    // Symbol.dispose alone, twice (idempotent), on a module of a live sandbox.
    const live = await nb.createSandbox();
    const other = await live.load(fx.spin.url, { integrity: fx.spin.integrity });
    const hasDispose = typeof other[Symbol.dispose] === 'function';
    other[Symbol.dispose]();
    other[Symbol.dispose]();
    other.dispose();
    const instantiateDisposed = await window.caught(live.instantiate(other));
    const stillWorks = (await (await live.instantiate(await live.load(fx.spin.url, { integrity: fx.spin.integrity }))).call('answer')).results[0];
    live.dispose();
    return { inside, after, hasDispose, otherAlive: other.alive, instantiateDisposed, stillWorks, useAfter: await window.caught(sb.load(fx.spin.url, { integrity: fx.spin.integrity })) };
  })()`);
  assert.deepEqual(out.inside, [true, true, true, 42]);
  assert.deepEqual(out.after, [false, false, false]);
  assert.equal(out.hasDispose, true);
  assert.equal(out.otherAlive, false);
  assert.equal(out.instantiateDisposed.code, 'DISPOSED');
  assert.equal(out.stillWorks, 42);
  assert.equal(out.useAfter.code, 'DISPOSED');
});
