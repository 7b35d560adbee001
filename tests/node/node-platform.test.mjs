// Node.js as a platform: the package in pkg/ used from plain Node (no browser, no bundler).
// `createSandbox` runs the core in a worker_threads thread (pkg/worker.js, which loads
// nestbox_bg.wasm with fs), `nestbox/worker` in this thread; the README's first example runs
// unchanged (compiled by tsc, as a TypeScript user would); processes exit by themselves once
// their sandboxes are disposed; every failure to start is a SandboxError with a code.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import wabtInit from 'wabt';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const pkg = join(root, 'pkg');
const nb = await import(pathToFileURL(join(pkg, 'index.js')).href);
const local = await import(pathToFileURL(join(pkg, 'local.js')).href);

const wabt = await wabtInit();
/** WAT → `{ bytes, integrity }`. */
function compile(source) {
  const module = wabt.parseWat('guest.wat', source);
  const bytes = new Uint8Array(module.toBinary({}).buffer);
  module.destroy();
  return { bytes, integrity: `sha256-${createHash('sha256').update(bytes).digest('base64')}` };
}
const fixture = (name) => compile(readFileSync(join(root, 'tests/browser/fixtures', `${name}.wat`), 'utf8'));

const logAndDouble = fixture('log_and_double');
const spin = fixture('spin');
const hostLoop = fixture('host_loop');
const trapping = compile(`(module
  (func (export "div") (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0)))
  (func (export "boom") unreachable))`);

let work;
before(() => {
  work = mkdtempSync(join(tmpdir(), 'nestbox-node-'));
});
after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Runs `node file` in `cwd`; resolves `{ code, signal, stdout, stderr, ms }` (killed after `timeoutMs`). */
function runNode(file, { cwd = work, timeoutMs = 30_000, flags = [] } = {}) {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...flags, file],
      { cwd, timeout: timeoutMs, encoding: 'utf8' },
      (error, stdout, stderr) => {
        resolve({
          code: error ? (error.code ?? null) : 0,
          signal: error?.signal ?? null,
          stdout,
          stderr,
          ms: performance.now() - t0,
        });
      },
    );
  });
}

/** A directory of `work` where `import 'nestbox'` resolves to pkg/ (as after `npm install`). */
function project(name) {
  const dir = join(work, name);
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  symlinkSync(pkg, join(dir, 'node_modules', 'nestbox'), 'dir');
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
  return dir;
}

/** What `caught` turns an error into: the parts a user relies on. */
async function caught(promise) {
  try {
    await promise;
  } catch (e) {
    return {
      code: e.code,
      name: e.name,
      message: e.message,
      details: e.details,
      cause: e.cause,
      isSandboxError: e instanceof nb.SandboxError,
    };
  }
  return { code: 'no error' };
}

test("the README's first example runs unchanged in Node (compiled by tsc), and the process exits by itself", async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.indexOf('## Using the package (TypeScript / JavaScript)');
  assert.ok(section >= 0, 'README has the package section');
  const example = /```ts\n([\s\S]*?)```/.exec(readme.slice(section))?.[1];
  assert.ok(example?.includes("from 'nestbox'"), 'the first ts block of that section is the example');
  assert.ok(example.includes("'sha256-…'"), 'the example pins a digest');
  const dir = project('readme');
  // The one thing a user fills in: the digest of their guest (here log_and_double: env.log, run(x) = 2x).
  writeFileSync(join(dir, 'example.ts'), example.replace("'sha256-…'", JSON.stringify(logAndDouble.integrity)));
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'ES2022',
        moduleResolution: 'bundler',
        lib: ['ES2022', 'ESNext.Disposable', 'DOM'],
        strict: true,
        outDir: 'out',
      },
      include: ['example.ts'],
    }),
  );
  const tsc = await new Promise((resolve) =>
    execFile(
      process.execPath,
      [join(root, 'node_modules/typescript/bin/tsc'), '-p', dir],
      { encoding: 'utf8' },
      (error, stdout, stderr) => resolve({ ok: !error, out: stdout + stderr }),
    ),
  );
  assert.ok(tsc.ok, `the example type-checks against pkg/index.d.ts:\n${tsc.out}`);
  writeFileSync(join(dir, 'out', 'guest.wasm'), logAndDouble.bytes);
  const run = await runNode(join(dir, 'out', 'example.js'), { cwd: dir });
  assert.equal(run.stderr, '', 'nothing on stderr (the catch prints a SandboxError there)');
  assert.equal(run.signal, null, `exited by itself, not killed after 30 s: ${JSON.stringify(run)}`);
  assert.equal(run.code, 0);
  const [said, numbers] = run.stdout.trimEnd().split('\n');
  assert.equal(said, 'hello from the guest', 'the capability read the guest string');
  const [results, fuel, slices, hostCalls] = numbers.split(/ (?![^[]*\])/);
  assert.equal(results, '[ 84 ]');
  assert.ok(Number(fuel) > 0, numbers);
  assert.equal(Number(slices), 1);
  assert.equal(Number(hostCalls), 1);
  console.log(`README example in Node: ${run.ms.toFixed(0)} ms for the whole process`);
});

test('capabilities: sync and async host functions, quotas, revocation, ungranted imports', async () => {
  const sb = await nb.createSandbox();
  try {
    const mod = await sb.load(logAndDouble.bytes, { integrity: logAndDouble.integrity });
    const said = [];
    const log = nb.capability(async (mem, ptr, len) => void said.push(await mem.readString(ptr, len)), {
      params: ['i32', 'i32'],
      results: [],
      quota: { maxCalls: 1 },
    });
    const inst = await sb.instantiate(mod, { imports: { env: { log } } });
    const { results, metrics } = await inst.call('run', [21]);
    assert.deepEqual(results, [42]);
    assert.deepEqual(said, ['hello from the guest']);
    assert.equal(metrics.hostCalls, 1);
    const over = await caught(inst.call('run', [1]));
    assert.equal(over.code, 'CAPABILITY_QUOTA');
    assert.ok(over.isSandboxError);

    const log2 = nb.capability(() => undefined, { params: ['i32', 'i32'], results: [] });
    const inst2 = await sb.instantiate(mod, { imports: { env: { log: log2 } } });
    assert.deepEqual((await inst2.call('run', [5])).results, [10]);
    nb.revoke(log2);
    assert.equal((await caught(inst2.call('run', [5]))).code, 'CAPABILITY_REVOKED');

    const missing = await caught(sb.instantiate(mod));
    assert.equal(missing.code, 'IMPORT_NOT_GRANTED');
    assert.deepEqual(missing.details.imports, ['env.log']);

    // A sync capability summed over many round trips to the worker thread.
    const loop = await sb.load(hostLoop.bytes, { integrity: hostLoop.integrity });
    const next = nb.capability((_mem, i) => i * 2, { params: ['i32'], results: ['i32'] });
    const li = await sb.instantiate(loop, { imports: { env: { next } } });
    const r = await li.call('run', [1000]);
    assert.deepEqual(r.results, [999 * 1000]);
    assert.equal(r.metrics.hostCalls, 1000);
  } finally {
    sb.dispose();
  }
});

test('traps and integrity failures keep their codes', async () => {
  const sb = await nb.createSandbox();
  try {
    const mod = await sb.load(trapping.bytes, { integrity: trapping.integrity });
    const inst = await sb.instantiate(mod);
    const div = await caught(inst.call('div', [0]));
    assert.equal(div.code, 'TRAP');
    assert.equal(div.details.trapCode, 'integer_division_by_zero');
    const again = await sb.instantiate(mod);
    const boom = await caught(again.call('boom'));
    assert.equal(boom.details.trapCode, 'unreachable');
    const tampered = await caught(sb.load(trapping.bytes, { integrity: logAndDouble.integrity }));
    assert.equal(tampered.code, 'INTEGRITY_MISMATCH');
  } finally {
    sb.dispose();
  }
});

test('the watchdog terminates a worker thread stuck in one long guest step: TIMEOUT, then a fresh thread', async () => {
  // One slice of 10^15 fuel never yields: only terminating the thread ends it.
  const sb = await nb.createSandbox({
    limits: { fuel: 1e15, fuelPerSlice: 1e15, timeoutMs: 300 },
    watchdogGraceMs: 200,
  });
  try {
    const mod = await sb.load(spin.bytes, { integrity: spin.integrity });
    const inst = await sb.instantiate(mod);
    const t0 = performance.now();
    const stuck = await caught(inst.call('spin'));
    const ms = performance.now() - t0;
    assert.equal(stuck.code, 'TIMEOUT');
    assert.equal(stuck.details.workerRestarted, true);
    assert.equal(sb.stats.workerRestarts, 1);
    console.log(`watchdog: a stuck worker thread replaced after ${ms.toFixed(0)} ms (timeoutMs 300 + grace 200)`);
    // The instance died with its thread; the sandbox carries on in a new one.
    assert.equal((await caught(inst.call('answer'))).code, 'WORKER_CRASHED');
    const fresh = await sb.instantiate(mod);
    assert.deepEqual((await fresh.call('answer')).results, [42]);
  } finally {
    sb.dispose();
  }
});

test('cancellation: an AbortSignal stops an infinite loop within a slice, without replacing the thread', async () => {
  const sb = await nb.createSandbox();
  try {
    const mod = await sb.load(spin.bytes, { integrity: spin.integrity });
    const inst = await sb.instantiate(mod);
    const abort = new AbortController();
    const running = caught(inst.call('spin', [], { signal: abort.signal, timeoutMs: 20_000 }));
    setTimeout(() => abort.abort(), 100);
    const out = await running;
    assert.equal(out.code, 'CANCELLED');
    assert.ok(out.details.metrics.slices > 1, 'it ran several slices before the cancel was seen');
    assert.equal(sb.stats.workerRestarts, 0);
    // The deadline between slices, too.
    const late = await caught((await sb.instantiate(mod)).call('spin', [], { timeoutMs: 100 }));
    assert.equal(late.code, 'TIMEOUT');
    assert.notEqual(late.details.workerRestarted, true, 'the core ended it between slices');
    assert.deepEqual((await (await sb.instantiate(mod)).call('answer')).results, [42]);
  } finally {
    sb.dispose();
  }
});

test('runWasi: a Rust WASI program from target/wasi-guests', async (t) => {
  const manifest = JSON.parse(readFileSync(join(root, 'tests/wasi/programs.json'), 'utf8'));
  const file = join(root, manifest.guests_dir, 'rust', 'args_env.wasm');
  assert.ok(existsSync(file), `${file} is missing: run \`make guests\``);
  const bytes = readFileSync(file);
  const integrity = `sha256-${createHash('sha256').update(bytes).digest('base64')}`;
  const c = manifest.cases.find((p) => p.name === 'args_env');
  const expected = readFileSync(join(root, 'tests/wasi', c.expect.stdout), 'utf8');
  const sb = await nb.createSandbox();
  try {
    // From a file: URL, as a Node program would name it.
    const mod = await sb.load(pathToFileURL(file), { integrity });
    const chunks = [];
    const out = await sb.runWasi(mod, {
      args: [c.argv0, ...c.args],
      env: c.env,
      onStdout: (chunk) => chunks.push(chunk),
    });
    assert.equal(out.exitCode, 0);
    assert.equal(out.stdoutText, expected);
    assert.equal(Buffer.concat(chunks).toString('utf8'), expected, 'streamed through onStdout');
    t.diagnostic(`fuel ${out.metrics.fuelConsumed}, ${out.metrics.slices} slices`);
  } finally {
    sb.dispose();
  }
});

test('Go js/wasm guests on a worker thread: exports, a Go capability, idle timers; the process exits with a ticker pending', async () => {
  const file = join(root, 'target', 'gojs-guests', 'exports.wasm');
  assert.ok(existsSync(file), `${file} is missing: run \`make guests\` (or tests/gojs/build.sh)`);
  const integrity = `sha256-${createHash('sha256').update(readFileSync(file)).digest('base64')}`;
  const sb = await nb.createSandbox();
  try {
    const mod = await sb.load(pathToFileURL(file), { integrity });
    const ticks = [];
    const doubled = [];
    const host = {
      tick: nb.goCapability((i) => void ticks.push(i)),
      double: nb.goCapability((n) => (doubled.push(n), n * 2)),
      greet: nb.goCapability(({ name }) => `hi ${name}`),
    };
    const go = await sb.instantiateGo(mod, { globals: { host } });
    assert.equal(go.output().stdout, 'exports registered: 12\n');
    assert.equal(await go.callGo('strlen', 'héllo'), 5);
    assert.deepEqual(await go.callGo('useCapability', 4), { doubled: 8, greeting: 'hi gopher' });
    assert.deepEqual(doubled, [4]);
    await go.callGo('watch', 3);
    for (let i = 0; i < 1000 && ticks.length < 3; i++) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(ticks, [1, 2, 3], 'host.tick called three times by the idle goroutine');
    assert.ok(go.idleRuns >= 3, `idle runs: ${go.idleRuns}`);
  } finally {
    sb.dispose();
  }
  // A script that leaves a Go program with a 10 ms ticker running (never disposed) still ends.
  const dir = project('go-exit');
  writeFileSync(
    join(dir, 'main.mjs'),
    `import { createSandbox } from 'nestbox';
const sb = await createSandbox();
const mod = await sb.load(new URL(${JSON.stringify(pathToFileURL(file).href)}), { integrity: ${JSON.stringify(integrity)} });
const go = await sb.instantiateGo(mod);
console.log(await go.callGo('strlen', 'bye'));
`,
  );
  const run = await runNode('main.mjs', { cwd: dir });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, '3\n');
});

test('load: a file: URL that does not exist is INVALID_MODULE; a relative string (no page to resolve it) too', async () => {
  const sb = await nb.createSandbox();
  try {
    const missing = await caught(sb.load(pathToFileURL(join(work, 'nope.wasm')), { integrity: spin.integrity }));
    assert.equal(missing.code, 'INVALID_MODULE');
    assert.match(missing.message, /ENOENT/);
    const relative = await caught(sb.load('./guest.wasm', { integrity: spin.integrity }));
    assert.equal(relative.code, 'INVALID_MODULE');
    assert.ok(relative.isSandboxError);
  } finally {
    sb.dispose();
  }
});

test('nestbox/worker in the main thread loads its wasm by itself (fs), with sync capabilities', async () => {
  const sb = await local.createLocalSandbox();
  try {
    const mod = await sb.load(logAndDouble.bytes, { integrity: logAndDouble.integrity });
    let said;
    const log = local.syncCapability((mem, ptr, len) => void (said = mem.readString(ptr, len)), {
      params: ['i32', 'i32'],
      results: [],
    });
    const inst = await sb.instantiate(mod, { imports: { env: { log } } });
    assert.deepEqual((await inst.call('run', [8])).results, [16]);
    assert.equal(said, 'hello from the guest');
    // Its call loop yields between slices here too: an abort from a timer stops a loop.
    const spinMod = await sb.load(spin.bytes, { integrity: spin.integrity });
    const spinner = await sb.instantiate(spinMod);
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    assert.equal((await caught(spinner.call('spin', [], { signal: abort.signal }))).code, 'CANCELLED');
    // The audit log verifies with the core loaded in this thread.
    assert.deepEqual(await local.verifyAuditLog(await sb.audit.toJSONL(), await sb.audit.head()), { ok: true });
  } finally {
    sb.dispose();
  }
});

test('a process exits by itself after dispose (a sandbox, a local sandbox, a pool, an idle sandbox never disposed)', async () => {
  const dir = project('exits');
  writeFileSync(join(dir, 'guest.wasm'), logAndDouble.bytes);
  writeFileSync(
    join(dir, 'main.mjs'),
    `import { createSandbox, createWorkerPool, capability, verifyAuditLog } from 'nestbox';
import { createLocalSandbox, syncCapability } from 'nestbox/worker';
const integrity = ${JSON.stringify(logAndDouble.integrity)};
const url = new URL('./guest.wasm', import.meta.url);
const log = capability(() => undefined, { params: ['i32', 'i32'], results: [] });

const sb = await createSandbox();
const inst = await sb.instantiate(await sb.load(url, { integrity }), { imports: { env: { log } } });
console.log((await inst.call('run', [1])).results[0]);
console.log((await verifyAuditLog(await sb.audit.toJSONL(), await sb.audit.head())).ok);
sb.dispose();

const pool = createWorkerPool();
const a = await createSandbox({ worker: pool });
const b = await createSandbox({ worker: pool });
for (const s of [a, b]) {
  const i = await s.instantiate(await s.load(url, { integrity }), { imports: { env: { log } } });
  console.log((await i.call('run', [2])).results[0]);
}
a.dispose();
b.dispose();
pool.dispose();

const ls = await createLocalSandbox();
const li = await ls.instantiate(await ls.load(url, { integrity }), {
  imports: { env: { log: syncCapability(() => undefined, { params: ['i32', 'i32'], results: [] }) } },
});
console.log((await li.call('run', [3])).results[0]);
ls.dispose();

// Never disposed, but idle: its thread does not keep the process alive (nor does the spare
// worker started for the next sandbox).
const idle = await createSandbox();
const ii = await idle.instantiate(await idle.load(url, { integrity }), { imports: { env: { log } } });
console.log((await ii.call('run', [4])).results[0]);
console.log('end of script');
`,
  );
  const run = await runNode(join(dir, 'main.mjs'), { cwd: dir, timeoutMs: 20_000 });
  assert.equal(run.signal, null, `killed after 20 s: it did not exit by itself\n${run.stdout}${run.stderr}`);
  assert.equal(run.stderr, '');
  assert.equal(run.code, 0);
  assert.deepEqual(run.stdout.trimEnd().split('\n'), ['2', 'true', '4', '4', '6', '8', 'end of script']);
  console.log(`exits by itself: ${run.ms.toFixed(0)} ms for the whole process`);
});

test('a worker that cannot start: createSandbox rejects with a SandboxError (WORKER_CRASHED) and its cause', async () => {
  // A path that does not exist.
  const missing = await caught(nb.createSandbox({ workerUrl: pathToFileURL(join(work, 'no-such-worker.js')) }));
  assert.equal(missing.code, 'WORKER_CRASHED');
  assert.ok(missing.isSandboxError);
  assert.equal(missing.name, 'SandboxError');
  assert.match(missing.message, /no-such-worker\.js|Cannot find module/);
  // A URL worker_threads refuses (not a file): thrown when the thread is created.
  const http = await caught(nb.createSandbox({ workerUrl: 'https://cdn.example/nestbox/worker.js' }));
  assert.equal(http.code, 'WORKER_CRASHED');
  assert.ok(http.cause instanceof Error, 'the platform error is the cause');
  // A script that throws while loading, and one that exits at once.
  writeFileSync(join(work, 'throws.mjs'), "throw new Error('broken worker script');\n");
  const throws = await caught(nb.createSandbox({ workerUrl: pathToFileURL(join(work, 'throws.mjs')) }));
  assert.equal(throws.code, 'WORKER_CRASHED');
  assert.match(throws.message, /broken worker script/);
  assert.match(throws.cause?.message ?? '', /broken worker script/);
  writeFileSync(join(work, 'exits.mjs'), 'process.exit(3);\n');
  const exits = await caught(nb.createSandbox({ workerUrl: pathToFileURL(join(work, 'exits.mjs')) }));
  assert.equal(exits.code, 'WORKER_CRASHED');
  assert.match(exits.message, /exited \(code 3\)/);
  // The thread gets an empty environment (the process's variables are often secrets).
  writeFileSync(join(work, 'env.mjs'), 'throw new Error(`env: ${JSON.stringify(process.env)}`);\n');
  const env = await caught(nb.createSandbox({ workerUrl: pathToFileURL(join(work, 'env.mjs')) }));
  assert.equal(env.code, 'WORKER_CRASHED');
  assert.ok(Object.keys(process.env).length > 0);
  assert.match(env.message, /env: \{\}/);
  // A thread that starts but never says `ready` is replaced by the watchdog.
  writeFileSync(
    join(work, 'silent.mjs'),
    "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => {});\n",
  );
  const silent = await caught(
    nb.createSandbox({
      workerUrl: pathToFileURL(join(work, 'silent.mjs')),
      watchdogGraceMs: 100,
      limits: { timeoutMs: 100 },
    }),
  );
  assert.equal(silent.code, 'TIMEOUT');
  assert.equal(silent.details.workerRestarted, true);
  // Not a URL at all: API misuse.
  const wrong = await caught(nb.createSandbox({ workerUrl: 42 }));
  assert.equal(wrong.code, 'INVALID_ARGUMENT');
  assert.equal(wrong.name, 'SandboxTypeError');
});

test('the worker script imported in the main thread does nothing (there is no parentPort to serve)', async () => {
  const dir = project('worker-main');
  // Not in the exports map: the package's own file, by path.
  writeFileSync(
    join(dir, 'main.mjs'),
    `import ${JSON.stringify(pathToFileURL(join(pkg, 'worker.js')).href)};\nconsole.log('ok');\n`,
  );
  const run = await runNode(join(dir, 'main.mjs'), { cwd: dir, timeoutMs: 10_000 });
  assert.deepEqual([run.code, run.signal, run.stdout, run.stderr], [0, null, 'ok\n', '']);
});

test("Node's permission model: the worker thread needs --allow-worker (else WORKER_CRASHED), then works with read access to the package", async () => {
  const dir = project('permissions');
  writeFileSync(join(dir, 'guest.wasm'), logAndDouble.bytes);
  writeFileSync(
    join(dir, 'main.mjs'),
    `import { createSandbox, capability } from 'nestbox';
let sb;
try {
  sb = await createSandbox();
  const mod = await sb.load(new URL('./guest.wasm', import.meta.url), { integrity: ${JSON.stringify(logAndDouble.integrity)} });
  const log = capability(() => undefined, { params: ['i32', 'i32'], results: [] });
  console.log((await (await sb.instantiate(mod, { imports: { env: { log } } })).call('run', [5])).results[0]);
} catch (e) {
  console.log(e.code, e.cause?.code);
} finally {
  sb?.dispose();
}
`,
  );
  // Node 20 spells it --experimental-permission; later versions --permission.
  const permission = process.allowedNodeEnvironmentFlags.has('--permission')
    ? '--permission'
    : '--experimental-permission';
  const read = [`--allow-fs-read=${dir}/`, `--allow-fs-read=${pkg}/`];
  const refused = await runNode(join(dir, 'main.mjs'), { cwd: dir, flags: [permission, ...read] });
  assert.equal(refused.code, 0, refused.stderr);
  assert.equal(refused.stdout, 'WORKER_CRASHED ERR_ACCESS_DENIED\n');
  const allowed = await runNode(join(dir, 'main.mjs'), { cwd: dir, flags: [permission, '--allow-worker', ...read] });
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.equal(allowed.stdout, '10\n', 'the thread read nestbox_bg.wasm from the allowed package directory');
});
