// The browser tests in Firefox ESR and WebKitGTK: the part of playwright-core's Page API the
// tests use (goto, evaluate with an argument, waitForFunction, context().newPage(), close),
// over W3C WebDriver with npm selenium-webdriver. Firefox runs through geckodriver (a
// crates.io crate, `scripts/setup.sh browsers`), headless with a fresh profile; WebKitGTK
// through Debian's WebKitWebDriver (which needs a display: run-browsers.mjs uses xvfb-run).
//
// Values cross as tagged JSON (`encode`/`decode`, the same code in node and in the page), so
// what playwright keeps survives here too: undefined, NaN, ±Infinity, -0, bigint, Date,
// RegExp, Error, typed arrays, Map and Set.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Builder } from 'selenium-webdriver';
import firefox from 'selenium-webdriver/firefox.js';

function encode(v, seen = new Set()) {
  if (v === undefined || typeof v === 'function' || typeof v === 'symbol') return { u: 1 };
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return { n: 'NaN' };
    if (v === Infinity) return { n: 'Infinity' };
    if (v === -Infinity) return { n: '-Infinity' };
    if (Object.is(v, -0)) return { n: '-0' };
    return { v };
  }
  if (typeof v === 'bigint') return { b: String(v) };
  if (v === null || typeof v !== 'object') return { v };
  if (seen.has(v)) return { u: 1 };
  seen.add(v);
  try {
    if (v instanceof Date) return { d: v.toISOString() };
    if (v instanceof RegExp) return { r: [v.source, v.flags] };
    if (v instanceof Error) return { e: { name: v.name, message: v.message, stack: v.stack } };
    if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return { ta: [v.constructor.name, Array.from(v, String)] };
    if (v instanceof ArrayBuffer) return { ta: ['Uint8Array', Array.from(new Uint8Array(v), String)] };
    if (Array.isArray(v)) return { a: v.map((x) => encode(x, seen)) };
    if (v instanceof Map) return { m: [...v].map(([k, x]) => [encode(k, seen), encode(x, seen)]) };
    if (v instanceof Set) return { s: [...v].map((x) => encode(x, seen)) };
    const o = {};
    for (const k of Object.keys(v)) o[k] = encode(v[k], seen);
    return { o };
  } finally {
    seen.delete(v);
  }
}

function decode(t) {
  if ('v' in t) return t.v;
  if ('u' in t) return undefined;
  if ('n' in t) return t.n === '-0' ? -0 : Number(t.n);
  if ('b' in t) return BigInt(t.b);
  if ('d' in t) return new Date(t.d);
  if ('r' in t) return new RegExp(t.r[0], t.r[1]);
  if ('e' in t) return Object.assign(new Error(t.e.message), { name: t.e.name, stack: t.e.stack });
  if ('ta' in t) {
    const C = globalThis[t.ta[0]];
    return C.from(t.ta[1], (x) => (t.ta[0].startsWith('Big') ? BigInt(x) : Number(x)));
  }
  if ('a' in t) return t.a.map(decode);
  if ('m' in t) return new Map(t.m.map(([k, x]) => [decode(k), decode(x)]));
  if ('s' in t) return new Set(t.s.map(decode));
  const o = {};
  for (const k of Object.keys(t.o)) o[k] = decode(t.o[k]);
  return o;
}

// The evaluation itself, compiled in the page's own realm (below): values it makes — a
// Uint8Array, an Error — are the page's, so `instanceof` in the package sees them as a
// page script's would. (Firefox runs WebDriver scripts in a sandbox whose globals are not
// the page's; an indirect eval of the sandbox would make sandbox objects.)
const PAGE_RUN = `async (src, isFn, argJson) => {
  const encode = ${encode.toString()};
  const decode = ${decode.toString()};
  try {
    const f = (0, eval)('(' + src + ')');
    const value = isFn ? await f(decode(JSON.parse(argJson))) : await f;
    return JSON.stringify({ ok: encode(value) });
  } catch (e) {
    return JSON.stringify({ error: String((e && e.stack) || e), message: String((e && e.message) || e) });
  }
}`;

// Runs in the page (executeAsyncScript): arguments are [source, isFunction, encoded arg, done].
const RUNNER = `
  const [src, isFn, arg, done] = arguments;
  const page = window.wrappedJSObject ?? window;
  if (!page.__nbLog) {
    page.eval(${JSON.stringify(`(() => {
      window.__nbLog = [];
      for (const type of ['log', 'info', 'warn', 'error', 'debug']) {
        const orig = console[type].bind(console);
        console[type] = (...a) => { window.__nbLog.push('[console.' + type + '] ' + a.map(String).join(' ')); orig(...a); };
      }
      window.addEventListener('error', (e) => window.__nbLog.push('[pageerror] ' + e.message));
      window.addEventListener('unhandledrejection', (e) => window.__nbLog.push('[pageerror] ' + String(e.reason)));
      window.__nbRun = ${PAGE_RUN};
    })()`)});
  }
  const take = () => JSON.parse(page.eval('JSON.stringify(window.__nbLog.splice(0))'));
  Promise.resolve(page.__nbRun(src, isFn, JSON.stringify(arg))).then(
    (json) => done({ ...JSON.parse(json), log: take() }),
    (e) => done({ error: String(e), message: String(e), log: take() }),
  );
`;

async function freePort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

async function waitForServer(url, child, what) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${url}/status`);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not start within 20 s`);
}

export const GECKODRIVER = process.env.GECKODRIVER ?? join(homedir(), '.cargo', 'bin', 'geckodriver');
export const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';
export const WEBKITWEBDRIVER = process.env.WEBKITWEBDRIVER ?? '/usr/bin/WebKitWebDriver';
export const MINIBROWSER = process.env.MINIBROWSER ?? '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';

/** Firefox ESR (headless, a fresh profile, its network services off) or WebKitGTK. */
async function startDriver(name) {
  const profile = mkdtempSync(join(tmpdir(), `nestbox-${name}-`));
  let driver;
  let child;
  if (name === 'firefox') {
    const opts = new firefox.Options()
      .setBinary(FIREFOX)
      .addArguments('-headless', '-profile', profile)
      .setPreference('app.update.enabled', false)
      .setPreference('browser.shell.checkDefaultBrowser', false)
      .setPreference('datareporting.policy.dataSubmissionEnabled', false)
      .setPreference('toolkit.telemetry.enabled', false)
      .setPreference('network.captive-portal-service.enabled', false)
      .setPreference('network.connectivity-service.enabled', false)
      .setPreference('browser.safebrowsing.malware.enabled', false)
      .setPreference('browser.safebrowsing.phishing.enabled', false)
      .setPreference('extensions.update.enabled', false)
      .setPreference('services.settings.server', 'http://127.0.0.1:9/')
      .setPreference('dom.workers.maxPerDomain', 512);
    const service = new firefox.ServiceBuilder(GECKODRIVER);
    driver = await new Builder().forBrowser('firefox').setFirefoxOptions(opts).setFirefoxService(service).build();
  } else if (name === 'webkit') {
    if (!existsSync(WEBKITWEBDRIVER)) throw new Error(`${WEBKITWEBDRIVER} not found (scripts/setup.sh browsers)`);
    const port = await freePort();
    child = spawn(WEBKITWEBDRIVER, [`--port=${port}`], { stdio: 'ignore' });
    const url = `http://127.0.0.1:${port}`;
    await waitForServer(url, child, 'WebKitWebDriver');
    driver = await new Builder()
      .usingServer(url)
      .withCapabilities({
        browserName: 'MiniBrowser',
        'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] },
      })
      .build();
  } else {
    throw new Error(`unknown browser ${name}`);
  }
  await driver.manage().setTimeouts({ script: 600_000, pageLoad: 60_000 });
  return {
    driver,
    async quit() {
      try {
        await driver.quit();
      } finally {
        child?.kill();
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}

class Page {
  constructor(session, handle, log) {
    this.session = session;
    this.handle = handle;
    this.log = log;
  }
  async focus() {
    if (this.session.current !== this.handle) {
      await this.session.driver.switchTo().window(this.handle);
      this.session.current = this.handle;
    }
  }
  async goto(url) {
    await this.focus();
    await this.session.driver.get(url);
  }
  async evaluate(fn, arg) {
    await this.focus();
    const isFn = typeof fn === 'function';
    const out = await this.session.driver.executeAsyncScript(RUNNER, isFn ? fn.toString() : fn, isFn, encode(arg));
    this.log.push(...(out.log ?? []));
    if ('error' in out) throw new Error(`page.evaluate: ${out.message}\n${out.error}`);
    return decode(out.ok);
  }
  async waitForFunction(fn, arg, { timeout = 30_000, polling = 100 } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const v = await this.evaluate(fn, arg);
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`page.waitForFunction: timeout ${timeout} ms exceeded`);
      await new Promise((r) => setTimeout(r, typeof polling === 'number' ? polling : 100));
    }
  }
  context() {
    return {
      newPage: async () => {
        const { driver } = this.session;
        await driver.switchTo().newWindow('tab');
        const handle = await driver.getWindowHandle();
        this.session.current = handle;
        return new Page(this.session, handle, this.log);
      },
    };
  }
  async close() {
    const { driver, main } = this.session;
    await this.focus();
    await driver.close();
    await driver.switchTo().window(main);
    this.session.current = main;
  }
}

/** A browser over WebDriver; `page` has the Page methods above, `log` what the page logged. */
export async function launch(name) {
  const { driver, quit } = await startDriver(name);
  const main = await driver.getWindowHandle();
  const session = { driver, main, current: main };
  const log = [];
  return { page: new Page(session, main, log), log, close: quit };
}
