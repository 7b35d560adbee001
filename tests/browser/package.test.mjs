// The packed npm tarball, not the build directory: its file list has every module the
// package imports (wasm-pack's own list misses hand-written JS: wasm-pack #557, #1206), its
// exports map type-checks for a TypeScript consumer, and the unpacked files run in Chromium
// with the default worker URL (`new URL('./worker.js', import.meta.url)`).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { openBrowser } from './harness.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let work;
let unpacked;
let packed;
let browser;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'nestbox-pack-'));
  const out = execFileSync(npm, ['pack', join(root, 'pkg'), '--pack-destination', work, '--json'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  packed = JSON.parse(out)[0];
  unpacked = join(work, 'unpacked');
  mkdirSync(unpacked);
  execFileSync('tar', ['-xzf', join(work, packed.filename), '-C', unpacked]);
  browser = await openBrowser({ extraMounts: { '/packed/': join(unpacked, 'package') } });
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('the tarball holds every file of the package, the worker and the wasm included', () => {
  const manifest = JSON.parse(readFileSync(join(root, 'pkg', 'package.json'), 'utf8'));
  const inTarball = new Set(packed.files.map((f) => f.path));
  for (const f of [...manifest.files, 'package.json']) assert.ok(inTarball.has(f), `${f} is missing from the tarball`);
  for (const f of [
    'worker.js',
    'nestbox.js',
    'nestbox_bg.wasm',
    'index.js',
    'index.d.ts',
    'local.js',
    'local.d.ts',
    'protocol.js',
  ]) {
    assert.ok(inTarball.has(f), f);
  }
  assert.deepEqual(Object.keys(manifest.exports), ['.', './worker', './package.json']);
  assert.equal(manifest.type, 'module');
  assert.deepEqual(manifest.sideEffects, ['./worker.js']);
  const cargo = readFileSync(join(root, 'crate', 'Cargo.toml'), 'utf8');
  assert.equal(manifest.version, /^version\s*=\s*"([^"]+)"/m.exec(cargo)[1]);
  console.log(
    `tarball ${packed.filename}: ${packed.files.length} files, ${packed.size} bytes packed, ${packed.unpackedSize} unpacked`,
  );
});

test('a TypeScript consumer type-checks against the exports map (strict)', () => {
  const consumer = join(work, 'consumer');
  mkdirSync(join(consumer, 'node_modules'), { recursive: true });
  symlinkSync(join(unpacked, 'package'), join(consumer, 'node_modules', 'nestbox'));
  writeFileSync(
    join(consumer, 'main.ts'),
    `import { createSandbox, capability, revoke, SandboxError, type CallResult, type GuestMemory } from 'nestbox';
import { createLocalSandbox, syncCapability, type SyncGuestMemory } from 'nestbox/worker';

export async function page(bytes: Uint8Array): Promise<CallResult> {
  const sb = await createSandbox({ limits: { fuel: 1e9, memoryLimitBytes: 1 << 20, timeoutMs: 1000 } });
  const mod = await sb.load(bytes, { integrity: 'sha256-x' });
  // The declaration types the arguments: i32 → number, i64 → bigint.
  const log = capability(async (mem, ptr, len) => console.log(await mem.readString(ptr, len)), {
    params: ['i32', 'i32'],
    results: [],
    quota: { maxCalls: 10 },
  });
  const add = capability((_mem: GuestMemory, a, b) => a + b, { params: ['i64', 'i64'], results: ['i64'] });
  // @ts-expect-error an i64 argument is a bigint, not a number
  capability((_mem, a: number) => a, { params: ['i64'], results: ['i32'] });
  const inst = await sb.instantiate(mod, { imports: { env: { log, add } } });
  try {
    return await inst.call('run', [42], { signal: AbortSignal.timeout(100), timeoutMs: 50 });
  } catch (e) {
    if (e instanceof SandboxError && e.code === 'CANCELLED') throw e;
    throw e;
  } finally {
    revoke(log);
    sb.dispose();
  }
}

export async function local(bytes: Uint8Array): Promise<number> {
  const sb = await createLocalSandbox();
  const mod = await sb.load(bytes, { integrity: 'sha256-x' });
  const log = syncCapability((mem: SyncGuestMemory, ptr) => void mem.read(ptr, 1), { params: ['i32'], results: [] });
  const inst = await sb.instantiate(mod, { imports: { env: { log } } });
  const { metrics } = await inst.call('run');
  return metrics.denials + metrics.fuelConsumed;
}
`,
  );
  writeFileSync(
    join(consumer, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'ES2022',
        moduleResolution: 'bundler',
        lib: ['ES2022', 'ESNext.Disposable', 'DOM'],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
      },
      files: ['main.ts'],
    }),
  );
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', consumer], { stdio: 'inherit' });
});

test('the unpacked tarball runs in Chromium with its default worker URL', async () => {
  const out = await browser.page.evaluate(async () => {
    const nb = await import('/packed/index.js');
    const { fx } = window;
    const sb = await nb.createSandbox(); // new Worker(new URL('./worker.js', import.meta.url))
    const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
    let said;
    const log = nb.capability(async (mem, ptr, len) => void (said = await mem.readString(ptr, len)), {
      params: ['i32', 'i32'],
      results: [],
    });
    const { results } = await (await sb.instantiate(mod, { imports: { env: { log } } })).call('run', [5]);
    sb.dispose();
    return { results, said, workerEntry: typeof (await import('/packed/local.js')).createLocalSandbox };
  });
  assert.deepEqual(out.results, [10]);
  assert.equal(out.said, 'hello from the guest');
  assert.equal(out.workerEntry, 'function');
});
