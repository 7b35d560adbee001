// The browser tests' harness: compiles the WAT fixtures (npm `wabt`), serves pkg/, the
// fixtures and the test pages from a tiny static server on 127.0.0.1 (a random free port),
// and drives Debian's Chromium with playwright-core (never a downloaded browser).
//
// Each test file calls `openBrowser()` once (before) and `close()` once (after); its tests
// run code in the page with `page.evaluate`, where `window.nb` is the package
// (`/pkg/index.js`), `window.fx` the fixtures ({url, integrity} by name) and
// `window.caught(promise)` turns a rejection into a plain description of the error.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';
import { chromium } from 'playwright-core';
import { launch } from './webdriver.mjs';

/**
 * Which browser the tests run in: `NESTBOX_BROWSER=chromium` (the default, through
 * playwright-core), `firefox` or `webkit` (over WebDriver, `webdriver.mjs`; run-browsers.mjs).
 */
export const BROWSER = process.env.NESTBOX_BROWSER ?? 'chromium';
if (!['chromium', 'firefox', 'webkit'].includes(BROWSER)) throw new Error(`NESTBOX_BROWSER=${BROWSER}: not a browser`);

/**
 * For a test of `using` syntax: skipped with the reason where the engine cannot parse it
 * (WebKitGTK 2.4x); returns true then.
 */
export async function skipWithoutUsing(t, page) {
  const has = await page.evaluate(() => {
    try {
      new Function('{ using x = null; }');
      return true;
    } catch {
      return false;
    }
  });
  if (!has) t.skip(`${BROWSER}: this engine has no \`using\` declarations (explicit resource management)`);
  return !has;
}

/**
 * For a test that needs something only Chromium (or playwright) has: in another browser it
 * is skipped with `reason` (listed in README.md) and this returns true.
 */
export function chromiumOnly(t, reason) {
  if (BROWSER === 'chromium') return false;
  t.skip(`${BROWSER}: ${reason}`);
  return true;
}

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps trying to reach Google's hosts,
// which this machine's closed network refuses.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const TYPES = {
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.wasm': 'application/wasm',
  '.html': 'text/html',
  '.json': 'application/json',
  '.ts': 'text/plain',
};

/** Every fixture compiled: name → {bytes, integrity, why}. The first line of each says why it exists. */
export async function compileFixtures() {
  const wabt = await wabtInit();
  const dir = join(here, 'fixtures');
  const out = {};
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.wat'))
    .sort()) {
    const source = readFileSync(join(dir, file), 'utf8');
    const why = source.split('\n', 1)[0];
    if (!why.startsWith(';;')) throw new Error(`${file}: the first line must be a ;; comment saying why it exists`);
    const module = wabt.parseWat(file, source);
    const { buffer } = module.toBinary({});
    module.destroy();
    const bytes = Buffer.from(buffer);
    const integrity = `sha256-${createHash('sha256').update(bytes).digest('base64')}`;
    out[file.replace(/\.wat$/, '')] = { bytes, integrity, why };
  }
  return out;
}

/**
 * A static server: `mounts` maps a URL prefix to a directory. `hits` counts the requests of
 * each path; `failures` maps a path to the answers its next requests get instead
 * (`{ status, type, body }`, used up one by one).
 */
function serve(mounts, fixtures, hits, failures) {
  const manifest = Object.fromEntries(
    Object.entries(fixtures).map(([name, f]) => [name, { url: `/fixtures/${name}.wasm`, integrity: f.integrity }]),
  );
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const send = (status, type, body) => {
      // CORS: the same files are also a second origin (http://localhost:port) for policy tests.
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'access-control-allow-origin': '*' });
      res.end(body);
    };
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const failure = failures.get(path)?.shift();
    if (failure)
      return send(failure.status, failure.type ?? 'text/plain', failure.body ?? `failing on purpose: ${path}`);
    if (path === '/fixtures/manifest.json') return send(200, TYPES['.json'], JSON.stringify(manifest));
    const fixture = /^\/fixtures\/([a-z0-9_]+)\.wasm$/.exec(path);
    if (fixture && fixtures[fixture[1]]) return send(200, TYPES['.wasm'], fixtures[fixture[1]].bytes);
    for (const [prefix, dir] of Object.entries(mounts)) {
      if (!path.startsWith(prefix)) continue;
      const file = normalize(join(dir, path.slice(prefix.length)));
      if (!file.startsWith(dir + sep)) break; // no escaping the mount
      try {
        if (!statSync(file).isFile()) break;
      } catch {
        break;
      }
      return send(200, TYPES[extname(file)] ?? 'application/octet-stream', readFileSync(file));
    }
    return send(404, 'text/plain', `not found: ${path}`);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/**
 * Starts the server and Chromium and opens the test page. `extraMounts`: more URL prefixes
 * to serve (e.g. an unpacked tarball); `extraArgs`: more Chromium flags (e.g.
 * `--js-flags=--expose-gc`). The result's `otherBase` is the same server as a second origin
 * (`http://localhost:port`).
 */
export async function openBrowser({ extraMounts = {}, extraArgs = [] } = {}) {
  const fixtures = await compileFixtures();
  const hits = new Map();
  const failures = new Map();
  const server = await serve(
    { '/pkg/': join(root, 'pkg'), '/tests/': join(here, 'pages'), ...extraMounts },
    fixtures,
    hits,
    failures,
  );
  const base = `http://127.0.0.1:${server.address().port}`;
  /** How many requests the server answered for `path` so far. */
  const served = (path) => hits.get(path) ?? 0;
  /** The next request of `path` gets `answer` (`{ status, type?, body? }`) instead of the file. */
  const failNext = (path, answer) => failures.set(path, [...(failures.get(path) ?? []), answer]);
  if (BROWSER !== 'chromium') {
    const b = await launch(BROWSER);
    try {
      await b.page.goto(`${base}/tests/index.html`);
      await b.page.waitForFunction(() => window.ready === true || window.loadError !== undefined, null, {
        timeout: 20_000,
      });
      const loadError = await b.page.evaluate(() => window.loadError);
      if (loadError) throw new Error(`test page failed to load: ${loadError}\n${b.log.join('\n')}`);
    } catch (e) {
      await b.close();
      server.close();
      throw e;
    }
    return {
      page: b.page,
      base,
      otherBase: `http://localhost:${server.address().port}`,
      fixtures,
      served,
      failNext,
      log: b.log,
      async close() {
        await b.close();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  }
  const userDataDir = mkdtempSync(join(tmpdir(), 'nestbox-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const log = [];
  page.on('console', (m) => log.push(`[console.${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[pageerror] ${e.message}`));
  await page.goto(`${base}/tests/index.html`);
  await page.waitForFunction(() => window.ready === true || window.loadError !== undefined, null, { timeout: 20_000 });
  const loadError = await page.evaluate(() => window.loadError);
  if (loadError) throw new Error(`test page failed to load: ${loadError}\n${log.join('\n')}`);
  return {
    page,
    base,
    otherBase: `http://localhost:${server.address().port}`,
    fixtures,
    served,
    failNext,
    /** What the page logged (printed by tests when something fails). */
    log,
    async close() {
      await context.close();
      await new Promise((resolve) => server.close(resolve));
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
