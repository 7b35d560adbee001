// `make demo`: serves the playground (www/dist, built by `make www`) on 127.0.0.1, opens it
// once in headless Chromium and prints what the page showed — status lines, the guest's log,
// the result and its metrics, the plot's summary — then clicks through a cancellation, the
// structured-error buttons, an example WASI program and the audit log's Verify, and prints
// those too. (tests/browser/playground.test.mjs is the thorough, asserted version.) Then it keeps serving until Ctrl-C, for a real browser.
//
//   node scripts/demo-headless.mjs [--once] [--port N]
//
// --once (or DEMO_ONCE=1): exit after the headless run (CI smoke). The exit status is 1 when
// the page did not show `done: count_primes(N) = …` or a button did not end as expected.
// The port defaults to 8080 (or $PORT), falling back to a free one.
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './chromium.mjs';
import { describeListening, portFrom, serve } from './serve.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'www/dist');
const args = process.argv.slice(2);
const once = args.includes('--once') || ['1', 'true', 'yes'].includes(process.env.DEMO_ONCE ?? '');
const say = (tag, text) => console.log(`${tag.padEnd(8)} ${text}`);

try {
  statSync(join(dist, 'index.html'));
} catch {
  console.error('demo: www/dist/index.html not found (run `make www` first)');
  process.exit(1);
}

const listening = await serve({ mounts: { '/': dist }, port: portFrom(args) });
say('demo', describeListening(listening, 'serving www/dist'));

let failed = false;
const chromium = await launchChromium();
try {
  const { page } = chromium;
  say('demo', `headless Chromium ${chromium.version} opens ${listening.url}`);
  // Every line the page appends to #status or #log, in the order it appended them (a
  // MutationObserver installed before the page's own script runs).
  const statusLines = [];
  let wake = () => {};
  await page.exposeFunction('__demoLine', (kind, line) => {
    say(kind === 'log' ? 'guest' : 'status', line);
    if (kind === 'status') statusLines.push(line);
    wake();
  });
  await page.addInitScript(() => {
    new MutationObserver((records) => {
      for (const record of records) {
        const kind = record.target.id === 'terminal' ? 'log' : record.target.id;
        if (kind !== 'status' && kind !== 'log') continue;
        for (const node of record.addedNodes) {
          for (const line of node.textContent.split('\n').filter(Boolean)) window.__demoLine(kind, line);
        }
      }
    }).observe(document, { childList: true, subtree: true });
  });

  /** Waits for the next status line (after `from`) that starts with one of `prefixes`. */
  const nextStatus = async (prefixes, from, timeoutMs = 60_000) => {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const line = statusLines.slice(from).find((l) => prefixes.some((p) => l.startsWith(p)));
      if (line !== undefined) return line;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no status line starting with ${prefixes.join(' or ')} in ${timeoutMs} ms`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        wake = () => (clearTimeout(timer), resolve());
      });
    }
  };
  /** Clicks `selector`, then waits for the status line that ends what the click started. */
  const clickUntil = async (selector, prefixes) => {
    const from = statusLines.length;
    await page.click(selector);
    return nextStatus(prefixes, from);
  };
  const ENDS = ['done:', 'error:', 'unexpected:'];

  const text = (id) => page.evaluate((id) => document.getElementById(id).textContent.trim(), id);
  const metrics = () =>
    page.evaluate(() =>
      [...document.querySelectorAll('#metrics th')]
        .map((th) => `${th.textContent} ${th.nextElementSibling.textContent}`)
        .join(' · '),
    );
  const expect = (ok, what) => {
    if (!ok) {
      failed = true;
      say('FAILED', what);
    }
  };

  // 1. The run the page starts on load.
  await page.goto(listening.url);
  const done = await nextStatus(['done: count_primes', 'error:', 'unexpected:'], 0);
  expect(/^done: count_primes\(\d+\) = \d+$/.test(done), `the page did not finish its first run: ${done}`);
  say('result', await text('result'));
  say('metrics', await metrics());
  say('plot', await text('plot-summary'));

  // 2. An infinite loop, cancelled by the Cancel button (an AbortController on the page).
  say('click', 'Run spin(), then Cancel 300 ms later');
  await page.selectOption('#export', 'spin');
  await page.fill('#call-args', '');
  await page.click('#run');
  await page.waitForTimeout(300);
  const cancelled = await clickUntil('#cancel', ENDS);
  say('metrics', await metrics());
  expect(cancelled.includes('→ CANCELLED:'), `spin() was not cancelled: ${cancelled}`);

  // 3. The structured-error buttons.
  for (const [id, label, code] of [
    ['tampered', 'Load a tampered module', 'INTEGRITY_MISMATCH'],
    ['fuel', 'count_primes(200000) on 10M fuel', 'FUEL_EXHAUSTED'],
    ['ungranted', 'Instantiate the demo without env.log', 'IMPORT_NOT_GRANTED'],
  ]) {
    say('click', label);
    const line = await clickUntil(`#${id}`, ENDS);
    expect(line.includes(`→ ${code}:`), `${label}: expected ${code}, got: ${line}`);
  }

  // 4. The page still works after all that.
  say('click', 'Run count_primes(1000)');
  await page.selectOption('#export', 'count_primes');
  await page.fill('#call-args', '1000');
  const again = await clickUntil('#run', ENDS);
  expect(again === 'done: count_primes(1000) = 168', `second run: ${again}`);
  say('metrics', await metrics());

  // 5. A real WASI program (C, from tests/wasi/), with the stdin the example fills in.
  say('click', 'Load example c-stdio, Run');
  await page.selectOption('#example', 'c-stdio');
  const loadedStdio = await clickUntil('#load-example', ENDS);
  expect(loadedStdio.startsWith('done: loaded c-stdio.wasm'), `loading c-stdio: ${loadedStdio}`);
  const wasi = await clickUntil('#run', ENDS);
  expect(wasi === 'done: wasi stdio: exit code 0', `c-stdio: ${wasi}`);
  say('metrics', await metrics());

  // 6. The session's audit log, verified.
  const verified = await clickUntil('#verify', ENDS);
  expect(/^done: audit verified, \d+ entries$/.test(verified), `verify: ${verified}`);

  for (const message of chromium.messages) say('page', message);
} catch (error) {
  failed = true;
  say('FAILED', error.message);
  for (const message of chromium.messages) say('page', message);
} finally {
  await chromium.close();
}

if (once || failed) {
  listening.server.close();
  say('demo', failed ? 'the headless run FAILED' : 'headless run ok (--once: not serving on)');
  process.exit(failed ? 1 : 0);
}
say('demo', `open ${listening.url} in a browser; serving until Ctrl-C`);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    listening.server.close();
    process.exit(0);
  });
}
