// The Go js/wasm suite (tests/gojs, GOOS=js GOARCH=wasm), run the same way in the page
// (`createSandbox`: the core in nestbox's worker, Go capabilities answered by the page) and in
// a worker of the page's own (`nestbox/worker`'s `createLocalSandbox`): `nb` is the package
// (goCapability, revokeGoCapability), `make()` creates the sandbox. Returns a plain report.

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const outcome = async (promise) => {
  try {
    return { value: await promise };
  } catch (e) {
    return { code: e.code, message: e.message, cause: e.details?.cause, name: e.name };
  }
};
/** Resolves when `done()` holds, or with 'timed out' after `ms` (the test then fails on it). */
async function until(done, ms = 10_000) {
  const end = performance.now() + ms;
  while (!done()) {
    if (performance.now() > end) return 'timed out';
    await pause(5);
  }
  return 'ok';
}
async function loadGuest(sb, url) {
  const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return sb.load(bytes, { integrity: `sha256-${btoa(String.fromCharCode(...digest))}` });
}

export async function goSuite(nb, make) {
  const { goCapability, revokeGoCapability } = nb;
  const report = {};
  const sb = await make();
  const mod = await loadGuest(sb, '/gojs/exports.wasm');
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
  report.capabilityHostCalls = used.metrics.hostCalls;
  report.seen = seen;
  report.config = await go.callGo('readConfig');
  report.hello = await go.callGo('hello', 'nest');
  report.helloOutput = go.output();
  report.unknownExport = await outcome(go.callGo('nope'));
  report.badArgs = await outcome(go.callGo('strlen', () => 1));

  // The ticker keeps running while the program is idle: no call is made during the pause.
  const idleBefore = go.idleRuns;
  await pause(60);
  report.idleRunsDuringPause = go.idleRuns - idleBefore;
  report.state = await go.callGo('state');

  // Timers while idle: watch(3) returns at once; its goroutine then calls host.tick three
  // times, 5 ms apart, with no call of the page running.
  const ticked = [];
  const tick = goCapability((i) => void ticked.push(i));
  const w = await sb.instantiateGo(mod, { globals: { host: { tick } } });
  await w.callGo('watch', 3);
  report.tickedWhenWatchReturned = ticked.length;
  report.idleTicksWait = await until(() => ticked.length >= 3);
  report.idleTicks = [...ticked];
  // A goroutine that panics while idle: onIdleError gets the TRAP; the program is over.
  const idleErrors = [];
  const pl = await sb.instantiateGo(mod, { onIdleError: (e) => idleErrors.push(e) });
  await pl.callGo('panicLater');
  report.idleErrorWait = await until(() => idleErrors.length > 0);
  report.idleError = {
    code: idleErrors[0]?.code,
    message: idleErrors[0]?.message,
    kept: pl.idleError === idleErrors[0],
  };
  report.afterIdleError = await outcome(pl.callGo('strlen', 'x'));

  // Quota: greet allows 2 calls; the first useCapability used one.
  await go.callGo('useCapability', 1);
  const second = await sb.instantiateGo(mod, { globals: { host: { double, greet } } });
  report.quota = await outcome(second.callGo('useCapability', 2));

  // Revocation.
  const third = await sb.instantiateGo(mod, { globals: { host: { double, greet: goCapability(() => 'x') } } });
  revokeGoCapability(double);
  report.revoked = await outcome(third.callGo('useCapability', 3));
  // Each refusal is a deny entry of the audit log, with its code.
  const entries = await sb.audit.entries();
  report.denyOutcomes = entries.filter((e) => e.event === 'deny').map((e) => e.outcome);
  report.auditVerified = (await sb.audit.verify()).ok;

  // A panic is a TRAP with Go's message; the instance is then poisoned.
  const p = await sb.instantiateGo(mod, {});
  report.panic = await outcome(p.callGo('panics', 'x'));
  report.afterPanic = await outcome(p.callGo('strlen', 'x'));

  // os.Exit(n) is an exit code.
  const e = await sb.instantiateGo(mod, {});
  const exited = await e.callGoWith('exit', [3]);
  report.exit = exited.exitCode;

  // An endless export, cancelled; another timed out.
  const s = await sb.instantiateGo(mod, {});
  const abort = new AbortController();
  const t0 = performance.now();
  setTimeout(() => abort.abort(), 50);
  report.cancel = await outcome(s.callGoWith('spin', [], { signal: abort.signal }));
  report.cancelMs = performance.now() - t0;
  const t = await sb.instantiateGo(mod, {});
  report.timeout = await outcome(t.callGoWith('spin', [], { timeoutMs: 100 }));
  // After all that, the sandbox still serves a fresh instance.
  const fresh = await sb.instantiateGo(mod, {});
  report.freshStrlen = await fresh.callGo('strlen', 'still here');
  // A disposed instance: DISPOSED, its timers stopped.
  fresh.dispose();
  report.disposed = await outcome(fresh.callGo('strlen', 'x'));

  // The hostile guest.
  const hostileMod = await loadGuest(sb, '/gojs/hostile.wasm');
  const calledByHostile = [];
  const hostile = await sb.instantiateGo(hostileMod, {
    globals: { host: { double: goCapability((x) => calledByHostile.push(x)) } },
  });
  report.probe = await hostile.callGo('probe');
  report.calledByHostile = calledByHostile;
  report.reserved = await outcome(sb.instantiateGo(mod, { globals: { fs: {} } }));
  report.functionGrant = await outcome(sb.instantiateGo(mod, { globals: { f: () => 1 } }));
  report.arrayGlobals = await outcome(sb.instantiateGo(mod, { globals: [1] }));
  report.typoOption = await outcome(sb.instantiateGo(mod, { globlas: {} }));
  sb.dispose();
  report.afterDispose = await outcome(go.callGo('strlen', 'x'));
  return report;
}
