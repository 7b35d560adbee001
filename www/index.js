// The nestbox playground: one sandbox (a core in its own worker), the demo guest pinned by
// its SHA-256, one granted capability (a console that appends to the page), and buttons that
// show a result with its metrics, a cancellation, and structured errors.
//
// #status is a log of what happened, one line per step; a finished run ends it with a stable
// line (`done: count_primes(200000) = 17984`, or `error: <what> → <CODE>: <message>`) that
// scripts/demo-headless.mjs waits for.
import { capability, createSandbox, SandboxError } from 'nestbox';
// Compiled from WAT at build time and checked against www/guests/SHA256SUMS by
// scripts/wat-loader.cjs: { url, integrity, sizeBytes }, `integrity` being the pinned digest.
import demo from './guests/demo.wat';

const LIMITS = { fuel: 5_000_000_000, timeoutMs: 20_000, memoryLimitBytes: 16 << 20 };
const SMALL_FUEL = 10_000_000;

const $ = (id) => document.getElementById(id);
const ui = {
  controls: $('controls'),
  failures: $('failures'),
  guest: $('guest'),
  n: $('n'),
  run: $('run'),
  spin: $('spin'),
  cancel: $('cancel'),
  tampered: $('tampered'),
  fuel: $('fuel'),
  ungranted: $('ungranted'),
  result: $('result'),
  error: $('error'),
  log: $('log'),
  status: $('status'),
};

const number = new Intl.NumberFormat('en');

function status(line) {
  ui.status.append(`${line}\n`);
}

function appendLog(line) {
  ui.log.append(`${line}\n`);
}

function showMetrics(metrics, roundTripMs) {
  const set = (id, text) => ($(id).textContent = text);
  set('m-fuel', metrics ? number.format(metrics.fuelConsumed) : '–');
  set('m-slices', metrics ? number.format(metrics.slices) : '–');
  set('m-host-calls', metrics ? number.format(metrics.hostCalls) : '–');
  set('m-memory', metrics ? `${number.format(metrics.peakMemoryBytes / 1024)} KiB` : '–');
  set('m-wall', metrics ? `${(metrics.wallTimeUs / 1000).toFixed(1)} ms` : '–');
  set('m-round-trip', roundTripMs === undefined ? '–' : `${roundTripMs.toFixed(1)} ms`);
}

/** Shows an error as its code, message and details; returns the status line for it. */
function showError(what, error) {
  ui.error.replaceChildren();
  if (error instanceof SandboxError) {
    const code = document.createElement('span');
    code.className = 'code';
    code.textContent = error.code;
    const { metrics, ...details } = error.details ?? {};
    const lines = [`: ${error.message}`];
    if (Object.keys(details).length > 0) lines.push(`details: ${JSON.stringify(details, null, 2)}`);
    if (error.cause !== undefined) lines.push(`cause: ${String(error.cause)}`);
    ui.error.append(code, lines.join('\n'));
    showMetrics(metrics);
    return `error: ${what} → ${error.code}: ${error.message}`;
  }
  // Not the sandbox's: bad input on this page, or a bug in it.
  ui.error.textContent = String(error);
  return `error: ${what} → ${String(error)}`;
}

function clearOutputs() {
  ui.result.textContent = '–';
  ui.error.replaceChildren();
  showMetrics(undefined);
}

/** Enables the buttons for an idle page, or only Cancel while a call runs. */
function busy(running) {
  ui.controls.disabled = false;
  ui.failures.disabled = running;
  for (const button of [ui.run, ui.spin, ui.n]) button.disabled = running;
  ui.cancel.disabled = !running;
}

// The one capability the guest gets: env.log(ptr, len) appends a line of its memory to the
// page. The view is bounds-checked: a bad (ptr, len) fails the call, it is never clamped.
const console_ = capability(
  async (mem, ptr, len) => {
    appendLog(await mem.readString(ptr, len));
  },
  { params: ['i32', 'i32'], results: [], name: 'console' },
);

let sandbox;
let module;
let controller;
/** When Cancel was clicked (performance.now()), to show how long the cancellation took. */
let cancelledAt;

/** Runs `exportName(args)` in a fresh instance (a cancelled or trapped instance is poisoned). */
async function run(exportName, args, options = {}) {
  const what = `${exportName}(${args.join(', ')})`;
  clearOutputs();
  controller = new AbortController();
  busy(true);
  status(`running ${what}${options.fuel ? ` with ${number.format(options.fuel)} fuel` : ''}…`);
  let instance;
  try {
    instance = await sandbox.instantiate(module, { imports: { env: { log: console_ } } });
    const t0 = performance.now();
    const { results, metrics } = await instance.call(exportName, args, { ...options, signal: controller.signal });
    const roundTripMs = performance.now() - t0;
    ui.result.textContent = `${what} = ${results.join(', ')}`;
    showMetrics(metrics, roundTripMs);
    status(`done: ${what} = ${results.join(', ')}`);
  } catch (error) {
    if (cancelledAt !== undefined && error instanceof SandboxError && error.code === 'CANCELLED') {
      status(`cancel: the call ended ${(performance.now() - cancelledAt).toFixed(1)} ms after abort()`);
    }
    status(showError(what, error));
  } finally {
    instance?.dispose();
    controller = undefined;
    cancelledAt = undefined;
    busy(false);
  }
}

function readN() {
  const n = Number(ui.n.value);
  if (!Number.isInteger(n) || n < 0 || n > 0x7fff_ffff) {
    throw new TypeError(`N must be an integer from 0 to 2147483647, not ${JSON.stringify(ui.n.value)}`);
  }
  return n;
}

ui.run.addEventListener('click', () => {
  let n;
  try {
    n = readN();
  } catch (error) {
    status(showError('count_primes', error));
    return;
  }
  void run('count_primes', [n]);
});

ui.spin.addEventListener('click', () => void run('spin', []));

ui.cancel.addEventListener('click', () => {
  status('cancel: aborting the call…');
  cancelledAt = performance.now();
  controller?.abort();
});

ui.fuel.addEventListener('click', () => {
  let n;
  try {
    n = readN();
  } catch (error) {
    status(showError('count_primes', error));
    return;
  }
  void run('count_primes', [n], { fuel: SMALL_FUEL });
});

// The guest's bytes with one byte changed, loaded with the pinned digest: refused before
// anything parses them.
ui.tampered.addEventListener('click', async () => {
  clearOutputs();
  busy(true);
  const what = 'load(tampered demo.wasm)';
  status(`loading the demo guest with its last byte flipped…`);
  try {
    const bytes = new Uint8Array(await (await fetch(demo.url)).arrayBuffer());
    bytes[bytes.length - 1] ^= 0xff;
    await sandbox.load(bytes, { integrity: demo.integrity });
    status(`unexpected: ${what} succeeded`);
  } catch (error) {
    status(showError(what, error));
  } finally {
    busy(false);
  }
});

// The guest imports env.log; instantiating it without granting it fails closed.
ui.ungranted.addEventListener('click', async () => {
  clearOutputs();
  busy(true);
  const what = 'instantiate(demo, no imports)';
  status('instantiating the demo guest without granting env.log…');
  try {
    (await sandbox.instantiate(module, { imports: {} })).dispose();
    status(`unexpected: ${what} succeeded`);
  } catch (error) {
    status(showError(what, error));
  } finally {
    busy(false);
  }
});

async function main() {
  const t0 = performance.now();
  status('starting the sandbox (a worker running the nestbox core)…');
  sandbox = await createSandbox({ limits: LIMITS });
  status(`sandbox ready in ${(performance.now() - t0).toFixed(0)} ms`);
  module = await sandbox.load(demo.url, { integrity: demo.integrity });
  const exports = module.exports
    .filter((e) => e.kind === 'function')
    .map((e) => e.name)
    .join(', ');
  const imports = module.imports.map((i) => `${i.module}.${i.name}`).join(', ');
  ui.guest.textContent = `demo.wasm: ${module.sizeBytes} bytes, verified against the pinned ${demo.integrity}`;
  status(`loaded demo guest: ${module.sizeBytes} bytes, ${module.digest}; imports ${imports}; exports ${exports}`);
  busy(false);
  // Run once on load, so the page shows a result straight away.
  await run('count_primes', [readN()]);
}

main().catch((error) => status(showError('start', error)));
