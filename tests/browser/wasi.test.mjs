// WASI in the browser: every `important` case of tests/wasi/programs.json, in each of its
// languages, run from target/wasi-guests (built by `make guests`) through `sandbox.runWasi`
// in the page, judged by the expected files with the placeholder rules of
// tests/wasi/README.md; then what only a browser run shows: output streaming to onStdout
// while the guest runs, cancelling a guest that sleeps, async stdin from a ReadableStream,
// the files read back, OUTPUT_LIMIT with the output up to the cap, and the same in a local
// sandbox (`nestbox/worker`).
//
// The guests are served at /guests/ and tests/wasi/ at /wasi/ (stdin fixtures are fetched
// by the page); preopened fixture trees are read here and passed to the page. Nothing is
// "outside" an in-memory preopen, so the manifest's `outside` file has no place to go: an
// escape finds nothing whatever it tries (the native CLI runs check that part on disk).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openBrowser } from './harness.mjs';
import { check, firstMismatch, guest, guestsDir, manifest, specOf, treeOf, wasiDir } from './wasi-cases.mjs';

let browser;
before(async () => {
  browser = await openBrowser({ extraMounts: { '/guests/': guestsDir, '/wasi/': wasiDir } });
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

/** Runs a spec `count` times in the page; each run as `{exitCode, stdout, stderr}` or `{error, ...}`. */
function runInPage(spec) {
  return browser.page.evaluate(async (spec) => {
    const { nb } = window;
    const text = (bytes) => new TextDecoder().decode(bytes);
    window.wasiSandbox ??= await nb.createSandbox();
    const sb = window.wasiSandbox;
    const mod = await sb.load(spec.url, { integrity: spec.integrity });
    const { wasiOptions } = await import('/tests/wasi-options.js');
    const options = await wasiOptions(spec);
    const runs = [];
    for (let i = 0; i < spec.count; i++) {
      const t0 = performance.now();
      try {
        const r = await sb.runWasi(mod, options);
        runs.push({ exitCode: r.exitCode, stdout: r.stdoutText, stderr: r.stderrText, ms: performance.now() - t0 });
      } catch (e) {
        runs.push({
          error: e.code,
          message: e.message,
          limit: e.details?.limit,
          stdout: e.details?.stdout && text(e.details.stdout),
          stderr: e.details?.stderr && text(e.details.stderr),
          ms: performance.now() - t0,
        });
      }
    }
    mod.dispose();
    return runs;
  }, spec);
}

const important = manifest.cases.filter((c) => c.important);
const ranMs = [];

for (const c of important) {
  for (const lang of c.languages) {
    test(`${c.name}/${lang} (programs.json, important)`, async () => {
      const runs = await runInPage(specOf(c, lang));
      check(c, lang, runs[0]);
      ranMs.push(`${c.name}/${lang} ${runs[0].ms.toFixed(0)}`);
      if (runs.length > 1) {
        for (const r of runs) assert.equal(r.error, undefined);
        const same = runs.every((r) => r.stdout === runs[0].stdout);
        assert.equal(same, c.runs.stdout === 'equal', `stdout of ${runs.length} runs should be ${c.runs.stdout}`);
      }
    });
  }
}

test('every important case ran (timings)', () => {
  const expected = important.reduce((n, c) => n + c.languages.length, 0);
  assert.equal(ranMs.length, expected);
  console.log(`runWasi in the page, ms per case: ${ranMs.join(', ')}`);
});

// ---- what only the browser run shows ----

test('onStdout streams chunks while the guest runs, not at the end', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.wasi_ticker.url, { integrity: fx.wasi_ticker.integrity });
    const t0 = performance.now();
    const chunks = [];
    const r = await sb.runWasi(mod, {
      onStdout: (chunk) => chunks.push({ at: performance.now() - t0, text: new TextDecoder().decode(chunk) }),
    });
    const end = performance.now() - t0;
    sb.dispose();
    return { chunks, end, stdout: r.stdoutText, exitCode: r.exitCode, slices: r.metrics.slices };
  });
  assert.equal(out.exitCode, 0);
  const expected = Array.from({ length: 10 }, (_, i) => `tick ${i}\n`).join('');
  assert.equal(out.stdout, expected);
  assert.equal(out.chunks.map((c) => c.text).join(''), expected, 'the chunks are the whole stdout, in order');
  assert.ok(out.chunks.length >= 5, `${out.chunks.length} chunks`);
  assert.ok(out.end >= 450, `ten 50 ms sleeps took ${out.end} ms`);
  assert.ok(out.chunks[0].at < out.end - 300, `first chunk at ${out.chunks[0].at} ms, end at ${out.end} ms`);
  console.log(
    `onStdout: ${out.chunks.length} chunks at ${out.chunks.map((c) => c.at.toFixed(0)).join(', ')} ms; run ended at ${out.end.toFixed(0)} ms`,
  );
});

test('cancelling a guest that sleeps 10 s: CANCELLED at once, the worker kept', async () => {
  for (const lang of ['rust', 'c', 'go']) {
    const g = guest(lang, 'sleep');
    const out = await browser.page.evaluate(async (g) => {
      const { nb } = window;
      const sb = await nb.createSandbox();
      const mod = await sb.load(g.url, { integrity: g.integrity });
      const controller = new AbortController();
      const t0 = performance.now();
      const running = window.caught(sb.runWasi(mod, { args: ['sleep', '10000'], signal: controller.signal }));
      await new Promise((r) => setTimeout(r, 300));
      const t1 = performance.now();
      controller.abort();
      const r = await running;
      const latency = performance.now() - t1;
      const total = performance.now() - t0;
      // The sandbox still works: the same program sleeping 0 ms.
      const again = await sb.runWasi(mod, { args: ['sleep', '0'] });
      const stats = sb.stats;
      sb.dispose();
      return { r, latency, total, again: again.exitCode, stats };
    }, g);
    assert.equal(out.r.code, 'CANCELLED', JSON.stringify(out.r));
    assert.ok(out.r.details.metrics, 'metrics of the cancelled run');
    assert.equal(out.again, 0);
    assert.equal(out.stats.workerRestarts, 0);
    assert.ok(out.latency < 200, `${lang}: cancel took ${out.latency} ms`);
    console.log(
      `sleep 10 s/${lang}: abort() → CANCELLED in ${out.latency.toFixed(1)} ms (run lasted ${out.total.toFixed(0)} ms)`,
    );
  }
});

test('async stdin from a ReadableStream, chunk by chunk as the guest asks', async () => {
  const c = manifest.cases.find((x) => x.name === 'stdio');
  for (const lang of c.languages) {
    const g = guest(lang, 'stdio');
    const out = await browser.page.evaluate(async (g) => {
      const { nb } = window;
      const sb = await nb.createSandbox();
      const mod = await sb.load(g.url, { integrity: g.integrity });
      const all = new Uint8Array(await (await fetch('/wasi/fixtures/stdin/hello.txt')).arrayBuffer());
      let at = 0;
      let pulls = 0;
      const stream = new ReadableStream({
        async pull(controller) {
          pulls++;
          await new Promise((r) => setTimeout(r, 2));
          if (at >= all.length) {
            controller.close();
            return;
          }
          controller.enqueue(all.slice(at, at + 7));
          at += 7;
        },
      });
      const r = await sb.runWasi(mod, { args: ['stdio'], stdin: stream });
      sb.dispose();
      return { exitCode: r.exitCode, stdout: r.stdoutText, stderr: r.stderrText, pulls, bytes: all.length };
    }, g);
    assert.equal(out.exitCode, 0);
    assert.equal(firstMismatch(readFileSync(join(wasiDir, c.expect.stdout), 'utf8'), out.stdout), null, lang);
    assert.equal(firstMismatch(readFileSync(join(wasiDir, c.expect.stderr), 'utf8'), out.stderr), null, lang);
    assert.ok(out.pulls >= Math.ceil(out.bytes / 7), `${lang}: ${out.pulls} pulls`);
  }
});

test('async stdin that never comes: TIMEOUT at the deadline; a source that throws: HOST_ERROR', async () => {
  const g = guest('c', 'stdio');
  const out = await browser.page.evaluate(async (g) => {
    const { nb } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(g.url, { integrity: g.integrity });
    const t0 = performance.now();
    const silent = await window.caught(sb.runWasi(mod, { stdin: new ReadableStream(), timeoutMs: 300 }));
    const ms = performance.now() - t0;
    const failing = {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          throw new Error('disk on fire');
        },
      }),
    };
    const thrown = await window.caught(sb.runWasi(mod, { stdin: failing }));
    const stats = sb.stats;
    sb.dispose();
    return { silent, ms, thrown, stats };
  }, g);
  assert.equal(out.silent.code, 'TIMEOUT');
  assert.equal(out.silent.details.limit, 300);
  assert.ok(out.silent.details.metrics, 'metrics of the run');
  assert.ok(out.ms >= 290 && out.ms < 1_000, `${out.ms} ms`);
  assert.equal(out.thrown.code, 'HOST_ERROR');
  assert.equal(out.thrown.cause, 'Error: disk on fire');
  assert.equal(out.stats.workerRestarts, 0, 'no watchdog needed');
});

test('the files a guest leaves are read back; a read-only fixture tree comes back unchanged', async () => {
  const tree = treeOf(join(wasiDir, 'fixtures/tree'));
  for (const lang of ['rust', 'c', 'go']) {
    const files = guest(lang, 'files');
    const readonly = guest(lang, 'readonly');
    const out = await browser.page.evaluate(
      async ({ files, readonly, tree }) => {
        const { nb } = window;
        const b64 = (s) => Uint8Array.from(atob(s), (ch) => ch.charCodeAt(0));
        const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
        const sb = await nb.createSandbox();
        const m1 = await sb.load(files.url, { integrity: files.integrity });
        const r1 = await sb.runWasi(m1, { args: ['files'], preopens: [{ guestPath: '/sandbox' }] });
        const sandbox = r1.files['/sandbox'];
        const big = sandbox['big.bin'];
        let pattern = big?.type === 'file' && big.data.length === 100000;
        for (let i = 0; pattern && i < 100000; i++) pattern = big.data[i] === i % 251;
        const m2 = await sb.load(readonly.url, { integrity: readonly.integrity });
        const files2 = Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, v === null ? null : b64(v)]));
        const r2 = await sb.runWasi(m2, {
          args: ['readonly'],
          preopens: [{ guestPath: '/data', files: files2, readOnly: true }],
        });
        const back = Object.fromEntries(
          Object.entries(r2.files['/data']).map(([k, e]) => [k, e.type === 'file' ? hex(e.data) : e.type]),
        );
        sb.dispose();
        return { exit: [r1.exitCode, r2.exitCode], names: Object.keys(sandbox).sort(), pattern, back };
      },
      { files, readonly, tree },
    );
    assert.deepEqual(out.exit, [0, 0]);
    assert.deepEqual(out.names, ['big.bin'], `${lang}: a.txt was removed, big.bin stays`);
    assert.ok(out.pattern, `${lang}: big.bin holds i % 251`);
    const want = Object.fromEntries(
      Object.entries(tree).map(([k, v]) => [k, v === null ? 'dir' : Buffer.from(v, 'base64').toString('hex')]),
    );
    assert.deepEqual(out.back, want, `${lang}: the read-only tree is unchanged`);
  }
});

test('the shorthands: `files` is a writable preopen at /, `env` may be an object (in its order)', async () => {
  const files = guest('rust', 'files');
  const argsEnv = guest('go', 'args_env');
  const c = manifest.cases.find((x) => x.name === 'args_env');
  const out = await browser.page.evaluate(
    async ({ files, argsEnv, c }) => {
      const { nb } = window;
      const sb = await nb.createSandbox();
      const m1 = await sb.load(files.url, { integrity: files.integrity });
      // The program works in /sandbox: here a directory of the "/" preopen.
      const r1 = await sb.runWasi(m1, { args: ['files'], files: { 'sandbox/': null, 'kept.txt': 'as given' } });
      const root = r1.files['/'];
      const m2 = await sb.load(argsEnv.url, { integrity: argsEnv.integrity });
      const r2 = await sb.runWasi(m2, { args: [c.argv0, ...c.args], env: Object.fromEntries(c.env) });
      sb.dispose();
      return {
        names: Object.keys(root).sort(),
        kept: new TextDecoder().decode(root['kept.txt'].data),
        big: root['sandbox/big.bin'].data.length,
        stdout: r2.stdoutText,
      };
    },
    { files, argsEnv, c },
  );
  assert.deepEqual(out.names, ['kept.txt', 'sandbox', 'sandbox/big.bin']);
  assert.equal(out.kept, 'as given');
  assert.equal(out.big, 100000);
  assert.equal(firstMismatch(readFileSync(join(wasiDir, c.expect.stdout), 'utf8'), out.stdout), null);
});

test('OUTPUT_LIMIT: a SandboxError with the output up to the cap in details; exit codes are results', async () => {
  const cap = guest('rust', 'output_cap');
  const exit = guest('c', 'exit_code');
  const out = await browser.page.evaluate(
    async ({ cap, exit }) => {
      const { nb } = window;
      const sb = await nb.createSandbox();
      const mod = await sb.load(cap.url, { integrity: cap.integrity });
      let streamed = 0;
      let error;
      try {
        await sb.runWasi(mod, {
          args: ['output_cap', '4'],
          limits: { maxStdoutBytes: 65536 },
          onStdout: (chunk) => (streamed += chunk.length),
        });
      } catch (e) {
        error = e;
      }
      const exitMod = await sb.load(exit.url, { integrity: exit.integrity });
      const r = await sb.runWasi(exitMod, { args: ['exit_code', '3'] });
      const bad = await window.caught(sb.runWasi(mod, { limits: { maxStdoutBytes: 1, maxStdinBytes: 2 } }));
      const badCore = await window.caught(sb.runWasi(mod, { preopens: [{ guestPath: '/a' }, { guestPath: '/a' }] }));
      sb.dispose();
      return {
        isSandboxError: error instanceof nb.SandboxError,
        code: error?.code,
        limit: error?.details.limit,
        stdoutBytes: error?.details.stdout?.length,
        head: new TextDecoder().decode(error?.details.stdout?.subarray(0, 64)),
        metrics: error?.details.metrics !== undefined,
        streamed,
        exitCode: r.exitCode,
        exitStdout: r.stdoutText,
        bad: [bad.code, bad.isTypeError],
        badCore: [badCore.code, badCore.isTypeError, badCore.message],
      };
    },
    { cap, exit },
  );
  assert.equal(out.isSandboxError, true);
  assert.equal(out.code, 'OUTPUT_LIMIT');
  assert.equal(out.limit, 65536);
  assert.equal(out.stdoutBytes, 65536, 'the bytes up to the cap');
  assert.equal(out.streamed, 65536, 'onStdout saw the same bytes');
  assert.equal(out.head, `${'0'.repeat(63)}\n`);
  assert.equal(out.metrics, true);
  assert.equal(out.exitCode, 3);
  assert.equal(out.exitStdout, 'exiting with 3\n');
  assert.deepEqual(out.bad, ['INVALID_ARGUMENT', true]);
  assert.equal(out.badCore[0], 'INVALID_ARGUMENT');
  assert.equal(out.badCore[1], true);
  assert.match(out.badCore[2], /twice/);
});

test('capabilities alongside WASI: imports are granted as in instantiate', async () => {
  const out = await browser.page.evaluate(async () => {
    const { nb, fx } = window;
    const sb = await nb.createSandbox();
    const mod = await sb.load(fx.wasi_capability.url, { integrity: fx.wasi_capability.integrity });
    const calls = [];
    const double = nb.capability((_mem, x) => (calls.push(x), 2 * x), { params: ['i32'], results: ['i32'] });
    const r = await sb.runWasi(mod, { imports: { env: { double } } });
    const missing = await window.caught(sb.runWasi(mod));
    const fdWrite = nb.capability(() => 0, { params: ['i32', 'i32', 'i32', 'i32'], results: ['i32'] });
    const shadow = await window.caught(
      sb.runWasi(mod, { imports: { env: { double }, wasi_snapshot_preview1: { fd_write: fdWrite } } }),
    );
    sb.dispose();
    return {
      exitCode: r.exitCode,
      stdout: r.stdoutText,
      hostCalls: r.metrics.hostCalls,
      calls,
      missing: [missing.code, missing.details.imports],
      shadow: [shadow.code, shadow.message],
    };
  });
  assert.equal(out.exitCode, 42);
  assert.equal(out.stdout, '6\n');
  assert.deepEqual(out.calls, [3, 21]);
  assert.equal(out.hostCalls, 2, 'capability calls are counted; WASI calls are not host calls');
  assert.deepEqual(out.missing, ['IMPORT_NOT_GRANTED', ['env.double']]);
  assert.equal(out.shadow[0], 'INVALID_ARGUMENT');
  assert.match(out.shadow[1], /wasi_snapshot_preview1/);
});

test('nestbox/worker: runWasi in a local sandbox (async iterable stdin, streaming, cancel during a sleep)', async () => {
  const report = await browser.page.evaluate(
    ({ stdio, sleep }) =>
      new Promise((resolve) => {
        const worker = new Worker('/tests/wasi-local-worker.js', { type: 'module' });
        worker.onmessage = (e) => {
          worker.terminate();
          resolve(e.data);
        };
        worker.onerror = (e) => resolve({ error: e.message });
        worker.postMessage({ fx: window.fx, stdio, sleep });
      }),
    { stdio: guest('rust', 'stdio'), sleep: guest('go', 'sleep') },
  );
  assert.equal(report.error, undefined, report.error);
  const c = manifest.cases.find((x) => x.name === 'stdio');
  assert.equal(report.stdio.exitCode, 0);
  assert.equal(firstMismatch(readFileSync(join(wasiDir, c.expect.stdout), 'utf8'), report.stdio.stdout), null);
  assert.ok(report.stdio.pulls > 3, `${report.stdio.pulls} chunks read`);
  assert.equal(report.stdio.returned, true, 'a source the guest did not drain is stopped');
  assert.equal(report.ticker.stdout.split('\n').length, 11);
  assert.ok(report.ticker.firstChunkAt < report.ticker.end - 300, JSON.stringify(report.ticker));
  assert.equal(report.cancelled.code, 'CANCELLED');
  assert.ok(report.cancelled.latency < 200, `${report.cancelled.latency} ms`);
  assert.equal(report.throwing.code, 'HOST_ERROR');
  assert.match(report.throwing.message, /onStdout threw/);
  assert.equal(report.throwing.cause, 'Error: no thanks');
  console.log(`local sandbox: cancel during a 10 s sleep in ${report.cancelled.latency.toFixed(1)} ms`);
});
