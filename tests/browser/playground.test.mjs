// The playground (www/, built into www/dist by `make www`) used as a user would, in headless
// Chromium: the first run on load, a module from the file input (its SHA-256 checked against
// node:crypto), a WASI run with stdin, stdout arriving while an endless guest still runs, the
// plot of fuel and memory over the run, Cancel, structured errors, a URL fetched and trusted,
// drag-and-drop, the keyboard path to the file picker, the audit log verified — and the trace
// view. Each state is written as a screenshot to target/playground-screenshots/ (not committed).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test as nodeTest } from 'node:test';
import { fileURLToPath } from 'node:url';
import { launchChromium } from '../../scripts/chromium.mjs';
import { serve } from '../../scripts/serve.mjs';
import { BROWSER } from './harness.mjs';

// The playground is used as a user would, through playwright's input API (clicks, typing,
// file choosers, drag-and-drop, screenshots): Chromium only; in another browser each test is
// skipped with this reason.
const ONLY_CHROMIUM =
  'the playground tests drive the page with playwright-only APIs (input, file chooser, screenshots)';
const test =
  BROWSER === 'chromium'
    ? nodeTest
    : (name, ...rest) => nodeTest(name, { skip: `${BROWSER}: ${ONLY_CHROMIUM}` }, () => {});

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = join(root, 'www/dist');
const shots = join(root, 'target/playground-screenshots');
const STDIO = join(root, 'target/wasi-guests/c/stdio.wasm');
const ARGS_ENV = join(root, 'target/wasi-guests/c/args_env.wasm');

let chromium;
let listening;
let page;
const choosers = [];
const sri = (bytes) => `sha256-${createHash('sha256').update(bytes).digest('base64')}`;

before(async () => {
  if (BROWSER !== 'chromium') return;
  statSync(join(dist, 'index.html')); // `make www` first
  mkdirSync(shots, { recursive: true });
  listening = await serve({ mounts: { '/': dist }, port: 0 });
  chromium = await launchChromium();
  page = chromium.page;
  // Listening from the start turns on Playwright's file-chooser interception before any
  // keypress could open one (enabling it is a round trip to the browser).
  page.on('filechooser', (chooser) => choosers.push(chooser));
  await page.setViewportSize({ width: 1100, height: 900 });
  // The page ships a strict CSP: anything it blocks is recorded, and must be nothing.
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.cspViolations.push(`${e.violatedDirective}: ${e.blockedURI}`),
    );
  });
  await page.goto(listening.url);
});
after(async () => {
  if (process.exitCode) console.log(chromium?.messages.join('\n'));
  await chromium?.close();
  listening?.server.close();
});

const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
const text = (selector) => page.locator(selector).innerText();
const statusLines = async () => (await page.locator('#status').textContent()).split('\n').filter(Boolean);

/** Runs `action`, then waits for the first status line after it that matches `pattern`. */
async function until(pattern, action, timeout = 60_000) {
  const from = (await statusLines()).length;
  await action?.();
  const handle = await page.waitForFunction(
    ({ from, source }) => {
      const lines = document.getElementById('status').textContent.split('\n').filter(Boolean).slice(from);
      return lines.find((l) => new RegExp(source).test(l) || /^(error|unexpected):/.test(l));
    },
    { from, source: pattern.source },
    { timeout },
  );
  const line = await handle.jsonValue();
  assert.match(line, pattern);
  return line;
}

/** How many pixels of the plot are drawn (not transparent). */
const plotPixels = () =>
  page.evaluate(() => {
    const canvas = document.getElementById('plot');
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n++;
    return n;
  });

test('on load: the demo guest runs, with its result, metrics, log and a plot of the run', async () => {
  await until(/^done: count_primes\(200000\) = 17984$/);
  assert.equal(await text('#result'), 'count_primes(200000) = 17984');
  assert.match(await text('#terminal'), /counting primes/);
  assert.match(await text('#m-fuel'), /^[\d,]+$/);
  const samples = Number(await page.locator('#plot').getAttribute('data-samples'));
  assert.ok(samples > 5, `${samples} progress samples`);
  assert.match(await text('#plot-summary'), /samples \(one per slice\).*fuel consumed up to/);
  assert.ok((await plotPixels()) > 2_000, 'the plot is drawn');
  assert.match(await text('#module-info'), /imports:\n {2}env\.log \(function\)/);
  await shot('01-loaded-demo-run');
});

test('a module from the file input: its SHA-256, imports and exports; a WASI run with stdin', async () => {
  const bytes = readFileSync(STDIO);
  await until(/^done: loaded stdio\.wasm/, () => page.setInputFiles('#file', STDIO));
  const info = await text('#module-info');
  assert.ok(info.includes(`SHA-256 ${sri(bytes)}`), info);
  assert.match(info, /wasi_snapshot_preview1\.fd_write \(function\)/);
  assert.match(info, /exports:[\s\S]*_start \(function\)/);
  assert.equal(await page.isChecked('#mode-wasi'), true, 'a WASI module opens the WASI form');
  assert.equal(await page.isVisible('#wasi-stdin'), true);
  assert.equal(await page.isVisible('#export'), false, 'the export form is hidden in WASI mode');
  await page.fill('#wasi-stdin', 'typed by the test\nsecond line\n');
  await until(/^done: wasi stdio: exit code 0$/, () => page.click('#run'));
  const terminal = await text('#terminal');
  assert.match(terminal, /TYPED BY THE TEST\nSECOND LINE\n/, 'stdio echoes stdin upper-cased');
  assert.equal((await page.locator('#terminal .stderr').count()) > 0, true, 'stderr is shown apart');
  assert.match(await text('#result'), /exit code 0/);
  await shot('02-file-input-wasi-run');
});

test('an endless guest: stdout arrives while it runs, the plot grows, Cancel ends it', async () => {
  await page.selectOption('#example', 'ticker');
  await until(/^done: loaded ticker\.wasm/, () => page.click('#load-example'));
  const from = (await statusLines()).length;
  await page.click('#run');
  // Lines are on the terminal while the run is still going (Cancel enabled, no end line).
  await page.waitForFunction(() => /tick 12\n/.test(document.getElementById('terminal').textContent), null, {
    timeout: 60_000,
  });
  assert.equal(await page.isEnabled('#cancel'), true, 'still running');
  const ended = (await statusLines()).slice(from).filter((l) => /^(done|error):/.test(l));
  assert.deepEqual(ended, [], 'no end of the run yet');
  const during = Number(await page.locator('#plot').getAttribute('data-samples'));
  assert.ok(during > 0, 'progress samples arrive during the run');
  await shot('03-streaming-stdout');
  const line = await until(/→ CANCELLED:/, () => page.click('#cancel'));
  assert.match(line, /^error: wasi ticker → CANCELLED:/);
  assert.match(await text('#error'), /^CANCELLED: /);
  const summary = await text('#plot-summary');
  // The ticker grows its memory by a page every 8 ticks: the curve climbs past one page.
  const memory = Number(/guest memory \(bytes\) up to ([\d,]+)/.exec(summary)?.[1].replaceAll(',', ''));
  assert.ok(memory > 65_536, summary);
  assert.ok((await plotPixels()) > 2_000);
  await shot('04-cancelled-with-plot');
});

test('capabilities and limits: an ungranted import and a fuel limit end with their structured errors', async () => {
  await page.selectOption('#example', 'demo');
  await until(/^done: loaded demo\.wasm/, () => page.click('#load-example'));
  await page.uncheck('#cap-log');
  await until(/→ IMPORT_NOT_GRANTED:/, () => page.click('#run'));
  assert.match(await text('#error'), /^IMPORT_NOT_GRANTED: [\s\S]*env\.log/);
  await page.check('#cap-log');
  await page.fill('#lim-fuel', '2000000');
  await until(/→ FUEL_EXHAUSTED:/, () => page.click('#run'));
  assert.match(await text('#error'), /^FUEL_EXHAUSTED: [\s\S]*"limit": 2000000/);
  await shot('05-structured-error');
  await page.fill('#lim-fuel', '5000000000');
  await until(/→ INTEGRITY_MISMATCH:/, () => page.click('#tampered'));
});

test('a URL is fetched and hashed, and loaded only once its digest is trusted', async () => {
  const bytes = readFileSync(STDIO);
  await page.fill('#url', `${listening.url}examples/c-stdio.wasm`);
  await until(/^done: fetched .*not loaded until trusted/, () => page.click('#fetch'));
  assert.ok((await text('#url-digest')).includes(sri(bytes)));
  assert.equal(await page.isEnabled('#trust'), true);
  await until(/^done: loaded c-stdio\.wasm/, () => page.click('#trust'));
  assert.ok((await text('#module-info')).includes(sri(bytes)));
  // The load is logged with the origin the bytes were fetched from.
  assert.ok((await text('#audit')).includes(new URL(listening.url).origin), 'the origin is in the audit log');
});

test('drag-and-drop loads a module, and the drop zone opens the picker from the keyboard', async () => {
  const bytes = readFileSync(ARGS_ENV);
  const transfer = await page.evaluateHandle((b64) => {
    const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([data], 'args_env.wasm', { type: 'application/wasm' }));
    return dt;
  }, bytes.toString('base64'));
  await until(/^done: loaded args_env\.wasm/, () => page.dispatchEvent('#drop', 'drop', { dataTransfer: transfer }));
  assert.ok((await text('#module-info')).includes(sri(bytes)));
  await page.fill('#wasi-args', 'args_env\nfrom the test');
  await page.fill('#wasi-env', 'GREETING=hi');
  await until(/^done: wasi args_env from the test: exit code 0$/, () => page.click('#run'));
  const terminal = await text('#terminal');
  assert.match(terminal, /argv\[1\]=<from the test>/);
  assert.match(terminal, /env\[0\]=<GREETING>=<hi>/);
  await page.focus('#drop');
  assert.equal(choosers.length, 0);
  await page.keyboard.press('Enter');
  for (let i = 0; i < 100 && choosers.length === 0; i++) await page.waitForTimeout(50);
  assert.equal(choosers.length, 1, 'Enter on the drop zone opens the file picker');
  assert.equal(choosers[0].isMultiple(), false);
});

test('the trace view: the call and its host calls as a timeline, a WASI run with its WASI calls', async () => {
  await page.selectOption('#example', 'demo');
  await until(/^done: loaded demo\.wasm/, () => page.click('#load-example'));
  await page.fill('#call-args', '20000');
  await page.check('#trace');
  await until(/^done: count_primes\(20000\) = 2262$/, () => page.click('#run'));
  const bars = await page.locator('#trace-view .span-bar').allInnerTexts();
  assert.match(bars[0], /^call count_primes \d+\.\d\d ms$/, bars.join('\n'));
  assert.ok(
    bars.slice(1).every((b) => /^· capability env\.log /.test(b)),
    `one child per host call: ${bars.join('\n')}`,
  );
  assert.match(
    await page.locator('#trace-view [role=list]').getAttribute('aria-label'),
    /^trace [0-9a-f]{32}: \d+ spans$/,
  );
  await shot('06-trace');
  // A WASI program's run: `_start` and a span per WASI call it made.
  const { examples } = JSON.parse(readFileSync(join(dist, 'examples.json'), 'utf8'));
  await page.selectOption('#example', examples[0].id);
  await until(new RegExp(`^done: loaded ${examples[0].id}\\.wasm`), () => page.click('#load-example'));
  await until(/^done: wasi .*: exit code \d+$/, () => page.click('#run'));
  const wasiBars = await page.locator('#trace-view .span-bar').allInnerTexts();
  assert.match(wasiBars[0], /^call _start /);
  assert.ok(
    wasiBars.some((b) => /^· wasi (fd_write|args_get|environ_sizes_get|proc_exit) /.test(b)),
    wasiBars.join('\n'),
  );
  await page.uncheck('#trace');
});

test('every example WASI program of www/examples.json loads with its digest and runs to exit code 0', async () => {
  const { examples } = JSON.parse(readFileSync(join(dist, 'examples.json'), 'utf8'));
  assert.ok(examples.length >= 4);
  for (const example of examples) {
    assert.equal(example.integrity, sri(readFileSync(join(root, example.source))), example.id);
    await page.selectOption('#example', example.id);
    await until(new RegExp(`^done: loaded ${example.id}\\.wasm`), () => page.click('#load-example'));
    const line = await until(/^done: wasi .*: exit code \d+$/, () => page.click('#run'));
    assert.match(line, /: exit code 0$/, `${example.id}: ${await text('#terminal')}`);
    assert.notEqual((await text('#terminal')).trim(), '', `${example.id} wrote something`);
  }
});

test('the audit log of the session verifies', async () => {
  const line = await until(/^done: audit verified, \d+ entries$/, () => page.click('#verify'));
  const entries = Number(/(\d+) entries/.exec(line)[1]);
  assert.ok(entries >= 10, `${entries} entries`);
  assert.equal(await page.locator('#audit tbody tr').count(), entries);
  assert.match(await text('#verify-result'), /^verified: \d+ entries, head [0-9a-f]{16}…$/);
  const outcomes = await page.locator('#audit tbody td:nth-child(3)').allInnerTexts();
  for (const code of ['ok', 'CANCELLED', 'FUEL_EXHAUSTED', 'INTEGRITY_MISMATCH']) {
    assert.ok(outcomes.includes(code), `${code} in the log`);
  }
  await page.locator('#verify-result').scrollIntoViewIfNeeded();
  await shot('07-audit-verified');
  assert.deepEqual(
    chromium.messages.filter((m) => !m.startsWith('console.warning')),
    [],
    'no console errors or uncaught exceptions',
  );
  assert.match(
    await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content'),
    /^default-src 'none'; script-src 'self' 'wasm-unsafe-eval';/,
  );
  assert.deepEqual(await page.evaluate(() => window.cspViolations), [], 'nothing was blocked by the CSP');
});
