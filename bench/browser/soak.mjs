// `make soak`: a soak benchmark, not a timed test. Rounds of SANDBOXES sandboxes (each its own
// dedicated worker and its own capability) × CALLS capability calls each, all concurrent,
// disposed and recreated every round; the page's and the workers' memory is printed per round
// and must come back to where the first round left it:
//
//   page + workers after the last round ≤ after the first × 1.5 + 16 MiB
//   Chromium's resident set after the last round ≤ after the first × 1.25
//
// Memory is `performance.measureUserAgentSpecificMemory()` in a cross-origin-isolated page
// (served with COOP/COEP; Chromium started with --enable-blink-features=ForceEagerMeasureMemory
// so it answers at once instead of after the next natural GC, and --js-flags=--expose-gc),
// split into the page (Window) and its dedicated workers; `performance.memory.usedJSHeapSize`
// (the page's JS heap) and the resident set of Chromium's processes (from /proc) are printed
// beside it.
//
//   node bench/browser/soak.mjs [--sandboxes N] [--calls N] [--rounds N]
//
// tests/browser/soak.test.mjs runs a smaller one with the same bound.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';
import { launchChromium } from '../../scripts/chromium.mjs';
import { serve } from '../../scripts/serve.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const MiB = 1 << 20;

/** The bound the last round's page + worker memory (measureUserAgentSpecificMemory) must stay within. */
export const bound = (first) => first * 1.5 + 16 * MiB;

/** The bound of Chromium's resident set after the last round (its allocators keep some back). */
export const rssBound = (first) => first * 1.25;

/** Resident set (bytes) of the Chromium process whose command line names `userDataDir`, and its descendants. */
function chromiumRss(userDataDir) {
  const procs = new Map();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
      procs.set(Number(pid), { ppid, cmdline, rss });
    } catch {
      // gone meanwhile
    }
  }
  const roots = [...procs].filter(
    ([, p]) => p.cmdline.includes(userDataDir) && !procs.get(p.ppid)?.cmdline.includes(userDataDir),
  );
  const seen = new Set();
  const stack = roots.map(([pid]) => pid);
  let total = 0;
  while (stack.length > 0) {
    const pid = stack.pop();
    if (seen.has(pid)) continue;
    seen.add(pid);
    total += procs.get(pid)?.rss ?? 0;
    for (const [child, p] of procs) if (p.ppid === pid) stack.push(child);
  }
  return total;
}

async function guest() {
  const wabt = await wabtInit();
  const module = wabt.parseWat('host_loop', readFileSync(join(root, 'tests/browser/fixtures/host_loop.wat'), 'utf8'));
  const bytes = Buffer.from(module.toBinary({}).buffer);
  module.destroy();
  return { bytes, integrity: `sha256-${createHash('sha256').update(bytes).digest('base64')}` };
}

/**
 * Runs the soak; `onRound` sees each round's numbers as they come. Resolves to
 * `{ chromium, baseline, rounds }` (bytes; each round: `after` the round, `during` it).
 */
export async function runSoak({ sandboxes, calls, rounds, onRound = () => undefined }) {
  const { bytes, integrity } = await guest();
  const listening = await serve({
    mounts: { '/pkg/': join(root, 'pkg'), '/bench/': here },
    files: { '/guests/host_loop.wasm': { body: bytes, type: 'application/wasm' } },
    port: 0,
    headers: { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' },
  });
  const chromium = await launchChromium({
    extraArgs: ['--enable-blink-features=ForceEagerMeasureMemory', '--js-flags=--expose-gc'],
  });
  try {
    const { page } = chromium;
    await page.goto(`${listening.url}bench/soak.html`);
    await page.waitForFunction(() => window.ready === true || window.loadError !== undefined, null, {
      timeout: 20_000,
    });
    const loadError = await page.evaluate(() => window.loadError);
    if (loadError) throw new Error(`soak page failed to load: ${loadError}`);
    const measure = async () => ({
      ...(await page.evaluate(() => window.soak.measure(), null, { timeout: 120_000 })),
      rss: chromiumRss(chromium.userDataDir),
    });
    const baseline = await measure();
    const out = [];
    for (let i = 0; i < rounds; i++) {
      const r = await page.evaluate(
        ([g, o]) => window.soak.start(g, o),
        [
          { url: '/guests/host_loop.wasm', integrity },
          { sandboxes, calls },
        ],
        { timeout: 600_000 },
      );
      const during = await measure();
      await page.evaluate(() => window.soak.finish());
      const after = await measure();
      const result = { ...r, during, after };
      out.push(result);
      onRound(i, result);
    }
    if (chromium.messages.length > 0) throw new Error(`the page reported errors:\n${chromium.messages.join('\n')}`);
    return { chromium: chromium.version, baseline, rounds: out };
  } finally {
    await chromium.close();
    listening.server.close();
  }
}

/** What must hold: each measure's last round within {@link bound} of its first; every call right. */
export function problems({ rounds }) {
  const found = [];
  const first = rounds[0];
  const last = rounds[rounds.length - 1];
  for (const r of rounds) {
    if (r.wrong > 0) found.push(`${r.wrong} calls gave a wrong result`);
    if (r.restarts > 0) found.push(`${r.restarts} workers were replaced`);
  }
  const pairs = [['rss', first.after.rss, last.after.rss, rssBound]];
  if (first.after.uasm && last.after.uasm) {
    pairs.push([
      'page + workers (measureUserAgentSpecificMemory)',
      first.after.uasm.bytes,
      last.after.uasm.bytes,
      bound,
    ]);
  } else {
    pairs.push(['page JS heap (performance.memory)', first.after.jsHeapUsed, last.after.jsHeapUsed, bound]);
  }
  for (const [what, a, b, limit] of pairs) {
    if (!(b <= limit(a)))
      found.push(`${what}: ${mib(b)} after the last round, over ${mib(limit(a))} (first ${mib(a)})`);
  }
  return found;
}

export const mib = (n) => (n === undefined ? '—' : `${(n / MiB).toFixed(1)} MiB`);

function argument(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  const raw = i >= 0 ? process.argv[i + 1] : process.env[`SOAK_${name.toUpperCase()}`];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${raw}`);
  return n;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const sandboxes = argument('sandboxes', 100);
  const calls = argument('calls', 1_000);
  const rounds = argument('rounds', 5);
  const started = performance.now();
  console.log(
    `soak: ${rounds} rounds × ${sandboxes} sandboxes (one dedicated worker and one capability each) × ${calls.toLocaleString('en')} capability calls, ${availableParallelism()} CPUs`,
  );
  const cols = (...xs) => console.log(xs.map((x, i) => String(x).padStart(i === 0 ? 8 : 13)).join(' '));
  cols(
    'round',
    'create ms',
    'calls ms',
    'calls/s',
    'page MiB',
    'workers MiB',
    'js heap MiB',
    'rss MiB',
    'during: wrk',
    'during: rss',
  );
  const m = (n) => (n === undefined ? '—' : (n / MiB).toFixed(1));
  const result = await runSoak({
    sandboxes,
    calls,
    rounds,
    onRound: (i, r) => {
      cols(
        i + 1,
        r.createMs.toFixed(0),
        r.callMs.toFixed(0),
        Math.round((sandboxes * calls) / (r.callMs / 1000)).toLocaleString('en'),
        m(r.after.uasm?.page),
        m(r.after.uasm?.workers),
        m(r.after.jsHeapUsed),
        m(r.after.rss),
        m(r.during?.uasm?.workers),
        m(r.during?.rss),
      );
    },
  });
  const b = result.baseline;
  console.log(
    `baseline before round 1: page ${m(b.uasm?.page)} MiB, workers ${m(b.uasm?.workers)} MiB, js heap ${m(b.jsHeapUsed)} MiB, rss ${m(b.rss)} MiB; Chromium ${result.chromium}, crossOriginIsolated ${b.crossOriginIsolated}${b.uasmError ? `, measureUserAgentSpecificMemory: ${b.uasmError}` : ''}`,
  );
  const found = problems(result);
  console.log(
    `bound: after the last round, page + workers ≤ the first round's × 1.5 + 16 MiB and rss ≤ the first's × 1.25; ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
  if (found.length > 0) {
    console.log(`FAILED:\n  ${found.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log('ok: memory came back within the bound every round');
  }
}
