// Checks the import graph of the npm package's TypeScript (crate/js/*.ts): no cycles —
// `import type` and re-exports count, a cycle is a cycle — and the leaves stay leaves:
// `types.ts` and `constants.ts` import no file of the package (only `import type` from the
// generated `./nestbox.js`, which is wasm-pack's output, not ours). Dependency-free.
//
//   node scripts/check-ts-imports.mjs
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'crate/js');
/** Files that must not import any package file (values or types). */
const LEAVES = ['types.ts', 'constants.ts'];
/** The generated wasm-bindgen glue (pkg/nestbox.js): outside the graph. */
const GENERATED = 'nestbox.ts';

/** Comments removed (kept line breaks), so a commented-out import is not an edge. */
function stripComments(source) {
  let out = '';
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      while (i < source.length && source[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      i += 2;
      while (i < source.length && !(source[i] === '*' && source[i + 1] === '/')) {
        if (source[i] === '\n') out += '\n';
        i++;
      }
      i += 2;
    } else if (c === "'" || c === '"' || c === '`') {
      // Strings are copied whole: a '//' inside one is not a comment.
      const quote = c;
      let j = i + 1;
      while (j < source.length && source[j] !== quote) j += source[j] === '\\' ? 2 : 1;
      out += source.slice(i, j + 1);
      i = j + 1;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/**
 * Every relative module a file names: `import … from './x.js'` (also `import type`, over
 * several lines), `import './x.js'`, `export … from './x.js'`, and `import('./x.js')`
 * (a dynamic import, or `typeof import('./x.js')` in a type).
 */
function importsOf(source) {
  const code = stripComments(source);
  const found = [];
  const patterns = [
    /\b(?:import|export)\s+(?:type\s+)?[^;'"`]*?\bfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const m of code.matchAll(pattern)) found.push(m[1]);
  }
  return found.filter((s) => s.startsWith('./') || s.startsWith('../'));
}

const files = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
  .sort();
const problems = [];
/** file → the package files it imports */
const graph = new Map();
let edges = 0;
for (const file of files) {
  const targets = new Set();
  for (const specifier of importsOf(readFileSync(join(dir, file), 'utf8'))) {
    if (specifier.startsWith('../') || specifier.includes('/', 2)) {
      problems.push(`${file}: imports ${specifier}, outside crate/js`);
      continue;
    }
    const target = specifier.slice(2).replace(/\.js$/, '.ts');
    if (target === GENERATED) continue;
    if (!files.includes(target)) {
      problems.push(`${file}: imports ${specifier}, which is not a file of crate/js`);
      continue;
    }
    targets.add(target);
  }
  graph.set(file, [...targets].sort());
  edges += targets.size;
}

for (const leaf of LEAVES) {
  const targets = graph.get(leaf);
  if (targets === undefined) problems.push(`${leaf} is missing`);
  else if (targets.length > 0) problems.push(`${leaf} must be a leaf but imports ${targets.join(', ')}`);
}

// Cycles: a depth-first search; each back edge closes one cycle, printed once (by its members).
const cycles = new Map();
const state = new Map(); // file → 'open' | 'done'
const stack = [];
function visit(file) {
  state.set(file, 'open');
  stack.push(file);
  for (const target of graph.get(file) ?? []) {
    if (state.get(target) === 'open') {
      const cycle = [...stack.slice(stack.indexOf(target)), target];
      const key = [...new Set(cycle)].sort().join(' ');
      if (!cycles.has(key)) cycles.set(key, cycle.join(' → '));
    } else if (!state.has(target)) {
      visit(target);
    }
  }
  stack.pop();
  state.set(file, 'done');
}
for (const file of files) if (!state.has(file)) visit(file);
for (const cycle of cycles.values()) problems.push(`import cycle: ${cycle}`);

if (problems.length > 0) {
  for (const p of problems) console.error(`check-ts-imports: ${p}`);
  process.exit(1);
}
console.log(`check-ts-imports: ${files.length} files, ${edges} imports, no cycles; ${LEAVES.join(' and ')} are leaves`);
