// The WASI cases of tests/wasi/programs.json as the browser tests need them: where the built
// guests are, each case as a spec the page can run (`specOf`), and the expected-output rules
// of tests/wasi/README.md (`check`, `firstMismatch`). Used by wasi.test.mjs,
// native_wasi.test.mjs and native_differential.test.mjs. `$WASI_GUESTS_DIR` overrides where the
// built guests are (the manifest's guests_dir).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
export const wasiDir = join(root, 'tests', 'wasi');
export const manifest = JSON.parse(readFileSync(join(wasiDir, 'programs.json'), 'utf8'));
export const guestsDir = process.env.WASI_GUESTS_DIR ?? join(root, manifest.guests_dir);

// ---- the manifest, as the page needs it ----

/** `{url, integrity}` of a built guest; fails the test when it was not built. */
export function guest(lang, program) {
  const file = join(guestsDir, lang, `${program}.wasm`);
  assert.ok(existsSync(file), `${file} is missing: run \`make guests\` (or set WASI_GUESTS_DIR)`);
  const integrity = `sha256-${createHash('sha256').update(readFileSync(file)).digest('base64')}`;
  return { url: `/guests/${lang}/${program}.wasm`, integrity };
}

/** A fixture directory as a runWasi tree: files base64-encoded, every directory `null`. */
export function treeOf(dir, prefix = '', out = {}) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    const rel = `${prefix}${name}`;
    if (statSync(path).isDirectory()) {
      out[rel] = null;
      treeOf(path, `${rel}/`, out);
    } else {
      out[rel] = readFileSync(path).toString('base64');
    }
  }
  return out;
}

const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

/** Everything the page needs to run one case in one language. */
export function specOf(c, lang) {
  let stdin = null;
  if (c.stdin?.file) stdin = { url: `/wasi/${c.stdin.file}` };
  else if (c.stdin?.text !== undefined) stdin = { text: c.stdin.text };
  else if (c.stdin?.repeat !== undefined) stdin = { text: c.stdin.repeat.repeat(c.stdin.times) };
  return {
    ...guest(lang, c.program),
    args: [c.argv0, ...c.args],
    env: c.env,
    stdin,
    preopens: c.preopens.map((p) => ({
      guestPath: p.guest,
      readOnly: p.readonly,
      files: p.fixture ? treeOf(join(wasiDir, p.fixture)) : {},
    })),
    limits: Object.fromEntries(Object.entries(c.limits ?? {}).map(([k, v]) => [camel(k), v])),
    // As strings: a nanosecond timestamp is past 2^53 (BigInt in the page).
    deterministic: c.deterministic && {
      seed: String(c.deterministic.seed),
      startTimeNs: String(c.deterministic.start_time_ns),
    },
    timeoutMs: c.timeout_ms ?? 30_000,
    count: c.runs?.count ?? 1,
  };
}

// ---- expected output: the rules of tests/wasi/README.md (as node-runner.mjs applies them) ----
//   {int} an integer   {hex} lower-case hex digits   {*} anything on one line   {A|B} one of them

function lineRegex(line) {
  const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  let src = '';
  let last = 0;
  for (const m of line.matchAll(/\{([^{}]*)\}/g)) {
    src += escape(line.slice(last, m.index));
    const p = m[1];
    if (p === 'int') src += '-?[0-9]+';
    else if (p === 'hex') src += '[0-9a-f]+';
    else if (p === '*') src += '.*';
    else if (p.includes('|')) src += `(?:${p.split('|').map(escape).join('|')})`;
    else src += escape(m[0]);
    last = m.index + m[0].length;
  }
  return new RegExp(`^${src}${escape(line.slice(last))}$`, 's');
}

/** Null when `actual` matches the expected file's text, else where the first line differs. */
export function firstMismatch(expected, actual) {
  const want = expected.split('\n');
  const got = (actual ?? '').split('\n');
  for (let i = 0; i < Math.max(want.length, got.length); i++) {
    if (want[i] === undefined || got[i] === undefined || !lineRegex(want[i]).test(got[i])) {
      return `line ${i + 1}: got ${JSON.stringify(got[i] ?? '<end>')}, expected ${JSON.stringify(want[i] ?? '<end>')}`;
    }
  }
  return null;
}

/** The output_cap program's stdout: line i is i zero-padded to 63 digits, then "\n". */
export function generatedLines(lines) {
  let out = '';
  for (let i = 0; i < lines; i++) out += `${String(i).padStart(63, '0')}\n`;
  return out;
}

/** Asserts `run` is what case `c` expects in `lang`; `what` (e.g. the engine) prefixes each message. */
export function check(c, lang, run, what = '') {
  const at = what ? `${what}: ` : '';
  const e = c.expect;
  if (e.error) {
    assert.equal(run.error, e.error, `${at}expected ${e.error}, got ${JSON.stringify(run).slice(0, 300)}`);
  } else {
    assert.equal(run.error, undefined, `${at}${run.error}: ${run.message}`);
    assert.equal(run.exitCode, e.exit_code, `${at}exit code`);
  }
  const stdoutFile = e.stdout_by_language?.[lang] ?? e.stdout;
  if (stdoutFile) {
    const diff = firstMismatch(readFileSync(join(wasiDir, stdoutFile), 'utf8'), run.stdout);
    assert.equal(diff, null, `${at}stdout ${diff}`);
  }
  if (e.stderr) {
    const diff = firstMismatch(readFileSync(join(wasiDir, e.stderr), 'utf8'), run.stderr);
    assert.equal(diff, null, `${at}stderr ${diff}`);
  }
  if (e.stdout_generated) {
    const g = e.stdout_generated;
    const full = generatedLines(g.lines_of_64_bytes);
    if (g.cut_at_most_bytes !== undefined) {
      assert.ok(run.stdout.length <= g.cut_at_most_bytes, `${at}stdout ${run.stdout.length} bytes`);
      assert.ok(full.startsWith(run.stdout), `${at}stdout is a prefix of the generated lines`);
    } else {
      assert.equal(run.stdout, full, `${at}generated stdout`);
    }
  }
}
