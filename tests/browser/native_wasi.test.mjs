// WASI on the native tier (`engine: 'native'`): the real WASI programs of
// tests/wasi/programs.json (Rust, C and Go, built by `make guests` into target/wasi-guests —
// or `$WASI_GUESTS_DIR`), every case in each of its languages, run through `runWasi` on
// both engines: the native run must pass the expected files (the rules of
// tests/wasi/README.md, as wasi.test.mjs applies them) and give what the interpreter gives —
// exit code, error code, stdout and stderr (byte for byte where the expected output has no
// placeholder), the files read back. Then hostile guests (WAT, compiled here): bad pointers
// are EFAULT to the guest, escapes ENOTCAPABLE, a memory grown between WASI calls is seen,
// output and fuel limits end the run, a sleep and an async stdin suspend and resume, a
// cancel or a deadline during a sleep ends it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import wabtInit from 'wabt';
import { BROWSER, openBrowser } from './harness.mjs';
import { check, firstMismatch, guest, guestsDir, manifest, specOf, wasiDir } from './wasi-cases.mjs';

/** Hostile WASI guests, as WAT. Each writes what it found to stdout, or exits with it. */
const GUESTS = {
  // Bad pointers and an escape: the errno of each call, one byte each, written to stdout.
  efault: `(module
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
    (import "wasi_snapshot_preview1" "path_open"
      (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    ;; iovec at 8: 16 bytes at 0x7ffffff0 (outside); iovec at 16: "hello" at 200; iovec at 24: 4 GiB - 1 at 200
    (data (i32.const 8) "\\f0\\ff\\ff\\7f\\10\\00\\00\\00")
    (data (i32.const 16) "\\c8\\00\\00\\00\\05\\00\\00\\00")
    (data (i32.const 24) "\\c8\\00\\00\\00\\ff\\ff\\ff\\ff")
    (data (i32.const 200) "hello")
    (data (i32.const 240) "../outside")
    (data (i32.const 260) "inside.txt")
    (func $put (param $i i32) (param $errno i32)
      (i32.store8 (i32.add (i32.const 300) (local.get $i)) (local.get $errno)))
    (func (export "_start")
      (call $put (i32.const 0) (call $fd_write (i32.const 1) (i32.const 0xfffffff0) (i32.const 1) (i32.const 100)))
      (call $put (i32.const 1) (call $fd_write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 100)))
      (call $put (i32.const 2) (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 0xffffffff)))
      (call $put (i32.const 3) (call $fd_write (i32.const 1) (i32.const 24) (i32.const 1) (i32.const 100)))
      (call $put (i32.const 4) (call $random_get (i32.const 0xffff0000) (i32.const 0x10000)))
      (call $put (i32.const 5) (call $args_sizes_get (i32.const 0xfffffffc) (i32.const 0)))
      (call $put (i32.const 6) (call $clock_time_get (i32.const 0) (i64.const 0) (i32.const 65535)))
      (call $put (i32.const 7) (call $path_open (i32.const 3) (i32.const 0) (i32.const 0xffffff00) (i32.const 10)
        (i32.const 0) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 100)))
      (call $put (i32.const 8) (call $path_open (i32.const 3) (i32.const 0) (i32.const 240) (i32.const 10)
        (i32.const 0) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 100)))
      (call $put (i32.const 9) (call $path_open (i32.const 3) (i32.const 0) (i32.const 260) (i32.const 10)
        (i32.const 9) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 65534)))
      (call $put (i32.const 10) (call $fd_read (i32.const 0) (i32.const 8) (i32.const 1) (i32.const 100)))
      ;; the 11 errnos, then "hello" (the one good write)
      (i32.store (i32.const 32) (i32.const 300))
      (i32.store (i32.const 36) (i32.const 11))
      (drop (call $fd_write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 100)))
      (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 100)))))`,
  // Grows its memory between two WASI calls and writes from the new page, then from the first.
  grow: `(module
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1 4)
    (data (i32.const 100) "first page\\n")
    (func (export "_start")
      (i32.store (i32.const 0) (i32.const 100))
      (i32.store (i32.const 4) (i32.const 11))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (drop (memory.grow (i32.const 2)))
      (i64.store (i32.const 70000) (i64.const 0x0a65676170207733))
      (i32.store (i32.const 131000) (i32.const 70000))
      (i32.store (i32.const 131004) (i32.const 8))
      (drop (call $fd_write (i32.const 1) (i32.const 131000) (i32.const 1) (i32.const 131008)))
      (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`,
  // Writes 64 bytes to stdout for ever (an output cap, or the fuel budget, ends it).
  flood: `(module
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (data (i32.const 0) "\\10\\00\\00\\00\\40\\00\\00\\00")
    (data (i32.const 16) "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\\n")
    (func (export "_start")
      (loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br $l))))`,
  // Sleeps 1 hour in poll_oneoff (a cancel or the deadline ends it).
  sleeper: `(module
    (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    ;; subscription at 0: userdata 0, tag clock (0), clock id monotonic (1), 3600 s, relative
    (func (export "_start")
      (i32.store8 (i32.const 8) (i32.const 0))
      (i32.store (i32.const 16) (i32.const 1))
      (i64.store (i32.const 24) (i64.const 3600000000000))
      (call $exit (call $poll (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))))`,
  // Exits with 7 from inside a nested call, with a frame below it.
  exit_deep: `(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (func $deep (param i32) (if (i32.eqz (local.get 0)) (then (call $exit (i32.const 7))))
      (call $deep (i32.sub (local.get 0) (i32.const 1))))
    (func (export "_start") (call $deep (i32.const 50)) unreachable))`,
};

let browser;
let jspi = false;
before(async () => {
  browser = await openBrowser({ extraMounts: { '/guests/': guestsDir, '/wasi/': wasiDir } });
  const wabt = await wabtInit();
  const guests = {};
  for (const [name, source] of Object.entries(GUESTS)) {
    const module = wabt.parseWat(`${name}.wat`, source, { bulk_memory: true });
    const bytes = Buffer.from(module.toBinary({}).buffer);
    module.destroy();
    guests[name] = { bytes: [...bytes], integrity: `sha256-${createHash('sha256').update(bytes).digest('base64')}` };
  }
  jspi = await browser.page.evaluate((guests) => {
    window.nw = Object.fromEntries(
      Object.entries(guests).map(([name, g]) => [name, { bytes: new Uint8Array(g.bytes), integrity: g.integrity }]),
    );
    const text = (bytes) => new TextDecoder().decode(bytes);
    /** One runWasi of `source` on `engine` in a sandbox kept per engine; a plain result or error. */
    window.runOn = async (engine, source, options) => {
      window.sandboxes ??= {};
      window.sandboxes[engine] ??= await window.nb.createSandbox({ engine });
      const sb = window.sandboxes[engine];
      const mod = await sb.load(source.url ?? source.bytes, { integrity: source.integrity });
      const t0 = performance.now();
      try {
        const r = await sb.runWasi(mod, options);
        const files = {};
        for (const [guestPath, tree] of Object.entries(r.files)) {
          files[guestPath] = Object.fromEntries(
            Object.entries(tree).map(([p, e]) => [p, e.type === 'file' ? { type: 'file', text: text(e.data) } : e]),
          );
        }
        return {
          engine: mod.engine,
          exitCode: r.exitCode,
          stdout: r.stdoutText,
          stderr: r.stderrText,
          stdoutBytes: [...r.stdout],
          files,
          fuel: r.metrics.fuelConsumed,
          ms: performance.now() - t0,
        };
      } catch (e) {
        return {
          engine: mod.engine,
          error: e.code,
          isSandboxError: e instanceof window.nb.SandboxError,
          message: e.message,
          limit: e.details?.limit,
          metrics: e.details?.metrics !== undefined,
          stdout: e.details?.stdout && text(e.details.stdout),
          stderr: e.details?.stderr && text(e.details.stderr),
          ms: performance.now() - t0,
        };
      } finally {
        mod.dispose();
      }
    };
    return typeof WebAssembly.Suspending === 'function' && typeof WebAssembly.promising === 'function';
  }, guests);
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
});

/** Skips `t` where this browser has no JSPI; returns true then. */
function needsJspi(t) {
  if (jspi) return false;
  t.skip(`${BROWSER}: no JavaScript Promise Integration, so no native tier`);
  return true;
}

/** The case run on both engines: `{interpreter, native}`. */
function runBoth(source, spec) {
  return browser.page.evaluate(
    async ({ source, spec }) => {
      const { wasiOptions } = await import('/tests/wasi-options.js');
      const options = await wasiOptions(spec);
      return {
        interpreter: await window.runOn('interpreter', source, options),
        native: await window.runOn('native', source, options),
      };
    },
    { source, spec },
  );
}

/** Whether an expected file has placeholders (then two runs may differ in them). */
const exact = (file) => file !== undefined && !readFileSync(join(wasiDir, file), 'utf8').includes('{');

const timings = [];

for (const c of manifest.cases) {
  for (const lang of c.languages) {
    test(`${c.name}/${lang}: native as the interpreter (programs.json)`, async (t) => {
      if (needsJspi(t)) return;
      const { interpreter, native } = await runBoth(guest(lang, c.program), specOf(c, lang));
      assert.equal(native.engine, 'native');
      assert.equal(interpreter.engine, 'interpreter');
      check(c, lang, interpreter, 'interpreter');
      check(c, lang, native, 'native');
      assert.equal(native.isSandboxError ?? true, true);
      assert.equal(native.error, interpreter.error);
      assert.equal(native.exitCode, interpreter.exitCode);
      assert.equal(native.limit, interpreter.limit);
      const e = c.expect;
      if (exact(e.stdout_by_language?.[lang] ?? e.stdout) || e.stdout_generated) {
        assert.equal(native.stdout, interpreter.stdout, 'stdout');
      }
      if (exact(e.stderr)) assert.equal(native.stderr, interpreter.stderr, 'stderr');
      if (!c.name.startsWith('clocks') && !c.name.startsWith('random')) {
        // Timestamps aside (mtimes are not in the export), the trees read back are the same.
        assert.deepEqual(native.files, interpreter.files, 'files read back');
      }
      timings.push(`${c.name}/${lang} ${interpreter.ms.toFixed(0)}/${native.ms.toFixed(0)}`);
    });
  }
}

test('every case ran on both engines (ms interpreter/native)', (t) => {
  if (needsJspi(t)) return;
  const expected = manifest.cases.reduce((n, c) => n + c.languages.length, 0);
  assert.equal(timings.length, expected);
  console.log(`runWasi ms, interpreter/native: ${timings.join(', ')}`);
});

// ---- hostile guests ----

/** `name` (a GUESTS entry) run on both engines with `options` (evaluated in the page). */
function hostileBoth(name, options = {}) {
  return browser.page.evaluate(
    async ({ name, options }) => ({
      interpreter: await window.runOn('interpreter', window.nw[name], options),
      native: await window.runOn('native', window.nw[name], options),
    }),
    { name, options },
  );
}

test('bad pointers are EFAULT to the guest, an escape ENOTCAPABLE, a good write still works', async (t) => {
  if (needsJspi(t)) return;
  const out = await hostileBoth('efault', {
    preopens: [{ guestPath: '/data', files: { 'inside.txt': 'in' } }],
  });
  const EFAULT = 21;
  const ENOTCAPABLE = 76;
  for (const engine of ['interpreter', 'native']) {
    const r = out[engine];
    assert.equal(r.error, undefined, `${engine}: ${r.error} ${r.message}`);
    assert.equal(r.exitCode, 0);
    // iovs outside, an iovec outside, nwritten outside, an iovec of 4 GiB, random_get,
    // args_sizes_get, clock_time_get, path_open's path, an escape, path_open's fd pointer,
    // fd_read into an iovec outside.
    assert.deepEqual(
      r.stdoutBytes.slice(0, 11),
      [EFAULT, EFAULT, EFAULT, EFAULT, EFAULT, EFAULT, EFAULT, EFAULT, ENOTCAPABLE, EFAULT, EFAULT],
      engine,
    );
    assert.equal(r.stdout.slice(11), 'hello', engine);
  }
  assert.deepEqual(out.native.stdoutBytes, out.interpreter.stdoutBytes);
  // path_open with an out-of-bounds fd pointer created nothing: the check comes first.
  assert.deepEqual(out.native.files, out.interpreter.files);
});

test('a memory grown between WASI calls: the next call sees the new pages', async (t) => {
  if (needsJspi(t)) return;
  const out = await hostileBoth('grow');
  for (const engine of ['interpreter', 'native']) {
    assert.equal(out[engine].error, undefined, `${engine}: ${out[engine].message}`);
    assert.equal(out[engine].stdout, 'first page\n3w page\nfirst page\n', engine);
  }
});

test('an output cap ends the run with OUTPUT_LIMIT, the output kept up to the cap', async (t) => {
  if (needsJspi(t)) return;
  const out = await hostileBoth('flood', { limits: { maxStdoutBytes: 1000 } });
  for (const engine of ['interpreter', 'native']) {
    const r = out[engine];
    assert.equal(r.error, 'OUTPUT_LIMIT', `${engine}: ${JSON.stringify(r)}`);
    assert.equal(r.isSandboxError, true);
    assert.equal(r.limit, 1000);
    assert.equal(r.metrics, true);
  }
  assert.equal(out.native.message, out.interpreter.message);
});

test('a WASI loop runs out of fuel: FUEL_EXHAUSTED, as the interpreter', async (t) => {
  if (needsJspi(t)) return;
  const out = await hostileBoth('flood', { fuel: 200_000, limits: { maxStdoutBytes: 1 << 30 } });
  for (const engine of ['interpreter', 'native']) {
    const r = out[engine];
    assert.equal(r.error, 'FUEL_EXHAUSTED', `${engine}: ${JSON.stringify(r).slice(0, 300)}`);
    assert.equal(r.limit, 200_000);
  }
});

test('proc_exit from deep in the stack ends the run with its code; the sandbox runs again', async (t) => {
  if (needsJspi(t)) return;
  const out = await hostileBoth('exit_deep');
  assert.equal(out.interpreter.exitCode, 7);
  assert.equal(out.native.exitCode, 7, JSON.stringify(out.native));
  const again = await browser.page.evaluate(() => window.runOn('native', window.nw.exit_deep, {}));
  assert.equal(again.exitCode, 7);
});

test('a sleep of 1 h: cancel ends it at once (CANCELLED), the deadline with TIMEOUT', async (t) => {
  if (needsJspi(t)) return;
  const out = await browser.page.evaluate(async () => {
    const sb = await window.nb.createSandbox({ engine: 'native' });
    const g = window.nw.sleeper;
    const mod = await sb.load(g.bytes, { integrity: g.integrity });
    const controller = new AbortController();
    const running = window.caught(sb.runWasi(mod, { signal: controller.signal }));
    await new Promise((r) => setTimeout(r, 200));
    const t1 = performance.now();
    controller.abort();
    const cancelled = await running;
    const latency = performance.now() - t1;
    const t2 = performance.now();
    const timedOut = await window.caught(sb.runWasi(mod, { timeoutMs: 300 }));
    const timeoutMs = performance.now() - t2;
    const stats = sb.stats;
    sb.dispose();
    return { cancelled, latency, timedOut, timeoutMs, restarts: stats.workerRestarts };
  });
  assert.equal(out.cancelled.code, 'CANCELLED', JSON.stringify(out.cancelled));
  assert.ok(out.cancelled.details.metrics, 'metrics of the cancelled run');
  assert.equal(out.timedOut.code, 'TIMEOUT', JSON.stringify(out.timedOut));
  assert.equal(out.restarts, 0, 'the worker was kept');
  console.log(
    `native sleep of 1 h: CANCELLED ${out.latency.toFixed(1)} ms after abort(); TIMEOUT (300 ms) after ${out.timeoutMs.toFixed(0)} ms`,
  );
});

test('sleeps suspend and resume: the sleep program sleeps its time on the native tier', async (t) => {
  if (needsJspi(t)) return;
  for (const lang of ['rust', 'c', 'go']) {
    const g = guest(lang, 'sleep');
    const out = await browser.page.evaluate((g) => window.runOn('native', g, { args: ['sleep', '120'] }), g);
    assert.equal(out.error, undefined, `${lang}: ${out.message}`);
    assert.equal(out.exitCode, 0);
    assert.ok(out.ms >= 120, `${lang}: a 120 ms sleep took ${out.ms} ms`);
  }
});

test('async stdin from a ReadableStream on the native tier, chunk by chunk', async (t) => {
  if (needsJspi(t)) return;
  const c = manifest.cases.find((x) => x.name === 'stdio');
  for (const lang of c.languages) {
    const g = guest(lang, 'stdio');
    const out = await browser.page.evaluate(async (g) => {
      const sb = await window.nb.createSandbox({ engine: 'native' });
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
      const silent = await window.caught(
        sb.runWasi(mod, { args: ['stdio'], stdin: new ReadableStream(), timeoutMs: 300 }),
      );
      const failing = await window.caught(
        sb.runWasi(mod, {
          args: ['stdio'],
          stdin: new ReadableStream({
            pull() {
              throw new Error('the source broke');
            },
          }),
        }),
      );
      sb.dispose();
      return {
        exitCode: r.exitCode,
        stdout: r.stdoutText,
        stderr: r.stderrText,
        pulls,
        bytes: all.length,
        silent,
        failing,
      };
    }, g);
    assert.equal(out.exitCode, 0);
    assert.equal(firstMismatch(readFileSync(join(wasiDir, c.expect.stdout), 'utf8'), out.stdout), null, lang);
    assert.equal(firstMismatch(readFileSync(join(wasiDir, c.expect.stderr), 'utf8'), out.stderr), null, lang);
    assert.ok(out.pulls >= Math.ceil(out.bytes / 7), `${lang}: ${out.pulls} pulls`);
    assert.equal(out.silent.code, 'TIMEOUT', `${lang}: ${JSON.stringify(out.silent)}`);
    assert.equal(out.failing.code, 'HOST_ERROR', `${lang}: ${JSON.stringify(out.failing)}`);
  }
});
