// `make bench-browser`: nestbox in headless Chromium (Debian's, via playwright-core), printed
// as a table — numbers, not assertions (results are still checked). About half a minute.
//
//   node bench/browser/run.mjs
//
// The page (bench/browser/index.html + bench.js) imports the built package from /pkg/ with no
// bundler; the guests are compiled from WAT here with the npm `wabt` package:
//   fib.wat, loop.wat,      crate/benches/guests (the native `make bench` guests: the
//   sha256.wat, matmul.wat   four compute kernels)
//   log_and_double.wat,     tests/browser/fixtures (a first call with one capability call,
//   host_loop.wat, spin.wat  n sequential capability calls, an infinite loop)
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import wabtInit from 'wabt';
import { launchChromium } from '../../scripts/chromium.mjs';
import { serve } from '../../scripts/serve.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const pkg = join(root, 'pkg');

const GUESTS = [
  'crate/benches/guests/fib.wat',
  'crate/benches/guests/loop.wat',
  'crate/benches/guests/sha256.wat',
  'crate/benches/guests/matmul.wat',
  'tests/browser/fixtures/log_and_double.wat',
  'tests/browser/fixtures/host_loop.wat',
  'tests/browser/fixtures/spin.wat',
];
const PAGE_CAPABILITY_CALLS = 3_000;
const WORKER_CAPABILITY_CALLS = 100_000;
const POSTMESSAGE_TRIPS = 3_000;
/** The three call measurements are interleaved, this many rounds, and their medians shown. */
const CALL_ROUNDS = 3;
const CANCEL_RUNS = 9;
const CANCEL_AFTER_MS = 50;
/** Timed calls per column of each compute kernel (after one untimed warm-up call). */
const COMPUTE_RUNS = 5;
/** The compute kernels: guest, export, arguments, label (the sizes of the native `make bench`). */
const KERNELS = [
  ['fib', 'fib', [30], 'fib(30)'],
  ['loop', 'lcg', [50_000_000], 'lcg 50M'],
  ['sha256', 'sha256_sum', [4 << 20], 'sha256 4 MiB'],
  ['matmul', 'matmul', [200], 'matmul 200'],
];
const COLD_START_RUNS = 10;
const GUEST_LOAD_RUNS = 5;
/** The synthetic guest of the guest-load rows: this many functions of arithmetic. */
const BIG_GUEST_FUNCTIONS = 3_000;

const started = performance.now();
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function compileGuests() {
  const wabt = await wabtInit();
  const files = {};
  const manifest = {};
  for (const path of GUESTS) {
    const name = basename(path, '.wat');
    const module = wabt.parseWat(name, readFileSync(join(root, path), 'utf8'));
    const bytes = Buffer.from(module.toBinary({}).buffer);
    module.destroy();
    files[`/guests/${name}.wasm`] = { body: bytes, type: 'application/wasm' };
    manifest[name] = {
      url: `/guests/${name}.wasm`,
      integrity: `sha256-${createHash('sha256').update(bytes).digest('base64')}`,
    };
  }
  const big = bigGuest(wabt);
  files['/guests/big.wasm'] = { body: big, type: 'application/wasm' };
  manifest.big = { url: '/guests/big.wasm', integrity: `sha256-${createHash('sha256').update(big).digest('base64')}` };
  return { files, manifest };
}

/** A guest big enough that validating it shows: many small functions calling each other. */
function bigGuest(wabt) {
  const funcs = [];
  for (let i = 0; i < BIG_GUEST_FUNCTIONS; i++) {
    const body = [];
    for (let j = 0; j < 20; j++)
      body.push(`(local.set 0 (i32.add (i32.mul (local.get 0) (i32.const ${i * 31 + j})) (i32.const ${j})))`);
    const next = i + 1 < BIG_GUEST_FUNCTIONS ? `(call $f${i + 1} (local.get 0))` : '(local.get 0)';
    funcs.push(`(func $f${i} (param i32) (result i32) ${body.join(' ')} ${next})`);
  }
  const module = wabt.parseWat('big', `(module ${funcs.join('\n')} (export "run" (func $f0)))`);
  const bytes = Buffer.from(module.toBinary({}).buffer);
  module.destroy();
  return bytes;
}

// ---- the table ----

// Each value is [number, unit]: numbers right-aligned, units after them.
const fmt = (n, digits = 1) => n.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ms = (n) => [fmt(n, n < 10 ? 2 : 1), 'ms'];
const us = (n) => [fmt(n, n < 10 ? 2 : 1), 'µs'];
const bytes = (n) => [n.toLocaleString('en'), 'B'];
const text = (value) => value.join(' ');
const row = (what, [number, unit], note = '') =>
  console.log(`${what.padEnd(42)} ${number.padStart(10)} ${unit.padEnd(7)}  ${note}`.trimEnd());
const section = (title) => console.log(`-- ${title}`);

function packageSizes() {
  const gz = (buf) => gzipSync(buf, { level: 9 }).length;
  const wasm = readdirSync(pkg)
    .filter((f) => f.endsWith('.wasm'))
    .sort()
    .map((name) => {
      const body = readFileSync(join(pkg, name));
      return { name, raw: body.length, gz: gz(body) };
    });
  const js = readdirSync(pkg)
    .filter((f) => f.endsWith('.js'))
    .map((f) => readFileSync(join(pkg, f)));
  const jsRaw = js.reduce((sum, b) => sum + b.length, 0);
  const jsGz = js.reduce((sum, b) => sum + gz(b), 0);
  const wasmRaw = wasm.reduce((sum, w) => sum + w.raw, 0);
  const wasmGz = wasm.reduce((sum, w) => sum + w.gz, 0);
  return { wasm, wasmRaw, wasmGz, jsFiles: js.length, jsRaw, jsGz };
}

/**
 * `make size-breakdown`'s JSON (scripts/wasm-breakdown.mjs: the core's wasm by part, from a
 * names-kept build of the same code), or `undefined` when it was not made.
 */
function sizeBreakdown() {
  try {
    return JSON.parse(readFileSync(join(root, 'target', 'size-breakdown.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * The compute table: one row per kernel, the plain module's time and each nestbox column's
 * time and ratio to it, then the geomeans. A column whose checksum differs from the plain
 * module's is an error (thrown), never a number.
 */
function computeTable(kernels) {
  const cell = (c, plain) =>
    c.unavailable
      ? 'n/a'
      : `${text(ms(c.ms)).padStart(11)} ${`${fmt(c.ms / plain.ms, c.ms / plain.ms < 10 ? 2 : 0)}×`.padStart(7)}`;
  console.log(
    `${'kernel'.padEnd(14)} ${'plain'.padStart(11)}   ${'native tier'.padEnd(19)}   ${'interpreter'.padEnd(19)}   checksum`,
  );
  for (const k of kernels) {
    for (const [column, c] of [
      ['native tier', k.native],
      ['interpreter', k.interpreter],
    ]) {
      if (!c.unavailable && c.result !== k.plain.result)
        throw new Error(`${k.label}: the ${column} returned ${c.result}, the plain module ${k.plain.result}`);
    }
    console.log(
      `${k.label.padEnd(14)} ${text(ms(k.plain.ms)).padStart(11)}   ${cell(k.native, k.plain).padEnd(19)}   ${cell(k.interpreter, k.plain).padEnd(19)}   ${k.plain.result}`,
    );
  }
  const geomean = (column) => {
    if (kernels.some((k) => k[column].unavailable)) return 'n/a';
    const logs = kernels.map((k) => Math.log(k[column].ms / k.plain.ms));
    return `${fmt(Math.exp(logs.reduce((a, b) => a + b, 0) / logs.length), 2)}×`;
  };
  console.log(
    `geomean over the ${kernels.length} kernels: native/plain ${geomean('native')} (goal ≤ 1.5×) · interpreter/plain ${geomean('interpreter')}`,
  );
  const native = kernels.find((k) => k.native.unavailable)?.native.unavailable;
  if (native) console.log(`native tier: n/a (engine not available: ${native})`);
  for (const k of kernels) {
    const notes = [];
    for (const [column, c] of [
      ['native', k.native],
      ['interpreter', k.interpreter],
    ]) {
      if (!c.unavailable)
        notes.push(
          `${column} ${fmt(c.fuel / 1e6, 1)} Mfuel, core ${text(ms(c.coreMs))}, min ${text(ms(c.minMs))} max ${text(ms(c.maxMs))}`,
        );
    }
    console.log(
      `  ${k.label}: plain min ${text(ms(k.plain.minMs))} max ${text(ms(k.plain.maxMs))} · ${notes.join(' · ')}`,
    );
  }
}

// ---- run ----

const { files, manifest } = await compileGuests();
const listening = await serve({ mounts: { '/pkg/': pkg, '/bench/': here }, files, port: 0 });
const chromium = await launchChromium();
let failed = false;
try {
  const { page } = chromium;
  await page.goto(`${listening.url}bench/index.html`);
  await page.waitForFunction(() => window.ready === true || window.loadError !== undefined, null, {
    timeout: 20_000,
  });
  const loadError = await page.evaluate(() => window.loadError);
  if (loadError) throw new Error(`benchmark page failed to load: ${loadError}`);
  const run = (fn, ...args) =>
    page.evaluate(([fn, args]) => window.bench[fn](...args), [fn, args], { timeout: 120_000 });

  const version = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8')).version;
  console.log(
    `nestbox ${version} in headless Chromium ${chromium.version}, ${availableParallelism()} CPUs (medians where runs > 1)`,
  );

  section('cold start: createSandbox → load → instantiate → first result (log_and_double)');
  const parts = (c) =>
    `createSandbox ${text(ms(c.createMs))} · load ${text(ms(c.loadMs))} · instantiate ${text(ms(c.instantiateMs))} · call ${text(ms(c.callMs))}`;
  const first = await run('coldStart', manifest);
  row('1st sandbox on the page', ms(first.totalMs), parts(first));
  const next = await run('nextColdStarts', manifest, COLD_START_RUNS);
  row(
    `next sandboxes (median of ${COLD_START_RUNS})`,
    ms(next.totalMs),
    `${parts(next)} · min ${text(ms(next.minTotalMs))} · max ${text(ms(next.maxTotalMs))}`,
  );
  const load = await run('guestLoad', manifest, 'big', GUEST_LOAD_RUNS);
  const kib = `${fmt(load.sizeBytes / 1024, 0)} KiB guest`;
  row(`guest load, compiled (median of ${GUEST_LOAD_RUNS})`, ms(load.compiledMs), `${kib}: SHA-256, validation`);
  row(
    `guest load, cached (median of ${GUEST_LOAD_RUNS})`,
    ms(load.cachedMs),
    `${kib}, same bytes and engine configuration in the worker: SHA-256, policy, shape`,
  );

  section(`one capability call (host_loop: n sequential calls in one guest call; ${CALL_ROUNDS} rounds)`);
  const rounds = { inWorker: [], bare: [], pageSide: [], trip: [] };
  for (let i = 0; i < CALL_ROUNDS; i++) {
    const worker = await run('workerCapability', manifest, WORKER_CAPABILITY_CALLS);
    rounds.inWorker.push(worker.perCallUs);
    rounds.bare.push(worker.bareUs);
    rounds.pageSide.push((await run('pageCapability', manifest, PAGE_CAPABILITY_CALLS)).perCallUs);
    rounds.trip.push((await run('postMessageRoundTrip', POSTMESSAGE_TRIPS)).perTripUs);
  }
  const spread = (xs) => `min ${text(us(Math.min(...xs)))} · max ${text(us(Math.max(...xs)))}`;
  const nsSpread = (xs) => `min ${fmt(Math.min(...xs) * 1000, 0)} ns · max ${fmt(Math.max(...xs) * 1000, 0)} ns`;
  const inWorker = median(rounds.inWorker);
  const bare = median(rounds.bare);
  const pageSide = median(rounds.pageSide);
  const trip = median(rounds.trip);
  row(
    'in-worker: nestbox/worker syncCapability',
    [fmt(inWorker * 1000, 0), 'ns/call'],
    `${WORKER_CAPABILITY_CALLS.toLocaleString('en')} calls per round · ${nsSpread(rounds.inWorker)} · ${fmt(inWorker / bare, 1)}× bare wasmi`,
  );
  row(
    'in-worker: bare wasmi → JS import, same build',
    [fmt(bare * 1000, 0), 'ns/call'],
    `plain wasmi, the sandbox's engine configuration, no sandbox · ${nsSpread(rounds.bare)}`,
  );
  row(
    'page-side: createSandbox + capability',
    [us(pageSide)[0], 'µs/call'],
    `${PAGE_CAPABILITY_CALLS.toLocaleString('en')} calls per round · ${spread(rounds.pageSide)}`,
  );
  row(
    'bare postMessage round trip main ↔ worker',
    [us(trip)[0], 'µs/trip'],
    `${POSTMESSAGE_TRIPS.toLocaleString('en')} trips per round · ${spread(rounds.trip)} · page-side call = ${fmt(pageSide / trip, 1)}× this`,
  );

  section(`cancel latency: abort() → CANCELLED on an infinite loop (spin, ${CANCEL_RUNS} runs)`);
  const cancel = await run('cancelLatency', manifest, CANCEL_RUNS, CANCEL_AFTER_MS);
  row('abort() → rejection', ms(cancel.medianMs), `min ${text(ms(cancel.minMs))} · max ${text(ms(cancel.maxMs))}`);

  section(
    `compute kernels: plain module vs nestbox's native tier and interpreter, each in a dedicated worker (median of ${COMPUTE_RUNS} calls after a warm-up, page round trip)`,
  );
  const kernels = [];
  for (const [name, exportName, args, label] of KERNELS)
    kernels.push({ label, ...(await run('kernel', manifest, name, exportName, args, COMPUTE_RUNS)) });
  computeTable(kernels);
  await run('disposeAll');

  section('package size (pkg/)');
  const size = packageSizes();
  for (const w of size.wasm) row(w.name, bytes(w.raw), `gzip -9 (zlib) ${text(bytes(w.gz))}`);
  row(`JS (${size.jsFiles} files)`, bytes(size.jsRaw), `gzip -9 (zlib) ${text(bytes(size.jsGz))}, each file`);
  row('total', bytes(size.wasmRaw + size.jsRaw), `gzip -9 (zlib) ${text(bytes(size.wasmGz + size.jsGz))}`);
  const breakdown = sizeBreakdown();
  const core = size.wasm.find((w) => w.name === 'nestbox_bg.wasm');
  if (breakdown === undefined) {
    console.log('(no breakdown by part: `make size-breakdown` writes target/size-breakdown.json)');
  } else {
    const stale = core !== undefined && breakdown.raw !== core.raw;
    section(
      `nestbox_bg.wasm by part (make size-breakdown; code bytes, gzip -9 of each part alone)${stale ? ` — STALE: measured on a ${breakdown.raw} B build` : ''}`,
    );
    for (const part of breakdown.parts)
      row(
        `  ${part.part}`,
        bytes(part.raw),
        `gzip -9 (zlib) ${text(bytes(part.gzip))}${part.functions ? ` · ${part.functions} functions` : ''}`,
      );
  }
  const isolated = await page.evaluate(() => crossOriginIsolated);
  if (!isolated) console.log('(performance.now() is coarsened to 0.1 ms here: the page is not cross-origin isolated)');
  for (const message of chromium.messages) console.log(`page: ${message}`);
} catch (error) {
  failed = true;
  console.error(`bench-browser: ${error.message}`);
  for (const message of chromium.messages) console.error(`page: ${message}`);
} finally {
  await chromium.close();
  listening.server.close();
}
console.log(`(${((performance.now() - started) / 1000).toFixed(1)} s)`);
process.exit(failed ? 1 : 0);
