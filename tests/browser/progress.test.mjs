// Progress between slices (`onProgress` of a call or a WASI run): the core's counters so far
// and the guest's memory now, after fuel slices while the guest runs — only for a call that
// asked, growing from one sample to the next, and never past the call's final metrics.
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

test('a call reports its fuel, slices and elapsed time after every slice, up to its end', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox({ limits: { fuelPerSlice: 100_000 } });
    const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    const inst = await sb.instantiate(mod);
    const samples = [];
    const error = await window.caught(inst.call('spin', [], { fuel: 5_000_000, onProgress: (s) => samples.push(s) }));
    sb.dispose();
    return { samples, error };
  });
  assert.equal(out.error.code, 'FUEL_EXHAUSTED');
  const final = out.error.details.metrics;
  assert.ok(out.samples.length >= 10, `${out.samples.length} samples for ${final.slices} slices`);
  assert.ok(out.samples.length <= final.slices, 'at most one sample per slice');
  for (const [i, s] of out.samples.entries()) {
    assert.deepEqual(Object.keys(s).sort(), [
      'elapsedMs',
      'fuelConsumed',
      'hostCalls',
      'memoryBytes',
      'peakMemoryBytes',
      'slices',
    ]);
    assert.equal(s.memoryBytes, 0, 'spin exports no memory');
    if (i === 0) continue;
    const p = out.samples[i - 1];
    assert.ok(s.fuelConsumed > p.fuelConsumed, `fuel grows: ${p.fuelConsumed} → ${s.fuelConsumed}`);
    assert.equal(s.slices, p.slices + 1, 'one sample per slice');
    assert.ok(s.elapsedMs >= p.elapsedMs);
  }
  const last = out.samples.at(-1);
  assert.ok(last.fuelConsumed <= final.fuelConsumed && last.slices <= final.slices, 'never past the end');
  // The first sample is after the first slice: at most one slice's fuel.
  const first = out.samples[0];
  assert.equal(first.slices, 1, JSON.stringify(first));
  assert.ok(first.fuelConsumed > 0 && first.fuelConsumed <= 100_000, JSON.stringify(first));
});

test('a WASI run reports the guest memory; a throwing callback is reported and ignored', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.wasi_ticker.url, { integrity: fx.wasi_ticker.integrity });
    const samples = [];
    const reported = [];
    const onError = (e) => (reported.push(String(e.error?.message ?? e.message)), e.preventDefault());
    window.addEventListener('error', onError);
    const result = await sb.runWasi(mod, {
      onProgress: (s) => {
        samples.push(s);
        if (samples.length === 1) throw new Error('a listener that throws');
      },
    });
    window.removeEventListener('error', onError);
    // Without onProgress the same run works as before.
    const plain = await sb.runWasi(mod);
    sb.dispose();
    return { samples, reported, exitCode: result.exitCode, stdout: result.stdoutText, plain: plain.stdoutText };
  });
  assert.equal(out.exitCode, 0);
  assert.equal(out.stdout, out.plain, 'progress changes nothing the guest sees');
  assert.ok(out.samples.length >= 1, 'the ticker yields (it sleeps between ticks) and runs slices');
  assert.ok(
    out.samples.every((s) => s.memoryBytes === 65_536),
    `one page of memory: ${JSON.stringify(out.samples.slice(0, 3))}`,
  );
  assert.deepEqual(out.reported, ['a listener that throws']);
});

test('onProgress must be a function', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.spin.url, { integrity: fx.spin.integrity });
    const inst = await sb.instantiate(mod);
    const call = await window.caught(inst.call('answer', [], { onProgress: 1 }));
    const wasi = await window.caught(sb.runWasi(mod, { onProgress: 'x' }));
    sb.dispose();
    return { call, wasi };
  });
  assert.equal(out.call.code, 'INVALID_ARGUMENT');
  assert.match(out.call.message, /onProgress must be a function/);
  assert.equal(out.wasi.code, 'INVALID_ARGUMENT');
});

test('nestbox/worker: a local sandbox reports progress the same way', async () => {
  const out = await browser.page.evaluate(async () => {
    const spin = { url: new URL(window.fx.spin.url, location.href).href, integrity: window.fx.spin.integrity };
    const source = `
      import { createLocalSandbox } from '${location.origin}/pkg/local.js';
      self.onmessage = async ({ data: spin }) => {
        const sb = await createLocalSandbox({ limits: { fuelPerSlice: 100000 } });
        const mod = await sb.load(spin.url, { integrity: spin.integrity });
        const inst = await sb.instantiate(mod);
        const samples = [];
        let code;
        try {
          await inst.call('spin', [], { fuel: 2000000, onProgress: (s) => samples.push(s) });
        } catch (e) {
          code = e.code;
        }
        self.postMessage({ code, samples });
      };`;
    const url = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
    const worker = new Worker(url, { type: 'module' });
    const result = await new Promise((resolve) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => resolve({ error: e.message });
      worker.postMessage(spin);
    });
    worker.terminate();
    URL.revokeObjectURL(url);
    return result;
  });
  assert.equal(out.error, undefined, out.error);
  assert.equal(out.code, 'FUEL_EXHAUSTED');
  assert.ok(out.samples.length >= 10, `${out.samples.length} samples`);
  assert.ok(out.samples.every((s, i) => i === 0 || s.fuelConsumed > out.samples[i - 1].fuelConsumed));
});
