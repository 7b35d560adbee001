// The page treats the worker as untrusted and checks every message it sends by what it means.
// A "puppet" worker (pages/evil-worker.js?channel=NAME, the real worker wrapped; used through
// the public workerUrl option, so nothing in the package is a test hook a guest could reach)
// lets the test page see what the page sends it, post forged messages as if from the worker,
// and rewrite the worker's next message of a kind. Each forgery must be refused with a clear
// code, the worker replaced and the violation recorded (stats, audit log), while the page,
// the sandbox (in its new worker) and a sandbox in another worker carry on.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { openBrowser } from './harness.mjs';

const goGuests = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'target', 'gojs-guests');
let browser;
before(async () => {
  browser = await openBrowser({ extraMounts: { '/gojs/': goGuests } });
  await browser.page.evaluate(() => {
    /** The test side of a puppet worker's BroadcastChannel. */
    window.puppet = (name) => {
      const channel = new BroadcastChannel(name);
      const seen = [];
      const acks = new Map();
      let n = 0;
      channel.onmessage = ({ data }) => {
        if (data.seen) seen.push(data.seen);
        if (data.ack !== undefined) acks.get(data.ack)?.();
      };
      return {
        seen,
        /** Resolves once the worker has the instruction in force. */
        send: (message) =>
          new Promise((resolve) => {
            const k = ++n;
            acks.set(k, resolve);
            channel.postMessage({ ...message, n: k });
          }),
        /** The page's `call` message to the worker that had `exportName`, once it was seen. */
        callSeen: async (exportName) => {
          for (let i = 0; i < 200; i++) {
            const m = seen.find((s) => s.type === 'call' && s.exportName === exportName);
            if (m) return m;
            await new Promise((r) => setTimeout(r, 10));
          }
          throw new Error(`no call of ${exportName} seen`);
        },
        close: () => channel.close(),
      };
    };
    window.until = async (condition) => {
      for (let i = 0; i < 500 && !condition(); i++) await new Promise((r) => setTimeout(r, 10));
      return condition();
    };
    let count = 0;
    /**
     * Runs `body` with a sandbox in a puppet worker, next to a bystander sandbox in its own
     * worker; then checks that both carry on, and returns what the test asserts.
     */
    window.scenario = async (body) => {
      const { nb, fx } = window;
      const bystander = await nb.createSandbox();
      const bystanderInstance = await bystander.instantiate(
        await bystander.load(fx.spin.url, { integrity: fx.spin.integrity }),
      );
      const name = `puppet-${++count}`;
      const p = window.puppet(name);
      const sb = await nb.createSandbox({ workerUrl: `/tests/evil-worker.js?channel=${name}` });
      const out = await body({ sb, p, nb, fx });
      // The sandbox carries on in a new worker; the bystander's instance was never touched.
      const spin = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      const afterwards = (await (await sb.instantiate(spin)).call('answer')).results;
      const bystanderAfterwards = (await bystanderInstance.call('answer')).results;
      const entries = await sb.audit.entries();
      const link = entries.find((e) => e.extra?.segment === 'worker_replaced');
      const result = {
        ...out,
        afterwards,
        bystanderAfterwards,
        stats: sb.stats,
        bystanderStats: bystander.stats,
        verify: await sb.audit.verify(),
        link: link && { outcome: link.outcome, reason: link.extra.reason },
        outcomes: entries.map((e) => e.outcome),
      };
      sb.dispose();
      bystander.dispose();
      p.close();
      return result;
    };
  });
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

/** What every refused forgery must leave behind; `reason` is matched in the audit log's link entry. */
function assertContained(out, reason) {
  assert.equal(out.stats.protocolViolations, 1, 'the violation is counted');
  assert.equal(out.stats.workerRestarts, 1, 'the worker was replaced once');
  assert.deepEqual(out.afterwards, [42], 'the sandbox works in its new worker');
  assert.deepEqual(out.bystanderAfterwards, [42], "another sandbox's instance is untouched");
  assert.equal(out.bystanderStats.workerRestarts, 0);
  assert.deepEqual(out.verify, { ok: true }, 'the audit log still verifies');
  assert.equal(out.link?.outcome, 'WORKER_CRASHED', 'the replacement is in the audit log');
  assert.match(out.link.reason, /^protocol violation: /);
  assert.match(out.link.reason, reason);
}

function assertViolation(error, code = 'WORKER_CRASHED') {
  assert.equal(error.code, code, JSON.stringify(error));
  assert.equal(error.details.protocolViolation, true);
  assert.equal(error.details.workerRestarted, true);
}

test('a host request while no call is in flight is refused: no capability runs', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, nb, fx }) => {
      let logged = 0;
      const log = nb.capability(() => void logged++, { params: ['i32', 'i32'], results: [] });
      const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
      const inst = await sb.instantiate(mod, { imports: { env: { log } } });
      const first = (await inst.call('run', [21])).results;
      const call = await p.callSeen('run');
      // The call is over: a host request in its name now is forged.
      await p.send({
        inject: {
          v: window.nb.PROTOCOL_VERSION,
          type: 'host',
          id: 1_000_000,
          sandboxId: call.sandboxId,
          callId: call.id,
          instanceId: call.instanceId,
          capability: 1,
          import: 'env.log',
          args: [0, 2],
        },
      });
      await window.until(() => sb.stats.protocolViolations > 0);
      const lost = await window.caught(inst.call('run', [1]));
      return { first, logged, lost };
    }),
  );
  assert.deepEqual(out.first, [42]);
  assert.equal(out.logged, 1, 'only the real call ran the capability');
  assert.equal(out.lost.code, 'WORKER_CRASHED', 'the instance died with its worker');
  assertContained(out, /host request 1000000: call \d+ is not in flight/);
});

test("shared pool: a host request naming another sandbox's capability, or its own call as another sandbox's, is refused", async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const results = {};
    for (const [i, variant] of ['capability of A in B’s call', 'B’s call as sandbox A'].entries()) {
      const p = window.puppet(`pool-${i}`);
      const pool = nb.createWorkerPool({ workerUrl: `/tests/evil-worker.js?channel=pool-${i}` });
      const a = await nb.createSandbox({ worker: pool });
      const b = await nb.createSandbox({ worker: pool });
      let secretCalls = 0;
      const unused = nb.capability(() => undefined, { params: ['i32', 'i32'], results: [] });
      const secret = nb.capability(() => void secretCalls++, { params: ['i32', 'i32'], results: [] });
      const logMod = await a.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
      await a.instantiate(logMod, { imports: { env: { log: unused } } }); // capability id 1 in A
      const aInst = await a.instantiate(logMod, { imports: { env: { log: secret } } }); // id 2 in A
      await aInst.call('run', [1]);
      const aCall = await p.callSeen('run');
      // B's call spins (in flight, not waiting for a host answer) while the worker forges.
      const spinMod = await b.load(fx.spin.url, { integrity: fx.spin.integrity });
      const bInst = await b.instantiate(spinMod);
      const bRun = window.caught(bInst.call('spin'));
      const bCall = await p.callSeen('spin');
      const forged = {
        v: window.nb.PROTOCOL_VERSION,
        type: 'host',
        id: 1_000_000,
        callId: bCall.id,
        instanceId: bCall.instanceId,
        capability: 2,
        import: 'env.log',
        args: [0, 2],
      };
      forged.sandboxId = variant.startsWith('capability') ? bCall.sandboxId : aCall.sandboxId;
      await p.send({ inject: forged });
      const bError = await bRun;
      const aLost = await window.caught(aInst.call('run', [1]));
      results[variant] = {
        bError,
        aLost,
        secretCalls,
        violations: pool.protocolViolations,
        sandboxes: [aCall.sandboxId, bCall.sandboxId],
      };
      a.dispose();
      b.dispose();
      pool.dispose();
      p.close();
    }
    return results;
  });
  for (const [variant, r] of Object.entries(out)) {
    assert.notEqual(r.sandboxes[0], r.sandboxes[1], variant);
    assert.equal(r.secretCalls, 1, `${variant}: A's capability ran only for A's own call`);
    assertViolation(r.bError, 'CAPABILITY_REVOKED');
    assert.equal(r.bError.details.forged, true, variant);
    assert.equal(r.violations, 1, variant);
    // The pool is one trust domain: the replaced worker took A's instance with it.
    assert.equal(r.aLost.code, 'WORKER_CRASHED', variant);
  }
  assert.match(out['capability of A in B’s call'].bError.details.reason, /was never granted to this instance/);
  assert.match(out['B’s call as sandbox A'].bError.details.reason, /is not a call of sandbox/);
});

test('a second host request for a call that already waits for one is refused', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, nb, fx }) => {
      let calls = 0;
      let release;
      const next = nb.capability(() => (calls++, new Promise((r) => (release = r))), {
        params: ['i32'],
        results: ['i32'],
      });
      const mod = await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
      const inst = await sb.instantiate(mod, { imports: { env: { next } } });
      const run = window.caught(inst.call('run', [3]));
      const call = await p.callSeen('run');
      await window.until(() => release !== undefined);
      await p.send({
        inject: {
          v: window.nb.PROTOCOL_VERSION,
          type: 'host',
          id: 1_000_000,
          sandboxId: call.sandboxId,
          callId: call.id,
          instanceId: call.instanceId,
          capability: 1,
          import: 'env.next',
          args: [7],
        },
      });
      const error = await run;
      release(1);
      return { error, calls };
    }),
  );
  assertViolation(out.error, 'CAPABILITY_REVOKED');
  assert.equal(out.calls, 1, 'the capability ran only for the real request');
  assertContained(out, /call \d+ already waits for request \d+/);
});

test('an HTTP request for an instance granted no HTTP is refused: nothing is fetched', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, nb, fx }) => {
      let logs = 0;
      const log = nb.capability(() => void logs++, { params: ['i32', 'i32'], results: [] });
      const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
      const inst = await sb.instantiate(mod, { imports: { env: { log } } });
      await p.send({ rewrite: 'forgeHttp', url: 'https://example.com/' });
      return { error: await window.caught(inst.call('run', [2])), logs };
    }),
  );
  assertViolation(out.error, 'CAPABILITY_REVOKED');
  assert.equal(out.logs, 0);
  assertContained(out, /HTTP for an instance without an HTTP grant/);
});

test('an HTTP request to a host outside allowedHosts is refused by the page, whatever the worker checked', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const p = window.puppet('puppet-http');
    const sb = await nb.createSandbox({ workerUrl: '/tests/evil-worker.js?channel=puppet-http' });
    const fetched = [];
    const http = {
      allowedHosts: ['*.allowed.example'],
      fetch: async (url) => (fetched.push(url), new Response('secret')),
    };
    const log = nb.capability(() => {}, { params: ['i32', 'i32'], results: [] });
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const errors = [];
    // A text-only host check would see *.allowed.example in each; fetch's parser does not.
    for (const url of [
      'https://evil.example\\.allowed.example/',
      'https://evil.example/.allowed.example',
      'file:///etc/passwd',
    ]) {
      // A failed host call poisons its instance: a fresh one each time.
      const inst = await sb.instantiate(mod, { imports: { env: { log } }, http });
      await p.send({ rewrite: 'forgeHttp', url });
      errors.push(await window.caught(inst.call('run', [2])));
    }
    sb.dispose();
    p.close();
    return { errors, fetched };
  });
  assert.deepEqual(out.fetched, [], 'nothing was fetched');
  for (const error of out.errors) {
    assert.equal(error.code, 'HOST_ERROR', JSON.stringify(error));
    assert.match(error.message, /HTTP request refused: .*(not in allowedHosts|not http)/);
  }
});

/** The Go guest of tests/gojs (target/gojs-guests, built by `make guests`) in `sb`. */
const goExports = async (sb) => {
  const bytes = new Uint8Array(await (await fetch('/gojs/exports.wasm')).arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return sb.load(bytes, { integrity: `sha256-${btoa(String.fromCharCode(...digest))}` });
};

test("a Go guest's capability call naming a capability it was never granted is refused: nothing runs", async () => {
  const out = await browser.page.evaluate(
    (goExportsSource) =>
      window.scenario(async ({ sb, p, nb }) => {
        const load = new Function(`return ${goExportsSource}`)();
        const seen = [];
        const double = nb.goCapability((n) => (seen.push(n), n * 2));
        const greet = nb.goCapability(() => 'hi');
        const go = await sb.instantiateGo(await load(sb), { globals: { host: { double, greet } } });
        await p.send({ rewrite: 'forgeGoCapability' });
        return { error: await window.caught(go.callGo('useCapability', 21)), seen };
      }),
    goExports.toString(),
  );
  assertViolation(out.error, 'CAPABILITY_REVOKED');
  assert.equal(out.error.details.forged, true);
  assert.deepEqual(out.seen, [], 'no Go capability ran');
  assertContained(out, /Go capability 999 \(gojs\.host\.double\) was never granted/);
});

test("a Go guest's output over the sandbox's maxOutputBytes is refused and never reaches onOutput", async () => {
  const out = await browser.page.evaluate(
    (goExportsSource) =>
      window.scenario(async ({ sb, p }) => {
        const load = new Function(`return ${goExportsSource}`)();
        const seen = [];
        const go = await sb.instantiateGo(await load(sb), { onOutput: (o, e) => seen.push(o.length + e.length) });
        seen.length = 0; // main's own line ("exports registered: …")
        // The default cap is 16 MiB: one byte more in a single notice cannot be the core's.
        await p.send({ rewrite: 'bigOutput', bytes: (16 << 20) + 1 });
        return { error: await window.caught(go.callGo('hello', 'x')), seen };
      }),
    goExports.toString(),
  );
  assertViolation(out.error);
  assert.deepEqual(out.seen, [], 'onOutput never saw it');
  assertContained(out, /more output for Go call \d+ than its cap of 16777216 bytes/);
});

test("a Go call's result that is not plain data is refused", async () => {
  const out = await browser.page.evaluate(
    (goExportsSource) =>
      window.scenario(async ({ sb, p }) => {
        const load = new Function(`return ${goExportsSource}`)();
        const go = await sb.instantiateGo(await load(sb));
        await p.send({ rewrite: 'goResultNotData' });
        return { error: await window.caught(go.callGo('strlen', 'abc')) };
      }),
    goExports.toString(),
  );
  assertViolation(out.error);
  assertContained(out, /reply \d+ to call: malformed value/);
});

test('a Go part in the reply to a call that is not a Go call is refused', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, fx }) => {
      const inst = await sb.instantiate(await sb.load(fx.spin.url, { integrity: fx.spin.integrity }));
      await p.send({ rewrite: 'goPartOnPlainCall' });
      return { error: await window.caught(inst.call('answer')) };
    }),
  );
  assertViolation(out.error);
  assertContained(out, /a Go part in the reply to a call that is not a Go call/);
});

test('host call arguments outside their declared types are refused before the capability runs', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, nb, fx }) => {
      let calls = 0;
      const next = nb.capability(() => (calls++, 1), { params: ['i32'], results: ['i32'] });
      const mod = await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
      const inst = await sb.instantiate(mod, { imports: { env: { next } } });
      await p.send({ rewrite: 'badArgs' });
      return { error: await window.caught(inst.call('run', [2])), calls };
    }),
  );
  assertViolation(out.error);
  assert.equal(out.calls, 0);
  assertContained(out, /arguments\[0\] is not a i32/);
});

test("a call's reply with more results than the export's signature is refused", async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, fx }) => {
      const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      const inst = await sb.instantiate(mod);
      await p.send({ rewrite: 'extraResult' });
      return { error: await window.caught(inst.call('answer')) };
    }),
  );
  assertViolation(out.error);
  assertContained(out, /2 results, the signature has 1/);
});

test('a load reply with a bad engine value, or another engine than asked for, is refused', async () => {
  for (const [engine, reason] of [
    ['turbo', /reply \d+ to load: malformed value/],
    ['native', /a module loaded for engine native, but interpreter was asked for/],
  ]) {
    const out = await browser.page.evaluate(
      (engine) =>
        window.scenario(async ({ sb, p, fx }) => {
          await p.send({ rewrite: 'loadEngine', engine });
          return { error: await window.caught(sb.load(fx.spin.url, { integrity: fx.spin.integrity })) };
        }),
      engine,
    );
    assertViolation(out.error);
    assertContained(out, reason);
  }
});

test('a memory read reply of another length than asked for is refused', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, nb, fx }) => {
      const read = [];
      const log = nb.capability(async (mem, ptr, len) => void read.push(await mem.readString(ptr, len)), {
        params: ['i32', 'i32'],
        results: [],
      });
      const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
      const inst = await sb.instantiate(mod, { imports: { env: { log } } });
      await p.send({ rewrite: 'shortRead' });
      return { error: await window.caught(inst.call('run', [1])), read };
    }),
  );
  assertViolation(out.error);
  assert.deepEqual(out.read, [], 'the host function never got the short read');
  assertContained(out, /reply \d+ to memoryRead: \d+ bytes, but \d+ were asked for/);
});

test('WASI output over the cap the page set is refused and never reaches onStdout', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, fx }) => {
      const mod = await sb.load(fx.wasi_ticker.url, { integrity: fx.wasi_ticker.integrity });
      const chunks = [];
      await p.send({ rewrite: 'bigOutput', bytes: 65 });
      const error = await window.caught(
        sb.runWasi(mod, { limits: { maxStdoutBytes: 64 }, onStdout: (c) => chunks.push(c.length) }),
      );
      return { error, chunks };
    }),
  );
  assertViolation(out.error);
  assert.deepEqual(out.chunks, []);
  assertContained(out, /65 bytes of stdout for call \d+, over its cap of 64/);
});

test('an audit entry changed after it was hashed is refused: the page recomputes every hash', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, fx }) => {
      const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      const inst = await sb.instantiate(mod);
      await p.send({ rewrite: 'tamperAudit' });
      return { error: await window.caught(inst.call('answer')) };
    }),
  );
  assertViolation(out.error);
  assert.ok(!out.outcomes.includes('TRAP'), 'the tampered entry was not kept');
  assertContained(out, /its hash does not match its contents/);
});

test('an instantiate reply naming an instance that is already live is refused', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, fx }) => {
      const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      const first = await sb.instantiate(mod);
      await p.send({ rewrite: 'dupInstance' });
      return { error: await window.caught(sb.instantiate(mod)), firstAlive: first.alive };
    }),
  );
  assertViolation(out.error);
  assert.equal(out.firstAlive, false, 'the first instance died with the worker');
  assertContained(out, /instance id \d+ is already a live instance of this sandbox/);
});

test("an instantiate reply with a start function's fuel that is not a count is refused", async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, fx }) => {
      const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      await p.send({ rewrite: 'negativeStartFuel' });
      return { error: await window.caught(sb.instantiate(mod)) };
    }),
  );
  assertViolation(out.error);
  assertContained(out, /reply \d+ to instantiate: malformed value/);
});

test('NaN metrics are refused', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, fx }) => {
      const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      const inst = await sb.instantiate(mod);
      await p.send({ rewrite: 'nanMetrics' });
      return { error: await window.caught(inst.call('answer')) };
    }),
  );
  assertViolation(out.error);
  assertContained(out, /metrics that are not finite, non-negative numbers/);
});

test('a trace whose root is not the call asked for, or a trace nobody asked for, is refused', async () => {
  const forged = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, fx }) => {
      const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      const inst = await sb.instantiate(mod);
      const honest = await inst.call('answer', [], { trace: true });
      await p.send({ rewrite: 'forgeTrace' });
      return {
        honest: honest.trace.resourceSpans[0].scopeSpans[0].spans[0].name,
        error: await window.caught(inst.call('answer', [], { trace: true })),
      };
    }),
  );
  assert.equal(forged.honest, 'call answer');
  assertViolation(forged.error);
  assertContained(forged, /its trace: a trace whose root is not the call of answer/);

  const unasked = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, fx }) => {
      const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      const inst = await sb.instantiate(mod);
      const { trace } = await inst.call('answer', [], { trace: true });
      await p.send({ rewrite: 'unaskedTrace', trace });
      return { error: await window.caught(inst.call('answer')) };
    }),
  );
  assertViolation(unasked.error);
  assertContained(unasked, /a trace for a call that asked for none/);
});

test('a progress notice for a call that did not ask for progress is refused', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, fx }) => {
      const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      const inst = await sb.instantiate(mod);
      const running = window.caught(inst.call('spin', [], { timeoutMs: 10_000 }));
      const { id, sandboxId } = await p.callSeen('spin');
      const metrics = { fuelConsumed: 1, slices: 1, hostCalls: 0, peakMemoryBytes: 0, wallTimeUs: 1 };
      await p.send({
        inject: { v: window.nb.PROTOCOL_VERSION, type: 'progress', sandboxId, callId: id, metrics, memoryBytes: 0 },
      });
      return { error: await running };
    }),
  );
  assertViolation(out.error);
  assertContained(out, /progress notice for call \d+, which did not ask for progress/);
});

test('a progress notice whose counters go back is refused, and the callback never sees it', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, fx }) => {
      const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      const inst = await sb.instantiate(mod);
      const fuel = [];
      let armed;
      const error = await window.caught(
        inst.call('spin', [], {
          timeoutMs: 10_000,
          onProgress: (s) => {
            fuel.push(s.fuelConsumed);
            armed ??= p.send({ rewrite: 'backwardsProgress' });
          },
        }),
      );
      return { error, backwards: fuel.some((f, i) => i > 0 && f < fuel[i - 1]), first: fuel[0] };
    }),
  );
  assertViolation(out.error);
  assert.ok(out.first > 0);
  assert.equal(out.backwards, false);
  assertContained(out, /a progress notice for call \d+ that goes back/);
});

test('a reply to a request the page never sent is refused', async () => {
  const out = await browser.page.evaluate(() =>
    window.scenario(async ({ sb, p, fx }) => {
      const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
      const inst = await sb.instantiate(mod);
      await p.send({
        inject: { v: window.nb.PROTOCOL_VERSION, type: 'reply', id: 999_999, ok: true, request: 'cancel', value: {} },
      });
      await window.until(() => sb.stats.protocolViolations > 0);
      return { lost: await window.caught(inst.call('answer')) };
    }),
  );
  assert.equal(out.lost.code, 'WORKER_CRASHED');
  assertContained(out, /reply 999999 answers no request outstanding on this worker/);
});

test('pages/evil-worker.js unchanged: a well-behaved puppet passes every check', async () => {
  // The puppet without instructions is the real worker: nothing it says is a violation.
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const p = window.puppet('quiet');
    const sb = await nb.createSandbox({ workerUrl: '/tests/evil-worker.js?channel=quiet' });
    const log = nb.capability(async (mem, ptr, len) => void (await mem.readString(ptr, len)), {
      params: ['i32', 'i32'],
      results: [],
    });
    const inst = await sb.instantiate(
      await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity }),
      {
        imports: { env: { log } },
      },
    );
    const results = (await inst.call('run', [4])).results;
    const wasi = await sb.runWasi(await sb.load(fx.wasi_ticker.url, { integrity: fx.wasi_ticker.integrity }));
    const out = {
      results,
      stdout: wasi.stdoutText.split('\n').length,
      stats: sb.stats,
      verify: await sb.audit.verify(),
    };
    sb.dispose();
    p.close();
    return out;
  });
  assert.deepEqual(out.results, [8]);
  assert.equal(out.stdout, 11);
  assert.equal(out.stats.protocolViolations, 0);
  assert.equal(out.stats.workerRestarts, 0);
  assert.deepEqual(out.verify, { ok: true });
});

test('shared pool: late messages of a sandbox disposed mid-call are dropped, not violations', async () => {
  // After dispose() the worker may still send that sandbox's host requests, output, audit
  // entries and replies before it handles `close`: the page must not take them for forgeries.
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const pool = nb.createWorkerPool();
    const other = await nb.createSandbox({ worker: pool });
    const otherInstance = await other.instantiate(await other.load(fx.spin.url, { integrity: fx.spin.integrity }));
    const outcomes = [];
    for (let i = 0; i < 5; i++) {
      const sb = await nb.createSandbox({ worker: pool });
      let calls = 0;
      const next = nb.capability(() => (calls++, 1), { params: ['i32'], results: ['i32'] });
      const inst = await sb.instantiate(await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity }), {
        imports: { env: { next } },
      });
      const run = window.caught(inst.call('run', [1_000_000]));
      const ticker = await sb.load(fx.wasi_ticker.url, { integrity: fx.wasi_ticker.integrity });
      const wasi = window.caught(sb.runWasi(ticker));
      await window.until(() => calls > 50 * (i + 1));
      sb.dispose();
      outcomes.push((await run).code, (await wasi).code);
      await new Promise((r) => setTimeout(r, 50));
    }
    const after = (await otherInstance.call('answer')).results;
    const result = { outcomes, after, violations: pool.protocolViolations, restarts: pool.workerRestarts };
    other.dispose();
    pool.dispose();
    return result;
  });
  assert.deepEqual(new Set(out.outcomes), new Set(['DISPOSED']));
  assert.deepEqual(out.after, [42]);
  assert.equal(out.violations, 0);
  assert.equal(out.restarts, 0);
});
