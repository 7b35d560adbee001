// Builds the npm package in pkg/ after `make build` (wasm-pack): compiles crate/js/*.ts next to
// wasm-pack's output, then writes pkg/package.json with our own exports map and an explicit
// "files" list — wasm-pack's generated list only knows its own files and silently drops
// hand-written JS (wasm-pack issues #557, #1206) — and checks that every relative import of
// every shipped module resolves to a shipped file.
//
//   node scripts/build-package.mjs
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = join(root, 'pkg');
const fail = (message) => {
  console.error(`build-package: ${message}`);
  process.exit(1);
};

for (const f of ['nestbox.js', 'nestbox.d.ts', 'nestbox_bg.wasm']) {
  if (!existsSync(join(pkg, f))) fail(`pkg/${f} is missing: run \`make build\` first`);
}

// Outputs of an earlier compile that no longer has a source (a renamed .ts) must not ship.
const sources = new Set(
  readdirSync(join(root, 'crate/js'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => f.slice(0, -3)),
);
for (const f of readdirSync(pkg)) {
  const m = /^(.*)\.(js|d\.ts)$/.exec(f);
  if (m && !m[1].startsWith('nestbox') && !sources.has(m[1])) rmSync(join(pkg, f));
}

execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], {
  stdio: 'inherit',
});

const cargo = readFileSync(join(root, 'crate/Cargo.toml'), 'utf8');
const section = /^\[package\]\s*$([\s\S]*?)(?=^\[)/m.exec(cargo)?.[1] ?? '';
const version = /^version\s*=\s*"([^"]+)"/m.exec(section)?.[1];
const description = /^description\s*=\s*"([^"]+)"/m.exec(section)?.[1];
if (!version) fail('no version in crate/Cargo.toml [package]');
const workspace = readFileSync(join(root, 'Cargo.toml'), 'utf8');
const license = /^license\s*=\s*"([^"]+)"/m.exec(workspace)?.[1];
const repository = /^repository\s*=\s*"([^"]+)"/m.exec(workspace)?.[1];

// The worker script as one module: a new worker then loads worker.js and the wasm-bindgen
// glue (./nestbox.js, kept its own import) instead of eleven modules one import level at a
// time — about 30 ms of every worker's start in Chromium. The other files stay as they are
// (the page and nestbox/worker import them).
{
  const { rolldown } = await import('rolldown');
  const bundle = await rolldown({
    input: join(pkg, 'worker.js'),
    external: ['./nestbox.js', /^node:/],
    platform: 'browser',
    logLevel: 'warn',
  });
  const { output } = await bundle.generate({ format: 'esm' });
  await bundle.close();
  if (output.length !== 1) fail(`the worker bundle is ${output.length} files, expected one`);
  writeFileSync(join(pkg, 'worker.js'), output[0].code);
}

copyFileSync(join(root, 'README.md'), join(pkg, 'README.md'));

// Everything the package is made of, listed one by one.
const files = readdirSync(pkg)
  .filter((f) => /\.(js|d\.ts|wasm)$/.test(f) || f === 'README.md')
  .sort();
for (const required of [
  'index.js',
  'index.d.ts',
  'local.js',
  'local.d.ts',
  'worker.js',
  'nestbox.js',
  'nestbox_bg.wasm',
]) {
  if (!files.includes(required)) fail(`pkg/${required} was not built`);
}

// Every relative import (static, dynamic, or `new URL(…, import.meta.url)`) must be shipped.
const shipped = new Set(files);
for (const f of files.filter((f) => f.endsWith('.js') || f.endsWith('.d.ts'))) {
  // Comments (TSDoc examples) are not imports.
  const text = readFileSync(join(pkg, f), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');
  const specifiers = [
    ...text.matchAll(/\bfrom\s+['"](\.[^'"]+)['"]/g),
    ...text.matchAll(/\bimport\s*\(\s*['"](\.[^'"]+)['"]\s*\)/g),
    ...text.matchAll(/\bimport\s+['"](\.[^'"]+)['"]/g),
    ...text.matchAll(/new URL\(\s*['"](\.?\.?\/?[^'"]+)['"]\s*,\s*import\.meta\.url/g),
  ].map((m) => m[1]);
  for (const spec of specifiers) {
    let target = posix.normalize(posix.join(posix.dirname(f), spec));
    if (f.endsWith('.d.ts') && target.endsWith('.js')) target = target.replace(/\.js$/, '.d.ts');
    if (!shipped.has(target)) fail(`${f} refers to ${spec}, which is not in the package`);
  }
}

const manifest = {
  name: 'nestbox',
  version,
  description,
  license,
  repository: repository && { type: 'git', url: repository },
  type: 'module',
  main: './index.js',
  module: './index.js',
  types: './index.d.ts',
  exports: {
    '.': { types: './index.d.ts', import: './index.js', default: './index.js' },
    './worker': { types: './local.d.ts', import: './local.js', default: './local.js' },
    './package.json': './package.json',
  },
  files,
  // Only the worker bootstrap does something when imported (it installs its message handler).
  sideEffects: ['./worker.js'],
  keywords: ['webassembly', 'wasm', 'sandbox', 'wasmi', 'worker', 'capabilities'],
};
writeFileSync(join(pkg, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
console.log(`pkg/package.json: nestbox ${version}, ${files.length} files`);
