// The nestbox playground: one sandbox (a core in its own worker) for the whole session. A
// module comes from an example, a file (picker or drag-and-drop) or a URL; the page shows its
// SHA-256, imports and exports, and runs an export (with the capabilities ticked) or a WASI
// command (argv, env, stdin, in-memory files) under the limits set, with a live terminal,
// Cancel, the result and its metrics, a plot over the run, the trace as a timeline,
// the structured error of any failure, and the session's audit log.
//
// #status is a log of what happened, one line per step; a finished run or action ends it
// with a stable line (`done: …`, or `error: <what> → <CODE>: <message>`) that
// scripts/demo-headless.mjs and tests/browser/playground.test.mjs wait for.
import { capability, createSandbox, SandboxError, SandboxTypeError, spansOf } from 'nestbox';
// Compiled from WAT at build time and checked against www/guests/SHA256SUMS by
// scripts/wat-loader.cjs: { url, integrity, sizeBytes }, `integrity` being the pinned digest.
import demo from './guests/demo.wat';
import ticker from './guests/ticker.wat';

/** The sandbox's own limits; each run's (the form) can only tighten them. */
const SANDBOX_LIMITS = { fuel: 10_000_000_000, timeoutMs: 60_000, maxMemoryBytes: 256 << 20 };
const SMALL_FUEL = 10_000_000;

const $ = (id) => document.getElementById(id);
const number = new Intl.NumberFormat('en');
const utf8 = new TextDecoder();

function status(line) {
  $('status').append(`${line}\n`);
}

/** Appends to the terminal: `kind` is 'stdout', 'stderr' or 'log'. */
function terminal(kind, text) {
  const span = document.createElement('span');
  span.className = kind;
  span.textContent = text;
  const term = $('terminal');
  term.append(span);
  // An endless guest would grow the page without bound: keep the last 2,000 chunks.
  if (term.childElementCount > 2_000) term.firstElementChild.remove();
  term.scrollTop = term.scrollHeight;
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

/** JSON of error details: bigints as `123n`, bytes (a WASI run's output so far) as their size. */
const detailsJson = (_key, value) => {
  if (typeof value === 'bigint') return `${value}n`;
  if (value instanceof Uint8Array) return `<${value.length} bytes>`;
  return value;
};

/** Shows an error as its code, message and details; returns the status line for it. */
function showError(what, error) {
  const box = $('error');
  box.replaceChildren();
  // SandboxTypeError: misuse the package refused (INVALID_ARGUMENT), with the same shape.
  if (error instanceof SandboxError || error instanceof SandboxTypeError) {
    const code = document.createElement('span');
    code.className = 'code';
    code.textContent = error.code;
    const { metrics, ...details } = error.details ?? {};
    const lines = [`: ${error.message}`];
    if (Object.keys(details).length > 0) lines.push(`details: ${JSON.stringify(details, detailsJson, 2)}`);
    if (error.cause !== undefined) lines.push(`cause: ${String(error.cause)}`);
    box.append(code, lines.join('\n'));
    showMetrics(metrics);
    return `error: ${what} → ${error.code}: ${error.message}`;
  }
  // Not the sandbox's: bad input on this page (a TypeError the package or the page threw).
  box.textContent = String(error);
  return `error: ${what} → ${String(error)}`;
}

// ---------------------------------------------------------------------------------------
// The progress of a run (`onProgress`: the core's counters after every slice) and the plot.

/** The run's samples (ProgressSample: elapsedMs, fuelConsumed, memoryBytes, …) and when it started. */
let samples = [];
let runStart = 0;

function drawPlot(final) {
  const canvas = $('plot');
  const ctx = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  ctx.clearRect(0, 0, w, h);
  const pad = 40;
  // The legend sits above the plot area (top), so a curve at its maximum does not cover it.
  const top = 44;
  const points = final === undefined ? samples : [...samples, final];
  const series = [
    { key: 'fuelConsumed', color: '#c83', label: 'fuel consumed' },
    { key: 'memoryBytes', color: '#38c', label: 'guest memory (bytes)' },
  ];
  const tMax = Math.max(1, ...points.map((p) => p.elapsedMs));
  ctx.font = '12px sans-serif';
  ctx.strokeStyle = '#8888';
  ctx.strokeRect(pad, top, w - pad - 10, h - pad - top);
  ctx.fillStyle = '#888';
  ctx.fillText('0 ms', pad, h - pad + 16);
  ctx.fillText(`${tMax.toFixed(0)} ms (core clock)`, w - 150, h - pad + 16);
  const described = [];
  series.forEach(({ key, color, label }, row) => {
    const values = points.map((p) => p[key]).filter((v) => v !== undefined);
    if (values.length === 0) return;
    const vMax = Math.max(1, ...values);
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.beginPath();
    let first = true;
    for (const p of points) {
      if (p[key] === undefined) continue;
      const x = pad + (p.elapsedMs / tMax) * (w - pad - 10);
      const y = h - pad - (p[key] / vMax) * (h - pad - top);
      if (first) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
      first = false;
      ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
    }
    ctx.stroke();
    ctx.fillText(`${label}, max ${number.format(vMax)}`, pad, 16 + 16 * row);
    described.push(`${label} up to ${number.format(vMax)}`);
  });
  $('plot-summary').textContent =
    samples.length === 0
      ? `No samples: the run ended within its first slice.${final ? ` Final fuel ${number.format(final.fuelConsumed)}.` : ''}`
      : `${samples.length} samples (one per slice) over ${tMax.toFixed(0)} ms: ${described.join('; ')}.`;
  canvas.dataset.samples = String(samples.length);
}

function onProgress(sample) {
  samples.push(sample);
  // Redraw at most once a frame: a fast guest reports hundreds of slices a second.
  if (!drawPending) {
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      drawPlot(undefined);
    });
  }
}
let drawPending = false;

// ---------------------------------------------------------------------------------------
// The trace (OTLP JSON spans in `result.trace`, or in `error.details.trace` of a failed run).

function showTrace(trace) {
  const view = $('trace-view');
  view.replaceChildren();
  const note = (text) => {
    const p = document.createElement('p');
    p.className = 'note';
    p.textContent = text;
    view.append(p);
  };
  if (trace === undefined) {
    note($('trace').checked ? 'The run returned no trace.' : 'No trace: tick "Record a trace" before a run.');
    return;
  }
  const spans = spansOf(trace).filter((s) => s.startTimeUnixNano !== undefined && s.endTimeUnixNano !== undefined);
  if (spans.length === 0) {
    note('The trace has no spans.');
    return;
  }
  // Unix nanoseconds are past 2^53: differences are taken as bigints, then made numbers.
  const ns = (v) => BigInt(v);
  const t0 = spans.map((s) => ns(s.startTimeUnixNano)).reduce((a, b) => (b < a ? b : a));
  const t1 = spans.map((s) => ns(s.endTimeUnixNano)).reduce((a, b) => (b > a ? b : a));
  const total = Math.max(1, Number(t1 - t0));
  const depth = (span) => {
    let d = 0;
    for (let p = span; p?.parentSpanId; p = spans.find((s) => s.spanId === p.parentSpanId)) d++;
    return d;
  };
  const list = document.createElement('div');
  list.setAttribute('role', 'list');
  list.setAttribute('aria-label', `trace ${spans[0].traceId ?? ''}: ${spans.length} spans`);
  for (const span of [...spans].sort((a, b) => Number(ns(a.startTimeUnixNano) - ns(b.startTimeUnixNano)))) {
    const start = Number(ns(span.startTimeUnixNano) - t0);
    const dur = Number(ns(span.endTimeUnixNano) - ns(span.startTimeUnixNano));
    const row = document.createElement('div');
    row.className = 'span-bar';
    row.setAttribute('role', 'listitem');
    const bar = document.createElement('span');
    bar.style.left = `${(start / total) * 100}%`;
    bar.style.width = `${Math.max(0.3, (dur / total) * 100)}%`;
    const attrs = Array.isArray(span.attributes)
      ? span.attributes.map((a) => `${a.key}=${JSON.stringify(Object.values(a.value ?? {})[0])}`)
      : Object.entries(span.attributes ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    bar.textContent = `${'· '.repeat(depth(span))}${span.name} ${(dur / 1e6).toFixed(2)} ms`;
    row.title = attrs.join(' ');
    row.append(bar);
    list.append(row);
  }
  view.append(list);
  note(`${spans.length} spans over ${(total / 1e6).toFixed(2)} ms (hover a span for its attributes).`);
}

// ---------------------------------------------------------------------------------------
// The session: sandbox, audit log, module.

let sandbox;
/** { module, name, integrity } of the loaded module. */
let loaded;
let controller;
let cancelledAt;
/** Bytes fetched from a URL, waiting for the user to trust their digest. */
let pending;

async function refreshAudit() {
  const entries = await sandbox.audit.entries();
  const body = $('audit').tBodies[0];
  body.replaceChildren(
    ...entries.map((e, i) => {
      const tr = document.createElement('tr');
      const what = [
        e.export,
        e.moduleSha256?.slice(0, 16),
        e.fuel === undefined ? '' : `fuel ${e.fuel}`,
        e.extra?.origin,
        e.extra?.capabilityName,
      ]
        .filter(Boolean)
        .join(' ');
      for (const text of [String(i), e.event, e.outcome, what, `${e.hash.slice(0, 12)}…`]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
  return entries.length;
}

async function sha256(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return `sha256-${btoa(String.fromCharCode(...digest))}`;
}

function describe(module, name) {
  const fmt = (list) =>
    list.length === 0
      ? '  (none)'
      : list.map((x) => `  ${x.module ? `${x.module}.` : ''}${x.name} (${x.kind})`).join('\n');
  return [
    `${name}: ${number.format(module.sizeBytes)} bytes`,
    `SHA-256 ${module.digest}`,
    `imports:\n${fmt(module.imports)}`,
    `exports:\n${fmt(module.exports)}`,
  ].join('\n');
}

/** Loads `source` with `integrity` into the sandbox and shows it; `kind` picks the run mode. */
async function loadModule(source, integrity, name, preset, origin) {
  const what = `load(${name})`;
  status(`loading ${name} with integrity ${integrity}…`);
  try {
    // `origin`: where fetched bytes came from, for the trust policy and the audit log.
    const module = await sandbox.load(source, origin === undefined ? { integrity } : { integrity, origin });
    loaded?.module.dispose();
    loaded = { module, name, integrity };
    $('module-info').textContent = describe(module, name);
    const functions = module.exports.filter((e) => e.kind === 'function').map((e) => e.name);
    $('export').replaceChildren(
      ...functions.map((f) => {
        const option = document.createElement('option');
        option.textContent = f;
        return option;
      }),
    );
    const wasi = module.imports.some((i) => i.module === 'wasi_snapshot_preview1') || functions.includes('_start');
    setMode(preset?.mode ?? (wasi ? 'wasi' : 'call'));
    if (preset?.run) fillWasi(preset.run);
    else if (wasi && !preset) fillWasi({ args: [name.replace(/\.wasm$/, '')], env: [], stdin: '', files: {} });
    $('run-form').disabled = false;
    status(`done: loaded ${name}, ${module.sizeBytes} bytes, ${module.digest}`);
  } catch (error) {
    status(showError(what, error));
  } finally {
    await refreshAudit();
  }
}

async function loadFile(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const integrity = await sha256(bytes);
  status(`hashed ${file.name} locally: ${integrity}`);
  await loadModule(bytes, integrity, file.name);
}

// ---------------------------------------------------------------------------------------
// The forms.

function setMode(mode) {
  $(mode === 'wasi' ? 'mode-wasi' : 'mode-call').checked = true;
  $('call-form').hidden = mode === 'wasi';
  $('wasi-form').hidden = mode !== 'wasi';
}

function addFileRow(path = '', contents = '') {
  const row = document.createElement('div');
  row.className = 'file-row';
  const n = $('files').children.length + 1;
  const pathInput = document.createElement('input');
  pathInput.value = path;
  pathInput.className = 'file-path';
  pathInput.setAttribute('aria-label', `path of file ${n}`);
  const text = document.createElement('textarea');
  text.rows = 2;
  text.value = contents;
  text.className = 'file-contents';
  text.setAttribute('aria-label', `contents of file ${n}`);
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.textContent = 'Remove';
  remove.setAttribute('aria-label', `remove file ${n}`);
  remove.addEventListener('click', () => row.remove());
  row.append(pathInput, text, remove);
  $('files').append(row);
}

function fillWasi({ args, env, stdin, files }) {
  $('wasi-args').value = args.join('\n');
  $('wasi-env').value = env.map(([k, v]) => `${k}=${v}`).join('\n');
  $('wasi-stdin').value = stdin;
  $('files').replaceChildren();
  for (const [path, contents] of Object.entries(files)) addFileRow(path, contents);
}

/** The preopens of the file rows: one writable directory per first path component. */
function preopensOfForm() {
  const byRoot = new Map();
  for (const row of $('files').children) {
    const path = row.querySelector('.file-path').value.trim();
    if (path === '') continue;
    const match = /^\/([^/]+)(?:\/(.*))?$/.exec(path);
    if (match === null) throw new TypeError(`file path ${JSON.stringify(path)} must be /<dir>/<name>`);
    const [, root, rest = ''] = match;
    const tree = byRoot.get(root) ?? {};
    byRoot.set(root, tree);
    if (rest === '') continue;
    tree[rest] = rest.endsWith('/') ? null : row.querySelector('.file-contents').value;
  }
  return [...byRoot].map(([root, files]) => ({ guestPath: `/${root}`, files }));
}

function limitsOfForm() {
  const read = (id, what) => {
    const value = Number($(id).value);
    if (!Number.isSafeInteger(value) || value <= 0) throw new TypeError(`${what} must be a positive integer`);
    return value;
  };
  return {
    fuel: read('lim-fuel', 'fuel'),
    timeoutMs: read('lim-time', 'the wall-clock limit'),
    maxMemoryBytes: read('lim-mem', 'the memory limit'),
  };
}

/** The capabilities ticked. */
function grantsOfForm() {
  const env = {};
  if ($('cap-log').checked) {
    env.log = capability(
      async (mem, ptr, len) => {
        terminal('log', `${await mem.readString(ptr, len)}\n`);
      },
      { params: ['i32', 'i32'], results: [], name: 'console' },
    );
  }
  if ($('cap-now').checked) {
    env.now_ms = capability(() => performance.now(), { params: [], results: ['f64'], name: 'clock' });
  }
  return Object.keys(env).length === 0 ? {} : { env };
}

function busy(running) {
  $('run').disabled = running;
  $('cancel').disabled = !running;
  for (const id of ['source', 'grants', 'limits', 'failures']) $(id).disabled = running;
  for (const input of document.querySelectorAll('#run-form input, #run-form select, #run-form textarea')) {
    input.disabled = running;
  }
}

function startRun() {
  $('terminal').replaceChildren();
  $('result').textContent = '–';
  $('error').replaceChildren();
  $('files-after').hidden = true;
  showMetrics(undefined);
  samples = [];
  runStart = performance.now();
  drawPlot(undefined);
  controller = new AbortController();
  busy(true);
}

function endRun(metrics, trace) {
  // The end point: the core's final fuel and wall time (memory: the last sample's, if any).
  drawPlot(
    metrics && {
      elapsedMs: metrics.wallTimeUs / 1000,
      fuelConsumed: metrics.fuelConsumed,
      memoryBytes: samples.at(-1)?.memoryBytes,
    },
  );
  showTrace(trace);
  controller = undefined;
  cancelledAt = undefined;
  busy(false);
}

/** Runs `run(extraOptions)`, with `{ trace: true }` when "Record a trace" is ticked. */
function withTrace(run) {
  return run($('trace').checked ? { trace: true } : {});
}

async function runCall(exportName, args, limits) {
  const what = `${exportName}(${args.join(', ')})`;
  startRun();
  status(`running ${what}…`);
  let instance;
  let metrics;
  let trace;
  try {
    instance = await sandbox.instantiate(loaded.module, { imports: grantsOfForm() });
    const t0 = performance.now();
    const result = await withTrace((extra) =>
      instance.call(exportName, args, { ...limits, ...extra, onProgress, signal: controller.signal }),
    );
    ({ metrics, trace } = result);
    const text = result.exitCode === undefined ? result.results.join(', ') : `exit code ${result.exitCode}`;
    $('result').textContent = `${what} = ${text}`;
    showMetrics(metrics, performance.now() - t0);
    status(`done: ${what} = ${text}`);
  } catch (error) {
    metrics = error?.details?.metrics;
    trace = error?.details?.trace;
    if (cancelledAt !== undefined && error instanceof SandboxError && error.code === 'CANCELLED') {
      status(`cancel: the call ended ${(performance.now() - cancelledAt).toFixed(1)} ms after abort()`);
    }
    status(showError(what, error));
  } finally {
    instance?.dispose();
    endRun(metrics, trace);
    await refreshAudit();
  }
}

async function runWasi(limits) {
  const args = $('wasi-args').value.split('\n');
  if (args.at(-1) === '') args.pop();
  const env = $('wasi-env')
    .value.split('\n')
    .filter((line) => line !== '')
    .map((line) => {
      const eq = line.indexOf('=');
      if (eq <= 0) throw new TypeError(`environment line ${JSON.stringify(line)} is not KEY=value`);
      return [line.slice(0, eq), line.slice(eq + 1)];
    });
  const preopens = preopensOfForm();
  const what = `wasi ${args.join(' ')}`.trim();
  startRun();
  status(`running ${what}…`);
  let firstChunk = false;
  const onChunk = (kind) => (chunk) => {
    terminal(kind, utf8.decode(chunk, { stream: true }));
    // The first chunk of stdout, to show it arrives while the guest runs (not every chunk).
    if (kind === 'stdout' && !firstChunk) {
      firstChunk = true;
      status(`stdout: the first ${chunk.length} bytes at ${(performance.now() - runStart).toFixed(0)} ms`);
    }
  };
  let metrics;
  let trace;
  try {
    const t0 = performance.now();
    const result = await withTrace((extra) =>
      sandbox.runWasi(loaded.module, {
        args,
        env,
        stdin: $('wasi-stdin').value,
        preopens,
        imports: grantsOfForm(),
        onStdout: onChunk('stdout'),
        onStderr: onChunk('stderr'),
        ...limits,
        ...extra,
        onProgress,
        signal: controller.signal,
      }),
    );
    ({ metrics, trace } = result);
    $('result').textContent = `${what}: exit code ${result.exitCode}`;
    showMetrics(metrics, performance.now() - t0);
    const after = Object.entries(result.files).flatMap(([root, tree]) =>
      Object.entries(tree).map(([path, entry]) =>
        entry.type === 'file'
          ? `${root}/${path}: ${entry.data.length} bytes`
          : `${root}/${path}${entry.type === 'dir' ? '/' : ` → ${entry.target}`}`,
      ),
    );
    if (after.length > 0) {
      $('files-after').textContent = `files after the run:\n${after.join('\n')}`;
      $('files-after').hidden = false;
    }
    status(`done: ${what}: exit code ${result.exitCode}`);
  } catch (error) {
    metrics = error?.details?.metrics;
    trace = error?.details?.trace;
    if (cancelledAt !== undefined && error instanceof SandboxError && error.code === 'CANCELLED') {
      status(`cancel: the run ended ${(performance.now() - cancelledAt).toFixed(1)} ms after abort()`);
    }
    status(showError(what, error));
  } finally {
    endRun(metrics, trace);
    await refreshAudit();
  }
}

$('run').addEventListener('click', () => {
  let limits;
  let args;
  try {
    limits = limitsOfForm();
    if ($('mode-wasi').checked) {
      void runWasi(limits).catch((error) => status(showError('run', error)));
      return;
    }
    const text = $('call-args').value.trim();
    args = text === '' ? [] : text.split(',').map((a) => Number(a.trim()));
    if (args.some((a) => !Number.isFinite(a))) throw new TypeError(`arguments must be numbers: ${text}`);
  } catch (error) {
    status(showError('run', error));
    return;
  }
  void runCall($('export').value, args, limits);
});

$('cancel').addEventListener('click', () => {
  status('cancel: aborting the run…');
  cancelledAt = performance.now();
  controller?.abort();
});

for (const id of ['mode-call', 'mode-wasi']) $(id).addEventListener('change', (e) => setMode(e.target.value));
$('add-file').addEventListener('click', () => addFileRow('/data/new.txt', ''));

// Examples: the WAT guests compiled at build time, and the real WASI programs of
// examples.json (digests computed by the build from the bytes it emitted).
const examples = [
  {
    id: 'demo',
    label: 'WAT: demo (count_primes(n), spin(); imports env.log)',
    url: demo.url,
    integrity: demo.integrity,
    preset: { mode: 'call' },
  },
  {
    id: 'ticker',
    label: 'WAT: ticker (WASI; prints "tick N" forever, grows memory — Cancel it)',
    url: ticker.url,
    integrity: ticker.integrity,
    preset: { mode: 'wasi', run: { args: ['ticker'], env: [], stdin: '', files: {} } },
  },
];

async function listExamples() {
  try {
    const response = await fetch(new URL('./examples.json', document.baseURI));
    for (const e of (await response.json()).examples) {
      examples.push({ ...e, preset: { mode: 'wasi', run: e.run } });
    }
  } catch (error) {
    status(`examples.json: ${String(error)}`);
  }
  $('example').replaceChildren(
    ...examples.map((e) => {
      const option = document.createElement('option');
      option.value = e.id;
      option.textContent = e.label;
      return option;
    }),
  );
}

$('load-example').addEventListener('click', () => {
  const e = examples.find((x) => x.id === $('example').value);
  void loadModule(new URL(e.url, document.baseURI), e.integrity, `${e.id}.wasm`, e.preset);
});

$('file').addEventListener('change', () => {
  const file = $('file').files?.[0];
  if (file) void loadFile(file);
});

const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const file = e.dataTransfer?.files?.[0];
  if (file) void loadFile(file);
});
drop.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' || e.key === ' ') {
    e.preventDefault();
    $('file').click();
  }
});

// A URL: fetched and hashed here; loaded only when the user trusts the digest shown.
$('fetch').addEventListener('click', async () => {
  const text = $('url').value.trim();
  $('trust').disabled = true;
  pending = undefined;
  try {
    const url = new URL(text, document.baseURI);
    status(`fetching ${url}…`);
    const response = await fetch(url);
    if (!response.ok) throw new TypeError(`${url}: HTTP ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const integrity = await sha256(bytes);
    pending = { bytes, integrity, origin: url.origin, name: url.pathname.split('/').pop() || url.host };
    $('url-digest').textContent =
      `Fetched ${number.format(bytes.length)} bytes from ${url.origin}; their SHA-256 is ${integrity}. ` +
      'Loading them means trusting exactly these bytes: compare the digest with one you got from a source you trust.';
    $('trust').disabled = false;
    status(`done: fetched ${url}: ${bytes.length} bytes, ${integrity} (not loaded until trusted)`);
  } catch (error) {
    status(showError(`fetch(${text})`, error));
  }
});

$('trust').addEventListener('click', async () => {
  if (pending === undefined) return;
  const { bytes, integrity, name, origin } = pending;
  pending = undefined;
  $('trust').disabled = true;
  await loadModule(bytes, integrity, name, undefined, origin);
});

$('verify').addEventListener('click', async () => {
  const out = $('verify-result');
  out.replaceChildren();
  const count = await refreshAudit();
  const head = await sandbox.audit.head();
  const verdict = await sandbox.audit.verify(head);
  const span = document.createElement('span');
  span.className = verdict.ok ? 'ok' : 'bad';
  span.textContent = verdict.ok
    ? `verified: ${count} entries, head ${head.slice(0, 16)}…`
    : `FAILED at entry ${verdict.index}: ${verdict.reason}`;
  out.append(span);
  status(verdict.ok ? `done: audit verified, ${count} entries` : `error: audit → ${verdict.reason}`);
});

// The demo guest's structured errors.
async function withDemo(what, action) {
  startRun();
  status(`${what}…`);
  try {
    await action();
    status(`unexpected: ${what} succeeded`);
  } catch (error) {
    status(showError(what, error));
  } finally {
    endRun(undefined, undefined);
    await refreshAudit();
  }
}

$('tampered').addEventListener('click', () =>
  withDemo('load(tampered demo.wasm)', async () => {
    const bytes = new Uint8Array(await (await fetch(demo.url)).arrayBuffer());
    bytes[bytes.length - 1] ^= 0xff;
    await sandbox.load(bytes, { integrity: demo.integrity });
  }),
);

$('fuel').addEventListener('click', () =>
  withDemo('count_primes(200000) on 10M fuel', async () => {
    const module = await sandbox.load(demo.url, { integrity: demo.integrity });
    const log = capability(() => undefined, { params: ['i32', 'i32'], results: [] });
    const instance = await sandbox.instantiate(module, { imports: { env: { log } } });
    try {
      await instance.call('count_primes', [200_000], { fuel: SMALL_FUEL });
    } finally {
      instance.dispose();
      module.dispose();
    }
  }),
);

$('ungranted').addEventListener('click', () =>
  withDemo('instantiate(demo, no imports)', async () => {
    const module = await sandbox.load(demo.url, { integrity: demo.integrity });
    try {
      (await sandbox.instantiate(module, { imports: {} })).dispose();
    } finally {
      module.dispose();
    }
  }),
);

async function main() {
  const t0 = performance.now();
  status('starting the sandbox (a worker running the nestbox core)…');
  sandbox = await createSandbox({ limits: SANDBOX_LIMITS });
  status(`sandbox ready in ${(performance.now() - t0).toFixed(0)} ms`);
  await listExamples();
  $('failures').disabled = false;
  // Start with the demo guest, run once so the page shows a result straight away.
  await loadModule(demo.url, demo.integrity, 'demo.wasm', { mode: 'call' });
  $('export').value = 'count_primes';
  await runCall('count_primes', [200_000], limitsOfForm());
}

main().catch((error) => status(showError('start', error)));
