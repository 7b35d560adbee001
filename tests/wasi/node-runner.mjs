#!/usr/bin/env node
// A second opinion: runs every built guest of programs.json under Node's own WASI
// (node:wasi, libuv's uvwasi) and compares stdout, stderr and the exit code with the expected
// files. Where node:wasi legitimately differs from what nestbox must do (no read-only
// preopens, no quotas, no output cap, no seeded random, ...) the case is listed in
// node-known-differences.json and explained in DIFFERENCES.md; any other mismatch fails.
//
//   node tests/wasi/node-runner.mjs [--guests DIR] [--lang rust,c,go] [--case NAME,...]
//                                   [--verbose] [--trace] [--json FILE]
//
// --verbose prints each run's result and output; --trace also counts the preview1 calls each
// guest made (NAME!ERRNO for failed ones).
//
// Each run gets a fresh temporary host directory holding a copy of its fixtures (the repo is
// never written) and, next to the preopened directories, the manifest's `outside` file that
// path-escape tests must not reach. The guest runs in a worker thread of a child node process
// (so a hung guest can be stopped), with stdin, stdout and stderr in files of that directory;
// the child reports the exit code, trap or timeout through a result file.
//
// Exit status: 0 when every run passed or differed only as listed; 1 otherwise.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');

// ---------------------------------------------------------------------------------------------
// child process: runs one guest in a worker thread, so a guest that never returns can be
// stopped (worker.terminate() interrupts wasm) and the result still reported.

function child(jobFile) {
  const job = JSON.parse(fs.readFileSync(jobFile, 'utf8'));
  // fds are per process, so the worker can hand these to uvwasi as the guest's 0, 1, 2.
  job.fds = [fs.openSync(job.stdio[0], 'r'), fs.openSync(job.stdio[1], 'w'), fs.openSync(job.stdio[2], 'w')];
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: job });
  const report = (result) => {
    fs.writeFileSync(job.resultFile, JSON.stringify(result));
    process.exit(0);
  };
  const timer = setTimeout(() => {
    worker.terminate();
    report({ timeout: job.timeoutMs });
  }, job.timeoutMs);
  worker.on('message', (result) => {
    clearTimeout(timer);
    report(result);
  });
  worker.on('error', (err) => {
    clearTimeout(timer);
    report({ trap: String(err?.message ?? err) });
  });
}

// worker thread: the guest under node:wasi, its stdio the files the child opened.
async function guest(job) {
  const { WASI } = await import('node:wasi');
  let result;
  try {
    const wasi = new WASI({
      version: 'preview1',
      args: job.args,
      env: Object.fromEntries(job.env),
      preopens: job.preopens,
      returnOnExit: true,
      stdin: job.fds[0],
      stdout: job.fds[1],
      stderr: job.fds[2],
    });
    const module = await WebAssembly.compile(fs.readFileSync(job.wasm));
    const imports = wasi.getImportObject();
    const calls = {};
    if (job.trace) {
      // Count every preview1 call (--trace): which imports a language's std really uses.
      const p1 = imports.wasi_snapshot_preview1;
      for (const [name, fn] of Object.entries(p1)) {
        p1[name] = (...args) => {
          const errno = fn(...args);
          const k = errno === 0 ? name : `${name}!${errno}`;
          calls[k] = (calls[k] ?? 0) + 1;
          return errno;
        };
      }
    }
    const instance = await WebAssembly.instantiate(module, imports);
    try {
      result = { exitCode: wasi.start(instance) };
    } finally {
      if (job.trace) result = { ...result, calls };
    }
  } catch (err) {
    result = { trap: String(err?.message ?? err) };
  }
  parentPort.postMessage(result);
}

// ---------------------------------------------------------------------------------------------
// parent: cases × languages

function main(argv) {
  const opts = { guests: null, langs: null, cases: null, verbose: false, trace: false, json: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--guests') opts.guests = argv[++i];
    else if (a === '--lang') opts.langs = argv[++i].split(',');
    else if (a === '--case') opts.cases = argv[++i].split(',');
    else if (a === '--verbose') opts.verbose = true;
    else if (a === '--trace') opts.verbose = opts.trace = true;
    else if (a === '--json') opts.json = argv[++i];
    else {
      console.error(`node-runner: unknown argument ${a}`);
      return 2;
    }
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(HERE, 'programs.json'), 'utf8'));
  const known = JSON.parse(fs.readFileSync(path.join(HERE, 'node-known-differences.json'), 'utf8')).differences;
  const guests = path.resolve(ROOT, opts.guests ?? manifest.guests_dir);

  const rows = [];
  for (const c of manifest.cases) {
    if (opts.cases && !opts.cases.includes(c.name)) continue;
    for (const lang of c.languages) {
      if (opts.langs && !opts.langs.includes(lang)) continue;
      const wasm = path.join(guests, lang, `${c.program}.wasm`);
      const key = `${c.name}/${lang}`;
      if (!fs.existsSync(wasm)) {
        rows.push({ key, status: 'FAIL', detail: `${path.relative(ROOT, wasm)} not built (tests/wasi/build.sh)` });
        continue;
      }
      const started = Date.now();
      const problems = runCase(manifest, c, lang, wasm, opts);
      const ms = Date.now() - started;
      const entry = known[key] ?? known[`${c.name}/*`];
      let status;
      if (problems.length === 0) status = entry && !entry.flaky ? 'FIXED?' : 'pass';
      else status = entry ? 'known' : 'FAIL';
      rows.push({ key, status, ms, detail: problems.join('; '), known: entry?.why });
    }
  }

  rows.push(...coverage(manifest));
  printTable(rows);
  const count = (s) => rows.filter((r) => r.status === s).length;
  const failed = count('FAIL') + count('FIXED?');
  console.log(`\nnode ${process.version}, guests from ${path.relative(ROOT, guests) || '.'}`);
  console.log(`${count('pass')} passed, ${failed} failed, ${count('known')} skipped`);
  if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(rows, null, 2) + '\n');
  return failed === 0 ? 0 : 1;
}

/** Every program source has a case in its language, and every case's program has a source. */
function coverage(manifest) {
  const sources = {
    rust: fs.readdirSync(path.join(HERE, 'rust/src/bin')).filter((f) => f.endsWith('.rs')).map((f) => f.slice(0, -3)),
    c: fs.readdirSync(path.join(HERE, 'c')).filter((f) => f.endsWith('.c')).map((f) => f.slice(0, -2)),
    go: fs.readdirSync(path.join(HERE, 'go')).filter((d) => fs.existsSync(path.join(HERE, 'go', d, 'main.go'))),
  };
  const rows = [];
  for (const [lang, programs] of Object.entries(sources)) {
    for (const p of programs) {
      if (!manifest.cases.some((c) => c.program === p && c.languages.includes(lang))) {
        rows.push({ key: `(coverage)/${lang}`, status: 'FAIL', detail: `program ${p} has no case in programs.json` });
      }
    }
  }
  for (const c of manifest.cases) {
    for (const lang of c.languages) {
      if (!sources[lang]?.includes(c.program)) {
        rows.push({ key: `${c.name}/${lang}`, status: 'FAIL', detail: `no ${lang} source for program ${c.program}` });
      }
    }
  }
  return rows;
}

function printTable(rows) {
  const w = Math.max(...rows.map((r) => r.key.length), 4);
  console.log(`${'case/lang'.padEnd(w)}  status  ms     detail`);
  console.log(`${'-'.repeat(w)}  ------  -----  ------`);
  for (const r of rows) {
    const detail = r.status === 'known' ? `${r.known} [${r.detail}]` : r.detail;
    console.log(`${r.key.padEnd(w)}  ${r.status.padEnd(6)}  ${String(r.ms ?? '').padStart(5)}  ${detail}`);
  }
}

/** Runs one case in one language (as many times as `runs.count` says); returns the mismatches. */
function runCase(manifest, c, lang, wasm, opts) {
  const problems = [];
  const count = c.runs?.count ?? 1;
  const stdouts = [];
  for (let i = 0; i < count; i++) {
    const run = runOnce(manifest, c, wasm, opts.trace);
    stdouts.push(run.stdout);
    if (opts.verbose) {
      console.log(`--- ${c.name}/${lang} run ${i + 1}: ${JSON.stringify(run.result)}`);
      process.stdout.write(run.stdout.subarray(0, 4096).toString('utf8'));
      process.stdout.write(run.stderr.subarray(0, 4096).toString('utf8'));
    }
    if (i === 0) problems.push(...check(c, lang, run));
  }
  if (c.deterministic) problems.push('no deterministic mode');
  if (count > 1) {
    const same = stdouts.every((s) => s.equals(stdouts[0]));
    if (c.runs.stdout === 'equal' && !same) problems.push(`stdout differs between ${count} runs`);
    if (c.runs.stdout === 'differ' && same) problems.push(`stdout equal in ${count} runs`);
  }
  return problems;
}

function runOnce(manifest, c, wasm, trace) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nestbox-node-wasi-'));
  try {
    fs.writeFileSync(path.join(tmp, manifest.outside_file.name), manifest.outside_file.text);
    const preopens = {};
    c.preopens.forEach((p, i) => {
      const host = path.join(tmp, `preopen${i}`);
      if (p.fixture) fs.cpSync(path.join(HERE, p.fixture), host, { recursive: true, verbatimSymlinks: true });
      else fs.mkdirSync(host);
      preopens[p.guest] = host;
    });
    const resultFile = path.join(tmp, 'result.json');
    const jobFile = path.join(tmp, 'job.json');
    const stdio = ['stdin', 'stdout', 'stderr'].map((name) => path.join(tmp, `${name}.bin`));
    const timeoutMs = c.timeout_ms ?? 30_000;
    fs.writeFileSync(stdio[0], stdinBytes(c.stdin));
    fs.writeFileSync(jobFile, JSON.stringify({
      wasm, args: [c.argv0, ...c.args], env: c.env, preopens, stdio, resultFile, timeoutMs, trace,
    }));
    // The guest's stdio are regular files the child opens (see DIFFERENCES.md, "stdio"): with
    // pipes, Go's runtime makes stdio non-blocking and then gets EAGAIN from uvwasi whenever
    // a pipe is full or empty, so results would depend on timing.
    const proc = spawnSync(process.execPath, ['--no-warnings', fileURLToPath(import.meta.url), '--child', jobFile], {
      stdio: ['ignore', 'pipe', 'pipe'], // node's own messages, if it crashes
      timeout: timeoutMs + 10_000,
      cwd: tmp,
      env: {}, // the guest sees only the manifest's env
    });
    let result;
    if (proc.error) result = { runnerError: String(proc.error.message) };
    else if (fs.existsSync(resultFile)) result = JSON.parse(fs.readFileSync(resultFile, 'utf8'));
    else {
      const said = String(proc.stderr ?? '').slice(0, 300);
      result = { runnerError: `child exited ${proc.status ?? proc.signal} without a result: ${said}` };
    }
    const read = (file) => (fs.existsSync(file) ? fs.readFileSync(file) : Buffer.alloc(0));
    return { result, stdout: read(stdio[1]), stderr: read(stdio[2]) };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function stdinBytes(stdin) {
  if (!stdin) return Buffer.alloc(0);
  if (stdin.file) return fs.readFileSync(path.join(HERE, stdin.file));
  if (stdin.text !== undefined) return Buffer.from(stdin.text, 'utf8');
  if (stdin.repeat !== undefined) return Buffer.from(stdin.repeat.repeat(stdin.times), 'utf8');
  throw new TypeError(`unknown stdin ${JSON.stringify(stdin)}`);
}

/** Compares one run with the case's expectation; returns the mismatches, each a short phrase. */
function check(c, lang, run) {
  const e = c.expect;
  const problems = [];
  const r = run.result;
  if (r.runnerError) return [`runner: ${r.runnerError}`];
  if (r.timeout) return [`timed out after ${r.timeout} ms`];
  if (e.error === 'TRAP') {
    // A wasm trap is node's own error, nestbox's TRAP.
    if (!r.trap) problems.push(`exit ${r.exitCode}, expected a trap`);
  } else if (e.error) {
    problems.push(r.trap ? `trap "${r.trap}", expected error ${e.error}` : `exit ${r.exitCode}, expected error ${e.error}`);
  } else if (r.trap) {
    problems.push(`trap "${r.trap}"`);
  } else if (r.exitCode !== e.exit_code) {
    problems.push(`exit ${r.exitCode}, expected ${e.exit_code}`);
  }
  const stdoutFile = e.stdout_by_language?.[lang] ?? e.stdout;
  if (stdoutFile) {
    const want = readExpected(stdoutFile);
    const diff = want === null ? `file ${stdoutFile} missing` : firstMismatch(want, run.stdout.toString('utf8'));
    if (diff) problems.push(`stdout ${diff}`);
  }
  if (e.stderr) {
    const want = readExpected(e.stderr);
    const diff = want === null ? `file ${e.stderr} missing` : firstMismatch(want, run.stderr.toString('utf8'));
    if (diff) problems.push(`stderr ${diff}`);
  }
  if (e.stdout_generated) {
    const g = e.stdout_generated;
    const full = generatedLines(g.lines_of_64_bytes);
    const out = run.stdout;
    if (g.cut_at_most_bytes !== undefined) {
      if (out.length > g.cut_at_most_bytes) problems.push(`stdout ${out.length} bytes, cap ${g.cut_at_most_bytes}`);
      if (!full.subarray(0, out.length).equals(out)) problems.push('stdout is not a prefix of the generated lines');
    } else if (!out.equals(full)) {
      problems.push(`stdout ${out.length} bytes (sha256 ${sha256(out)}), expected ${full.length}`);
    }
  }
  return problems;
}

function readExpected(file) {
  const p = path.join(HERE, file);
  return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : null;
}

/** The output_cap program's stdout: line i is i zero-padded to 63 digits, then "\n". */
function generatedLines(lines) {
  const buf = Buffer.alloc(lines * 64);
  for (let i = 0; i < lines; i++) buf.write(`${String(i).padStart(63, '0')}\n`, i * 64, 'latin1');
  return buf;
}

function sha256(buf) {
  return createHash('sha256').update(buf).digest('hex').slice(0, 16);
}

// ---------------------------------------------------------------------------------------------
// expected files: literal text with placeholders (README.md):
//   {int}   an integer          {hex}  lower-case hex digits       {*}  anything on one line
//   {A|B|C} one of the listed alternatives (literal text)

/** Null when `actual` matches the expected text, else where the first line differs. */
export function firstMismatch(expected, actual) {
  const wantLines = expected.split('\n');
  const gotLines = actual.split('\n');
  for (let i = 0; i < Math.max(wantLines.length, gotLines.length); i++) {
    const want = wantLines[i];
    const got = gotLines[i];
    if (want === undefined || got === undefined || !lineRegex(want).test(got)) {
      return `line ${i + 1}: got ${JSON.stringify(got ?? '<end>')}, expected ${JSON.stringify(want ?? '<end>')}`;
    }
  }
  return null;
}

const lineRegexCache = new Map();
function lineRegex(line) {
  let re = lineRegexCache.get(line);
  if (!re) {
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
      else src += escape(m[0]); // not a placeholder: literal braces
      last = m.index + m[0].length;
    }
    src += escape(line.slice(last));
    re = new RegExp(`^${src}$`, 's');
    lineRegexCache.set(line, re);
  }
  return re;
}

// ---------------------------------------------------------------------------------------------
// entry point (last, so every module-level binding above is initialised)

if (!isMainThread) {
  await guest(workerData);
} else if (process.argv[2] === '--child') {
  child(process.argv[3]);
} else {
  process.exitCode = main(process.argv.slice(2));
}
