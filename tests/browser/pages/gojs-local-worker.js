// A worker the test page creates, running the Go js/wasm guests of tests/gojs through
// `nestbox/worker` (/pkg/local.js): the exports called with JSON-like values and bytes, a
// granted capability (then revoked), a panic, an endless call cancelled, the ticker between
// calls, and the hostile guest's probes of js.Global(). Reports to the page.
import { createLocalSandbox, goCapability, revokeGoCapability } from '/pkg/local.js';

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const outcome = async (promise) => {
  try {
    return { value: await promise };
  } catch (e) {
    return { code: e.code, message: e.message, cause: e.details?.cause };
  }
};

self.onmessage = async () => {
  const report = {};
  try {
    const sb = await createLocalSandbox();
    const bytes = new Uint8Array(await (await fetch('/gojs/exports.wasm')).arrayBuffer());
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    const integrity = `sha256-${btoa(String.fromCharCode(...digest))}`;
    const mod = await sb.load(bytes, { integrity });
    const seen = [];
    const double = goCapability((n) => {
      seen.push(n);
      return n * 2;
    });
    const greet = goCapability(async ({ name, n }) => `hello ${name} #${n}`, { quota: { maxCalls: 2 } });
    const started = performance.now();
    const go = await sb.instantiateGo(mod, {
      globals: { host: { double, greet }, config: { name: 'box', size: 3, tags: ['a', 'b'] } },
    });
    report.startMs = performance.now() - started;
    report.exports = go.goExports();
    report.mainOutput = go.output();
    report.strlen = await go.callGo('strlen', 'héllo, 世界');
    report.json = await go.callGo('jsonRoundTrip', '{"a":[1,2],"b":"x"}');
    const rev = await go.callGo('reverseBytes', new Uint8Array([1, 2, 250]));
    report.bytes = { isUint8Array: rev.bytes instanceof Uint8Array, bytes: [...rev.bytes], sum: rev.sum };
    const used = await go.callGoWith('useCapability', [21]);
    report.capability = used.result;
    report.capabilityFuel = used.metrics.fuelConsumed;
    report.seen = seen;
    report.config = await go.callGo('readConfig');
    report.hello = await go.callGo('hello', 'nest');
    report.helloOutput = go.output();
    await pause(40);
    report.state = await go.callGo('state');

    // Quota: greet allows 2 calls; the first useCapability used one.
    await go.callGo('useCapability', 1);
    const second = await sb.instantiateGo(mod, { globals: { host: { double, greet } } });
    report.quota = await outcome(second.callGo('useCapability', 2));

    // Revocation.
    const third = await sb.instantiateGo(mod, { globals: { host: { double, greet: goCapability(() => 'x') } } });
    revokeGoCapability(double);
    report.revoked = await outcome(third.callGo('useCapability', 3));

    // A panic is a TRAP with Go's message; the instance is then poisoned.
    const p = await sb.instantiateGo(mod, {});
    report.panic = await outcome(p.callGo('panics', 'x'));
    report.afterPanic = await outcome(p.callGo('strlen', 'x'));

    // os.Exit(n) is an exit code.
    const e = await sb.instantiateGo(mod, {});
    const exited = await e.callGoWith('exit', [3]);
    report.exit = exited.exitCode;

    // An endless export, cancelled.
    const s = await sb.instantiateGo(mod, {});
    const abort = new AbortController();
    const t0 = performance.now();
    setTimeout(() => abort.abort(), 50);
    report.cancel = await outcome(s.callGoWith('spin', [], { signal: abort.signal }));
    report.cancelMs = performance.now() - t0;
    const t = await sb.instantiateGo(mod, {});
    report.timeout = await outcome(t.callGoWith('spin', [], { timeoutMs: 100 }));

    // The hostile guest.
    const hb = new Uint8Array(await (await fetch('/gojs/hostile.wasm')).arrayBuffer());
    const hd = new Uint8Array(await crypto.subtle.digest('SHA-256', hb));
    const hostileMod = await sb.load(hb, { integrity: `sha256-${btoa(String.fromCharCode(...hd))}` });
    const calledByHostile = [];
    const hostile = await sb.instantiateGo(hostileMod, {
      globals: { host: { double: goCapability((x) => calledByHostile.push(x)) } },
    });
    report.probe = await hostile.callGo('probe');
    report.calledByHostile = calledByHostile;
    report.reserved = await outcome(sb.instantiateGo(mod, { globals: { fs: {} } }));
    report.functionGrant = await outcome(sb.instantiateGo(mod, { globals: { f: () => 1 } }));
  } catch (e) {
    report.error = `${e.code ?? ''} ${e.message}\n${e.stack}`;
  }
  self.postMessage(report);
};
