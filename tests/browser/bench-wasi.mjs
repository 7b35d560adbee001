// `make bench-wasi-browser`: the browser half of the WASI benchmark. The same `.wasm` programs,
// with the same args, stdin and files, run in headless Chromium (a) in nestbox — the page's
// `sandbox.runWasi` in a worker, on the interpreter and on the native tier (`engine: 'native'`:
// the instrumented guest on the browser's engine; "n/a" where it refuses WASI guests) — and (b)
// on the browser's own engine (V8, compiled to machine code) under npm
// `@bjorn3/browser_wasi_shim`, on the page's thread. Printed: wall ms of each (median of RUNS,
// plus nestbox's `load` — digest, validation, instrumentation — apart), and the ratios.
// Numbers, not assertions; the stdout of each must agree with the shim's.
//
//   node tests/browser/bench-wasi.mjs [--runs N] [--engines interpreter,native]
//
// Workloads: the "real work" programs of tests/wasi/work/ (hash and gzip a few MiB of
// in-memory files: `work /work`, writable preopen `/work`) when `make guests` built them
// (target/wasi-guests/work/{rust,go}.wasm or target/wasi-guests/{rust,go}/work*.wasm), and
// always the stdio program with `--summary` over 4 MiB of stdin (its FNV-1a and counts).
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openBrowser } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const guestsDir = join(root, 'target', 'wasi-guests');
const shimDir = join(root, 'node_modules', '@bjorn3', 'browser_wasi_shim', 'dist');
const shimVersion = JSON.parse(readFileSync(join(shimDir, '..', 'package.json'), 'utf8')).version;

const runsArg = process.argv.indexOf('--runs');
const RUNS = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;
/** nestbox's engines to measure (`--engines native`: the native tier only, as make bench-browser does). */
const enginesArg = process.argv.indexOf('--engines');
const ENGINES = enginesArg > 0 ? process.argv[enginesArg + 1].split(',') : ['interpreter', 'native'];
for (const e of ENGINES)
  if (!['interpreter', 'native'].includes(e)) throw new Error(`--engines: ${e} is not an engine`);
const STDIN_LINE = '0123456789abcdef nestbox stdin line\n';
const STDIN_BYTES = 4 << 20;

/** A workload: the guest (served at /guests/…), its integrity, args, stdin and preopens. */
function workload(name, file, args, { stdinBytes = 0, preopens = [] } = {}) {
  const bytes = readFileSync(file);
  return {
    name,
    url: `/guests/${relative(guestsDir, file)}`,
    integrity: `sha256-${createHash('sha256').update(bytes).digest('base64')}`,
    sizeBytes: bytes.length,
    args,
    stdinBytes,
    preopens,
  };
}

function workloads() {
  const out = [];
  for (const lang of ['rust', 'go']) {
    const candidates = [join(guestsDir, 'work', `${lang}.wasm`)];
    const langDir = join(guestsDir, lang);
    if (existsSync(langDir)) {
      for (const f of readdirSync(langDir).sort()) if (/^work.*\.wasm$/.test(f)) candidates.push(join(langDir, f));
    }
    const found = candidates.find((f) => existsSync(f));
    if (found)
      out.push(
        workload(`work/${lang} (4 MiB: sha256, crc32, gzip)`, found, ['work', '/work'], { preopens: ['/work'] }),
      );
  }
  if (out.length === 0) console.log('bench-wasi: no work programs in target/wasi-guests (make guests); stdio only');
  for (const lang of ['rust', 'go']) {
    const file = join(guestsDir, lang, 'stdio.wasm');
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`make guests\``);
    out.push(
      workload(`stdio --summary/${lang} (4 MiB stdin)`, file, ['stdio', '--summary'], { stdinBytes: STDIN_BYTES }),
    );
  }
  return out;
}

/** In the page: RUNS runs of one workload on each engine. */
async function measure(page, w) {
  return page.evaluate(
    async ({ w, runs, line, engines }) => {
      const { nb } = window;
      const shim = await import('/shim/index.js');
      const bytes = new Uint8Array(await (await fetch(w.url)).arrayBuffer());
      const stdin = new TextEncoder()
        .encode(line.repeat(Math.ceil(w.stdinBytes / line.length)))
        .subarray(0, w.stdinBytes);
      const text = (chunks) => new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
      const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

      /** RUNS runs in a sandbox of `engine`; `{ unavailable }` when it refuses the guest. */
      const nestboxRuns = async (engine) => {
        const times = { load: [], run: [], total: [] };
        let out;
        const sb = await nb.createSandbox({ engine, limits: { timeoutMs: 600_000, fuel: 1e12 } });
        try {
          for (let i = 0; i < runs; i++) {
            const t0 = performance.now();
            const mod = await sb.load(bytes, { integrity: w.integrity });
            const t1 = performance.now();
            const r = await sb.runWasi(mod, {
              args: w.args,
              stdin,
              preopens: w.preopens.map((guestPath) => ({ guestPath })),
              limits: { maxStdoutBytes: 1 << 20 },
            });
            const t2 = performance.now();
            mod.dispose();
            times.load.push(t1 - t0);
            times.run.push(t2 - t1);
            times.total.push(t2 - t0);
            out = { exitCode: r.exitCode, stdout: r.stdoutText, fuel: r.metrics.fuelConsumed };
          }
        } catch (e) {
          return { unavailable: `${e.code ?? e.name}: ${e.message}` };
        } finally {
          sb.dispose();
        }
        return { times, out };
      };
      const nestbox = {};
      for (const engine of engines) nestbox[engine] = await nestboxRuns(engine);

      const native = { compile: [], run: [], total: [] };
      let shimOut;
      for (let i = 0; i < runs; i++) {
        const out = [];
        const err = [];
        const fds = [
          new shim.OpenFile(new shim.File(stdin)),
          new shim.ConsoleStdout((b) => out.push(b.slice())),
          new shim.ConsoleStdout((b) => err.push(b.slice())),
          ...w.preopens.map((p) => new shim.PreopenDirectory(p, new Map())),
        ];
        const t0 = performance.now();
        const module = await WebAssembly.compile(bytes);
        const wasi = new shim.WASI(w.args, [], fds);
        const instance = await WebAssembly.instantiate(module, { wasi_snapshot_preview1: wasi.wasiImport });
        const t1 = performance.now();
        let exitCode;
        try {
          exitCode = wasi.start(instance);
        } catch (e) {
          exitCode = `threw ${e}`;
        }
        const t2 = performance.now();
        native.compile.push(t1 - t0);
        native.run.push(t2 - t1);
        native.total.push(t2 - t0);
        shimOut = { exitCode, stdout: text(out), stderr: text(err) };
      }
      const m = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, median(v)]));
      for (const r of Object.values(nestbox)) if (r.times) r.times = m(r.times);
      return { nestbox, native: m(native), shimOut };
    },
    { w, runs: RUNS, line: STDIN_LINE, engines: ENGINES },
  );
}

const browser = await openBrowser({ extraMounts: { '/guests/': guestsDir, '/shim/': shimDir } });
try {
  const version = await browser.page.evaluate(() => navigator.userAgent.match(/Chrom(e|ium)\/[\d.]+/)?.[0]);
  console.log(
    `WASI benchmark in headless ${version}: nestbox (runWasi in a worker: ${ENGINES.join(', ')}) vs the browser's engine under @bjorn3/browser_wasi_shim ${shimVersion}; median of ${RUNS} runs, wall ms`,
  );
  const rows = [];
  const unavailable = new Set();
  for (const w of workloads()) {
    const r = await measure(browser.page, w);
    const row = {
      workload: w.name,
      'wasm KiB': (w.sizeBytes / 1024).toFixed(0),
      'browser compile': r.native.compile.toFixed(1),
      'browser run': r.native.run.toFixed(1),
      'browser total': r.native.total.toFixed(1),
    };
    for (const engine of ENGINES) {
      const n = r.nestbox[engine];
      if (n.unavailable) {
        row[`${engine} total`] = 'n/a';
        unavailable.add(`${engine}: ${n.unavailable}`);
        continue;
      }
      const same = n.out.exitCode === r.shimOut.exitCode && n.out.stdout === r.shimOut.stdout;
      row[`${engine} load`] = n.times.load.toFixed(1);
      row[`${engine} run`] = n.times.run.toFixed(1);
      row[`${engine} total`] = n.times.total.toFixed(1);
      row[`${engine}/browser (total)`] = `${(n.times.total / r.native.total).toFixed(2)}x`;
      row[`${engine}/browser (run)`] = `${(n.times.run / r.native.run).toFixed(2)}x`;
      row[`${engine} Gfuel`] = (n.out.fuel / 1e9).toFixed(2);
      row[`${engine} same output`] = same ? 'yes' : 'NO';
      if (!same) {
        console.log(`${w.name}: outputs differ (${engine})`);
        console.log(`  nestbox: exit ${n.out.exitCode}\n${n.out.stdout.slice(0, 2000)}`);
        console.log(
          `  shim:    exit ${r.shimOut.exitCode}\n${r.shimOut.stdout.slice(0, 2000)}${r.shimOut.stderr.slice(0, 500)}`,
        );
        process.exitCode = 1;
      }
    }
    rows.push(row);
  }
  for (const u of unavailable) console.log(`n/a: ${u}`);
  console.table(rows);
} finally {
  await browser.close();
}
