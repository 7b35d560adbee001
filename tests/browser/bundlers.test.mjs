// The packed tarball installed into throwaway webpack 5 and Vite projects with no bundler
// configuration for nestbox: the worker (`new Worker(new URL('./worker.js', import.meta.url),
// { type: 'module' })`) and nestbox_bg.wasm (`new URL(…, import.meta.url)` in nestbox.js) must
// be found and emitted by the bundler itself, and the bundled page must run a guest.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { openBrowser } from './harness.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let work;
let project;
let browser;

// The consumer's code: plain imports from 'nestbox', nothing else.
const MAIN = `import { createSandbox, capability } from 'nestbox';
window.runBundled = async (fx) => {
  const sb = await createSandbox();
  const mod = await sb.load(fx.log_and_double.url, { integrity: fx.log_and_double.integrity });
  let said;
  const log = capability(async (mem, ptr, len) => void (said = await mem.readString(ptr, len)), { params: ['i32', 'i32'], results: [] });
  const inst = await sb.instantiate(mod, { imports: { env: { log } } });
  const { results } = await inst.call('run', [8]);
  sb.dispose();
  return { results, said };
};
`;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'nestbox-bundlers-'));
  const packed = JSON.parse(
    execFileSync('npm', ['pack', join(root, 'pkg'), '--pack-destination', work, '--json'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }),
  )[0];
  project = join(work, 'project');
  mkdirSync(join(project, 'src'), { recursive: true });
  mkdirSync(join(project, 'node_modules', 'nestbox'), { recursive: true });
  // "npm install nestbox-x.y.z.tgz", without the network: unpack it where npm would put it.
  execFileSync('tar', [
    '-xzf',
    join(work, packed.filename),
    '-C',
    join(project, 'node_modules', 'nestbox'),
    '--strip-components=1',
  ]);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  writeFileSync(join(project, 'src', 'main.js'), MAIN);
  writeFileSync(
    join(project, 'index.html'),
    '<!doctype html><meta charset="utf-8"><script type="module" src="./src/main.js"></script>\n',
  );
});
after(async () => {
  if (process.exitCode) console.log(browser?.log.join('\n'));
  await browser?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function runBundledPage(path) {
  const page = await browser.page.context().newPage();
  try {
    await page.goto(`${browser.base}${path}`);
    await page.waitForFunction(() => typeof window.runBundled === 'function', null, { timeout: 10_000 });
    const fx = await browser.page.evaluate(() => window.fx);
    return await page.evaluate((fx) => window.runBundled(fx), fx);
  } finally {
    await page.close();
  }
}

test('webpack 5 bundles the worker and the wasm with no configuration', async () => {
  const { default: webpack } = await import('webpack');
  const dist = join(work, 'webpack-dist');
  const t0 = performance.now();
  const stats = await new Promise((resolve, reject) =>
    webpack(
      { mode: 'production', context: project, entry: './src/main.js', output: { path: dist, publicPath: 'auto' } },
      (err, s) => (err ? reject(err) : resolve(s)),
    ),
  );
  assert.ok(!stats.hasErrors(), stats.toString('errors-only'));
  // The Node-only code (platform.js, spawn.js) imports `node:` modules at run time through a
  // name webpack is told to ignore: nothing to resolve, no "critical dependency" warning.
  const warnings = stats.toJson({ all: false, warnings: true }).warnings.map((w) => w.message);
  assert.deepEqual(
    warnings.filter((w) => /node:|Critical dependency|worker_threads/.test(w)),
    [],
  );
  writeFileSync(join(dist, 'index.html'), '<!doctype html><meta charset="utf-8"><script src="./main.js"></script>\n');
  const emitted = readdirSync(dist);
  assert.ok(
    emitted.some((f) => f.endsWith('.wasm')),
    `no .wasm emitted: ${emitted}`,
  );
  console.log(`webpack ${webpack.version}: ${(performance.now() - t0).toFixed(0)} ms, emitted ${emitted.join(', ')}`);
  browser ??= await openBrowser({ extraMounts: { '/webpack/': dist, '/vite/': join(work, 'vite-dist') } });
  const out = await runBundledPage('/webpack/index.html');
  assert.deepEqual(out, { results: [16], said: 'hello from the guest' });
});

test('Vite (production build) bundles the worker and the wasm with no configuration', async () => {
  const { build, createLogger, version } = await import('vite');
  const dist = join(work, 'vite-dist');
  const t0 = performance.now();
  const warned = [];
  const logger = createLogger('warn');
  logger.warn = (message) => warned.push(message);
  logger.warnOnce = (message) => warned.push(message);
  await build({
    root: project,
    base: './',
    logLevel: 'warn',
    customLogger: logger,
    configFile: false,
    build: { outDir: dist, emptyOutDir: true },
  });
  // Nothing of Node's was resolved or stubbed for the browser ("externalized for browser
  // compatibility"): the `node:` imports are left to run time, where a browser never reaches them.
  assert.deepEqual(
    warned.filter((w) => /node:|externalized|worker_threads|dynamic import/i.test(w)),
    [],
  );
  const emitted = readdirSync(join(dist, 'assets'));
  for (const f of emitted.filter((f) => f.endsWith('.js'))) {
    assert.ok(!readFileSync(join(dist, 'assets', f), 'utf8').includes('__vite-browser-external'), f);
  }
  assert.ok(
    emitted.some((f) => f.endsWith('.wasm')),
    `no .wasm emitted: ${emitted}`,
  );
  console.log(`vite ${version}: ${(performance.now() - t0).toFixed(0)} ms, emitted ${emitted.join(', ')}`);
  browser ??= await openBrowser({ extraMounts: { '/webpack/': join(work, 'webpack-dist'), '/vite/': dist } });
  const out = await runBundledPage('/vite/index.html');
  assert.deepEqual(out, { results: [16], said: 'hello from the guest' });
});
