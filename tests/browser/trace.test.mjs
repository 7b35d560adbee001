// Tracing from the page and from `nestbox/worker`: `trace: true` gives the call's spans —
// the export call, a child per capability call and per WASI call — as OTLP JSON on the result
// (or on the error of a call that failed), bounded by `maxSpans` with a truncation marker;
// untraced calls carry none; bad options are a TypeError.
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

/** `[name, parent name or null, {attributes}]` of each span, root first. */
function tree(trace) {
  const spans = trace.resourceSpans[0].scopeSpans[0].spans;
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  return spans.map((s) => [
    s.name,
    byId.get(s.parentSpanId)?.name ?? null,
    Object.fromEntries(s.attributes.map((a) => [a.key, Object.values(a.value)[0]])),
    s.status,
  ]);
}

test('a traced call with an async capability: the call and its host call, as OTLP JSON', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    const log = nb.capability(async () => new Promise((r) => setTimeout(r, 20)), {
      params: ['i32', 'i32'],
      results: [],
    });
    const inst = await sb.instantiate(mod, { imports: { env: { log } } });
    const traced = await inst.call('run', [21], { trace: true });
    const plain = await inst.call('run', [21]);
    const root = nb.spansOf(traced.trace)[0];
    const children = nb.childSpans(traced.trace, root);
    sb.dispose();
    return {
      results: traced.results,
      trace: traced.trace,
      plainHasTrace: 'trace' in plain,
      children: children.map((s) => s.name),
      hostCalls: nb.spanAttribute(root, 'nestbox.host_calls'),
      fuel: nb.spanAttribute(root, 'nestbox.fuel'),
      metricsFuel: traced.metrics.fuelConsumed,
    };
  });
  assert.deepEqual(out.results, [42]);
  assert.equal(out.plainHasTrace, false, 'an untraced call has no trace');
  const spans = tree(out.trace);
  assert.deepEqual(
    spans.map(([name, parent]) => [name, parent]),
    [
      ['call run', null],
      ['capability env.log', 'call run'],
    ],
  );
  assert.deepEqual(out.children, ['capability env.log']);
  assert.equal(out.hostCalls, 1);
  assert.equal(out.fuel, out.metricsFuel, 'the root span carries the call metrics');
  const [, , rootAttrs, rootStatus] = spans[0];
  assert.equal(rootAttrs['nestbox.export'], 'run');
  assert.equal(rootAttrs['nestbox.args'], '21');
  assert.equal(rootAttrs['nestbox.results'], '42');
  assert.deepEqual(rootStatus, { code: 1 });
  const [, , hostAttrs] = spans[1];
  assert.equal(hostAttrs['nestbox.import'], 'env.log');
  assert.equal(hostAttrs['nestbox.args'], '16, 20');
  // The host call took ≥ 20 ms (its timer): the span times say so.
  const host = out.trace.resourceSpans[0].scopeSpans[0].spans[1];
  const ms = Number(BigInt(host.endTimeUnixNano) - BigInt(host.startTimeUnixNano)) / 1e6;
  assert.ok(ms >= 19, `the host span lasted ${ms} ms`);
  assert.equal(out.trace.resourceSpans[0].resource.attributes[0].value.stringValue, 'nestbox');
  assert.match(out.trace.resourceSpans[0].scopeSpans[0].spans[0].traceId, /^[0-9a-f]{32}$/);
});

test('a traced WASI run: _start, its capability calls and WASI calls with their errno', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.wasi_capability.url, { integrity: fx.wasi_capability.integrity });
    const double = nb.capability((_mem, x) => x * 2, { params: ['i32'], results: ['i32'] });
    const run = await sb.runWasi(mod, { imports: { env: { double } }, trace: true });
    sb.dispose();
    return { exitCode: run.exitCode, stdout: run.stdoutText, trace: run.trace };
  });
  assert.equal(out.exitCode, 42);
  assert.equal(out.stdout, '6\n');
  const spans = tree(out.trace);
  assert.deepEqual(
    spans.map(([name, parent]) => [name, parent]),
    [
      ['call _start', null],
      ['capability env.double', 'call _start'],
      ['wasi fd_write', 'call _start'],
      ['capability env.double', 'call _start'],
      ['wasi proc_exit', 'call _start'],
    ],
  );
  assert.equal(spans[0][2]['nestbox.call_kind'], 'wasi');
  assert.equal(spans[0][2]['nestbox.exit_code'], '42');
  assert.equal(spans[2][2]['wasi.errno'], '0');
  assert.equal(spans[2][2]['nestbox.bytes'], '2');
  assert.equal(spans[3][2]['nestbox.results'], '42');
});

test('a failed call carries its trace on the error; maxSpans bounds it with a marker', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const spin = await sb.instantiate(await sb.load(fx.spin.url, { integrity: fx.spin.integrity }));
    const failed = await window.caught(spin.call('spin', [], { fuel: 1_000_000, trace: true }));
    const loop = await sb.load(fx.host_loop.url, { integrity: fx.host_loop.integrity });
    const next = nb.capability((_mem, i) => i, { params: ['i32'], results: ['i32'] });
    const inst = await sb.instantiate(loop, { imports: { env: { next } } });
    const bounded = await inst.call('run', [100], { trace: { maxSpans: 5 } });
    const bad = [];
    for (const trace of [5, 'yes', { maxSpans: 0 }, { maxSpans: 100_001 }, { maxSpans: 2, extra: 1 }]) {
      bad.push(await window.caught(inst.call('run', [1], { trace })));
    }
    const still = (await inst.call('run', [3])).results;
    sb.dispose();
    return { failed, bounded: bounded.trace, results: bounded.results, bad, still };
  });
  assert.equal(out.failed.code, 'FUEL_EXHAUSTED');
  const root = tree(out.failed.details.trace)[0];
  assert.equal(root[0], 'call spin');
  assert.equal(root[3].code, 2);
  assert.match(root[3].message, /^FUEL_EXHAUSTED: /);
  assert.deepEqual(out.results, [4950]);
  const spans = tree(out.bounded);
  assert.equal(spans.length, 5);
  assert.equal(spans[0][2]['nestbox.trace.truncated'], true);
  assert.equal(spans[0][2]['nestbox.trace.dropped_spans'], '96');
  assert.equal(spans[0][2]['nestbox.host_calls'], '100', 'the root still counts every host call');
  for (const b of out.bad) {
    assert.equal(b.code, 'INVALID_ARGUMENT', JSON.stringify(b));
    assert.equal(b.isTypeError, true);
    assert.match(b.message, /trace/);
  }
  assert.deepEqual(out.still, [3], 'refused options change nothing');
});

test('nestbox/worker records the same traces', async () => {
  const report = await browser.page.evaluate(
    () =>
      new Promise((resolve) => {
        const worker = new Worker('/tests/trace-local-worker.js', { type: 'module' });
        worker.onmessage = (e) => {
          worker.terminate();
          resolve(e.data);
        };
        worker.onerror = (e) => resolve({ error: e.message });
        worker.postMessage(window.fx);
      }),
  );
  assert.equal(report.error, undefined, report.error);
  assert.deepEqual(report.call, [
    ['call run', 'root'],
    ['capability env.log', 'child'],
  ]);
  assert.equal(report.plainHasTrace, false);
  assert.deepEqual(report.wasi, [
    'call _start',
    'capability env.double',
    'wasi fd_write',
    'capability env.double',
    'wasi proc_exit',
  ]);
  assert.equal(report.exitCode, 42);
});
