// A worker the test page creates itself: the audit log of a local sandbox (`nestbox/worker`,
// /pkg/local.js), and `using` on its modules. Reports what happened to the page.
import { createLocalSandbox, revoke, syncCapability, verifyAuditLog } from '/pkg/local.js';

self.onmessage = async ({ data: fx }) => {
  const report = {};
  try {
    const streamed = [];
    const sb = await createLocalSandbox({ limits: { timeoutMs: 5_000 }, onAudit: (e) => streamed.push(e) });
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const log = syncCapability(() => {}, { params: ['i32', 'i32'], results: [], name: 'log' });
    const inst = await sb.instantiate(mod, { imports: { env: { log } } });
    report.run = (await inst.call('run', [21])).results;
    inst.dispose();
    // A revoked capability: a revoke entry, then a deny entry when it is granted again.
    revoke(log);
    try {
      await sb.instantiate(mod, { imports: { env: { log } } });
    } catch (e) {
      report.refused = e.code;
    }
    // A failed load is logged too.
    try {
      await sb.load(fx.spin.url, { integrity: fx.log_and_double.integrity });
    } catch (e) {
      report.mismatch = e.code;
    }

    const entries = await sb.audit.entries();
    report.events = entries.map((e) => `${e.event}:${e.outcome}`);
    report.seqs = entries.map((e) => e.seq);
    report.streamed = streamed.map((e) => e.hash);
    report.hashes = entries.map((e) => e.hash);
    report.head = await sb.audit.head();
    report.jsonlLines = (await sb.audit.toJSONL()).trim().split('\n').length;
    report.verify = await sb.audit.verify();
    report.verifyHead = await sb.audit.verify(report.head);
    report.verifyWrongHead = await sb.audit.verify('0'.repeat(64));
    // Tampering: one entry's outcome changed, or an entry removed from the middle.
    const tampered = entries.map((e) => ({ ...e }));
    const callIndex = tampered.findIndex((e) => e.event === 'call');
    report.callIndex = callIndex;
    tampered[callIndex] = { ...tampered[callIndex], outcome: 'TRAP' };
    report.tampered = await verifyAuditLog(tampered);
    report.removed = await verifyAuditLog([...entries.slice(0, callIndex), ...entries.slice(callIndex + 1)]);

    // `using` disposes a module, an instance and the sandbox at the end of the block.
    let usedModule;
    let usedInstance;
    {
      using scoped = await createLocalSandbox();
      using m = await scoped.load(fx.spin.url, { integrity: fx.spin.integrity });
      using i = await scoped.instantiate(m);
      report.answer = (await i.call('answer')).results;
      usedModule = m;
      usedInstance = i;
      report.usedSandbox = scoped;
      report.aliveInside = [scoped.alive, m.alive, i.alive];
    }
    report.aliveAfter = [report.usedSandbox.alive, usedModule.alive, usedInstance.alive];
    delete report.usedSandbox;
    // Disposing twice is harmless; the log stays readable after dispose.
    sb.dispose();
    sb.dispose();
    report.afterDispose = (await sb.audit.entries()).length;
    report.afterDisposeVerify = await sb.audit.verify();
    try {
      await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    } catch (e) {
      report.disposed = e.code;
    }
  } catch (e) {
    report.error = String(e?.stack ?? e);
  }
  self.postMessage(report);
};
