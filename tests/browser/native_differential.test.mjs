// The two tiers side by side: every guest of the test suite runs on the interpreter (the
// default sandbox) and on the native tier (`engine: 'native'`: the instrumented module on
// Chromium's own engine, suspended with JSPI), and what a user relies on must be identical —
// results, exit codes, stdout and stderr, error codes (and trap codes, limits, what a WASI
// error kept), host calls, denials, peak memory. Not fuel, slices or time: they differ by
// design (README, "Native tier").
//
// The guests: every WAT fixture of fixtures/ (enumerated from the directory; each has a
// scenario in pages/differential.js, and a fixture without one fails here), and every case of
// tests/wasi/programs.json in each of its languages (Rust, C, Go; `make guests`), run from the
// same specs as wasi.test.mjs and also judged by their expected files. What the native tier
// refuses by design is listed in DIVERGENT with its reason and the code it must refuse with.
// Without JSPI (WebAssembly.Suspending / promising) every test skips with that reason.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { openBrowser } from './harness.mjs';
import { check, guestsDir, manifest, specOf, wasiDir } from './wasi-cases.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = readdirSync(join(here, 'fixtures'))
  .filter((f) => f.endsWith('.wat'))
  .map((f) => f.replace(/\.wat$/, ''))
  .sort();

/**
 * What the native tier refuses by design (pages/differential.js runs each the same way on
 * both tiers): the interpreter's transcript is checked by `interpreter`, the native tier's
 * first step must fail with `code`.
 */
const DIVERGENT = {
  'tenant_memory with trapOnGrowFailure': {
    reason:
      "memory.grow runs inside the browser's engine, which answers -1 past the maximum and cannot trap instead: the native tier refuses the limit at instantiation",
    code: 'INVALID_ARGUMENT',
    interpreter: (entries) => assert.equal(entries[0].error?.code, 'MEMORY_LIMIT', JSON.stringify(entries)),
  },
  'log_and_double with trace': {
    reason: "a trace is recorded by the interpreter's host-call loop; the native tier does not record one",
    code: 'INVALID_ARGUMENT',
    interpreter: (entries) => assert.equal(entries[0].traced, true, JSON.stringify(entries)),
  },
  'wasi_capability with trace': {
    reason: 'the same for a WASI run',
    wasi: true,
    code: 'INVALID_ARGUMENT',
    interpreter: (entries) => assert.equal(entries[0].traced, true, JSON.stringify(entries)),
  },
};

/**
 * Known differences, by fixture and step: each tier's entry as it is today (without the step
 * and the error's wording), asserted exactly, so a fix shows up as a failure asking for the
 * entry's removal. Found by this test and reported to the native tier's authors.
 */
const KNOWN_DIFFERENCES = {
  'start_burn/a fuel limit under the start function': {
    why: "a start function out of fuel: the interpreter's error has the metrics and no limit, the native tier's the limit and no metrics",
    interpreter: { error: { code: 'FUEL_EXHAUSTED', metrics: { hostCalls: 0, denials: 0, peakMemoryBytes: 0 } } },
    native: { error: { code: 'FUEL_EXHAUSTED', limit: '100000' } },
  },
};

let browser;
/** Why the native tier cannot run here (no JSPI), or undefined. */
let noJspi;
/** Why the native tier cannot run WASI guests (not built yet, refused as documented), or undefined. */
let noNativeWasi;
/** The fixtures that import wasi_snapshot_preview1. */
let wasiFixtures;
before(async () => {
  browser = await openBrowser({ extraMounts: { '/guests/': guestsDir, '/wasi/': wasiDir } });
  await browser.page.evaluate(async () => {
    window.diff = await import('/tests/differential.js');
  });
  const jspi = await browser.page.evaluate(
    () => typeof WebAssembly.Suspending === 'function' && typeof WebAssembly.promising === 'function',
  );
  if (!jspi) noJspi = 'this browser has no JSPI (WebAssembly.Suspending / promising): the native tier cannot run';
  // Which fixtures are WASI guests, and whether the native tier takes WASI guests yet: until it
  // does, it must refuse them exactly as documented (README, "Native tier"), and they skip.
  const probe = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const wasi = [];
    for (const [name, f] of Object.entries(fx)) {
      const mod = await sb.load(f.url, { integrity: f.integrity });
      if (mod.imports.some((i) => i.module === 'wasi_snapshot_preview1')) wasi.push(name);
      mod.dispose();
    }
    sb.dispose();
    let refusal;
    if (typeof WebAssembly.Suspending === 'function') {
      const native = await nb.createSandbox({ engine: 'native' });
      refusal = await native.load(fx.wasi_capability.url, { integrity: fx.wasi_capability.integrity }).then(
        () => undefined,
        (e) => ({ code: e.code, missing: e.details?.missing, message: e.message }),
      );
      native.dispose();
    }
    return { wasi, refusal };
  });
  wasiFixtures = new Set(probe.wasi);
  if (probe.refusal !== undefined) {
    assert.deepEqual(
      [probe.refusal.code, probe.refusal.missing],
      ['INVALID_ARGUMENT', 'wasi_snapshot_preview1'],
      `the native tier refuses a WASI guest otherwise than documented: ${probe.refusal.message}`,
    );
    noNativeWasi = `the native tier does not run WASI guests yet (${probe.refusal.message})`;
  }
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

/** A transcript without what may differ between the tiers' engines: an error's wording. */
const comparable = (entries) => JSON.parse(JSON.stringify(entries, (key, v) => (key === 'note' ? undefined : v)));

/** The first step whose entries differ, for a readable failure. */
function firstDifference(a, b) {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (JSON.stringify(a[i]) !== JSON.stringify(b[i]))
      return `step ${i + 1}:\n  interpreter ${JSON.stringify(a[i])}\n  native      ${JSON.stringify(b[i])}`;
  }
  return null;
}

const run = (fn, ...args) => browser.page.evaluate(([fn, args]) => window.diff[fn](...args), [fn, args]);

test('every WAT fixture has a scenario, and nothing else does', async () => {
  assert.deepEqual(await run('scenarios'), FIXTURES);
  assert.deepEqual(await run('divergences'), Object.keys(DIVERGENT).sort());
});

for (const name of FIXTURES) {
  test(`fixture ${name}: the same on both tiers`, async (t) => {
    if (noJspi) return t.skip(noJspi);
    if (noNativeWasi && wasiFixtures.has(name)) return t.skip(noNativeWasi);
    const interpreter = await run('scenario', name, 'interpreter');
    const native = await run('scenario', name, 'native');
    for (const e of interpreter)
      assert.equal(e.error?.notSandboxError, undefined, `${name} ${e.step}: ${e.error?.notSandboxError}`);
    const [a, b] = [comparable(interpreter), comparable(native)];
    for (const [i, e] of a.entries()) {
      const known = KNOWN_DIFFERENCES[`${name}/${e.step}`];
      if (known === undefined) continue;
      const { step: _a, ...mine } = e;
      const { step: _b, ...theirs } = b[i] ?? {};
      assert.deepEqual([mine, theirs], [known.interpreter, known.native], `${name}/${e.step}: ${known.why}`);
      b[i] = e;
    }
    assert.equal(firstDifference(a, b), null);
    assert.ok(interpreter.length > 0);
  });
}

for (const [name, d] of Object.entries(DIVERGENT)) {
  test(`native refuses ${name} (${d.code}): ${d.reason}`, async (t) => {
    if (noJspi) return t.skip(noJspi);
    if (noNativeWasi && d.wasi) return t.skip(noNativeWasi);
    d.interpreter(await run('divergence', name, 'interpreter'));
    const native = await run('divergence', name, 'native');
    assert.equal(native[0].error?.code, d.code, JSON.stringify(native));
  });
}

// ---- the WASI programs ----

/** One spec run once on `tier` in the page, as plain data (stdout/stderr decoded). */
function runWasi(spec, tier) {
  return browser.page.evaluate(
    async ({ spec, tier }) => {
      const { nb } = window;
      const text = (bytes) => (bytes === undefined ? undefined : new TextDecoder().decode(bytes));
      window.diffSandboxes ??= {};
      window.diffSandboxes[tier] ??= await nb.createSandbox(tier === 'native' ? { engine: 'native' } : {});
      const sb = window.diffSandboxes[tier];
      const mod = await sb.load(spec.url, { integrity: spec.integrity });
      const { wasiOptions } = await import('/tests/wasi-options.js');
      const options = await wasiOptions(spec);
      const t0 = performance.now();
      try {
        const r = await sb.runWasi(mod, options);
        const files = Object.fromEntries(
          Object.entries(r.files).map(([root, tree]) => [
            root,
            Object.fromEntries(
              Object.entries(tree).map(([path, e]) => [path, e.type === 'file' ? `file ${e.data.length}` : e.type]),
            ),
          ]),
        );
        return {
          exitCode: r.exitCode,
          stdout: r.stdoutText,
          stderr: r.stderrText,
          files,
          hostCalls: r.metrics.hostCalls,
          ms: performance.now() - t0,
        };
      } catch (e) {
        return {
          error: e.code,
          trapCode: e.details?.trapCode,
          stdout: text(e.details?.stdout),
          stderr: text(e.details?.stderr),
          message: e.message,
          ms: performance.now() - t0,
        };
      } finally {
        mod.dispose();
      }
    },
    { spec, tier },
  );
}

/** What must be equal: everything but time and the message's wording. */
const outcome = (r, { randomStdout }) => {
  const { ms: _ms, message: _message, ...rest } = r;
  // An unseeded `random` prints other bytes every run: the hex is masked, the rest compared.
  if (randomStdout && rest.stdout !== undefined) rest.stdout = rest.stdout.replace(/[0-9a-f]{16,}/g, '{hex}');
  return rest;
};

const timings = [];
for (const c of manifest.cases) {
  for (const lang of c.languages) {
    test(`wasi ${c.name}/${lang}: the same on both tiers`, async (t) => {
      if (noJspi) return t.skip(noJspi);
      if (noNativeWasi) return t.skip(noNativeWasi);
      const spec = specOf(c, lang);
      const interpreter = await runWasi(spec, 'interpreter');
      const native = await runWasi(spec, 'native');
      check(c, lang, interpreter);
      check(c, lang, native);
      const how = { randomStdout: c.runs?.stdout === 'differ' };
      assert.deepEqual(outcome(native, how), outcome(interpreter, how));
      timings.push(`${c.name}/${lang} ${interpreter.ms.toFixed(0)}/${native.ms.toFixed(0)}`);
    });
  }
}

test('timings (interpreter/native ms per WASI case)', (t) => {
  if (noJspi) return t.skip(noJspi);
  if (noNativeWasi) return t.skip(noNativeWasi);
  console.log(`runWasi on both tiers, ms: ${timings.join(', ')}`);
});
