#!/usr/bin/env node
// The Rust core's layers, enforced: every module of crate/src uses only modules of its own
// layer or of the layers below it, and no two modules use each other (directly or through
// others). `make lint` runs it; it exits 1 and prints what is wrong.
//
//   node scripts/check-rust-layers.mjs            check crate/src
//   node scripts/check-rust-layers.mjs --graph    also print the module graph
//
// A module is a top-level file (`audit.rs`) or directory (`wasi/`) of crate/src. A use is
// any `crate::name` path in code (comments and doc links are not uses), or a name that
// lib.rs re-exports from a module (`crate::Sandbox` is a use of `sandbox`).

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, dirname, basename } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bottom up. A module may use its own layer and the ones before it. */
export const RUST_LAYERS = [
  ['error', 'metrics', 'value'],
  ['integrity', 'limits', 'fuel', 'capability', 'memory', 'policy', 'audit', 'trace'],
  ['module', 'cache', 'native'],
  ['wasi', 'data', 'gojs'],
  ['instance'],
  ['sandbox'],
  ['bindings'],
];

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'crate', 'src');

/** Source without comments, strings and char literals (so `"crate::x"` in text is no use). */
export function stripRust(text) {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const two = text.slice(i, i + 2);
    if (two === '//') {
      const end = text.indexOf('\n', i);
      i = end === -1 ? text.length : end;
    } else if (two === '/*') {
      let depth = 1;
      i += 2;
      while (i < text.length && depth > 0) {
        if (text.startsWith('/*', i)) (depth++, (i += 2));
        else if (text.startsWith('*/', i)) (depth--, (i += 2));
        else i++;
      }
    } else if (/^r#*"/.test(text.slice(i, i + 8)) && !/\w/.test(text[i - 1] ?? '')) {
      const hashes = /^r(#*)"/.exec(text.slice(i))[1];
      const close = '"' + hashes;
      const end = text.indexOf(close, i + 2 + hashes.length);
      i = end === -1 ? text.length : end + close.length;
      out += '""';
    } else if (text[i] === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
      out += '""';
    } else if (text[i] === "'" && /^'(\\.|[^\\'])'/.test(text.slice(i, i + 4))) {
      i += text[i + 1] === '\\' ? 4 : 3;
      out += "' '";
    } else {
      out += text[i++];
    }
  }
  return out;
}

function rustFiles(path) {
  if (statSync(path).isDirectory()) return readdirSync(path).flatMap((f) => rustFiles(join(path, f)));
  return path.endsWith('.rs') ? [path] : [];
}

/** `pub use module::{A, B}` in lib.rs: re-exported name → module. */
function reexports(lib) {
  const names = new Map();
  for (const m of stripRust(lib).matchAll(/pub\s+use\s+(\w+)((?:::\w+)*)::(\{[^}]*\}|\w+)\s*;/g)) {
    const items = m[3].startsWith('{') ? m[3].slice(1, -1).split(',') : [m[3]];
    for (const item of items) {
      const name = item
        .trim()
        .split(/\s+as\s+/)
        .pop();
      if (name) names.set(name, m[1]);
    }
  }
  return names;
}

/** Every `crate::…` path of `code`, as the top-level module it names. */
function usesOf(code, modules, names) {
  const used = new Set();
  const add = (first) => {
    if (modules.has(first)) used.add(first);
    else if (names.has(first)) used.add(names.get(first));
  };
  for (const m of code.matchAll(/\bcrate::(\{[^;]*?\}|\w+)/g)) {
    if (!m[1].startsWith('{')) add(m[1]);
    else {
      // `use crate::{a::X, b, c::{D, E}}`: the first segment of each top-level item.
      let depth = 0;
      let item = '';
      for (const ch of m[1].slice(1, -1) + ',') {
        if (ch === '{') depth++;
        if (ch === '}') depth--;
        if (ch === ',' && depth === 0) {
          const first = item.trim().split('::')[0];
          if (first) add(first);
          item = '';
        } else item += ch;
      }
    }
  }
  return used;
}

export function checkRust(srcRoot = process.argv.find((a) => a.startsWith('--src='))?.slice(6) ?? root) {
  const layerOf = new Map(RUST_LAYERS.flatMap((layer, i) => layer.map((m) => [m, i])));
  const modules = new Map();
  for (const entry of readdirSync(srcRoot)) {
    if (entry === 'lib.rs') continue;
    const name = basename(entry, '.rs');
    modules.set(name, rustFiles(join(srcRoot, entry)));
  }
  const problems = [];
  for (const name of modules.keys()) {
    if (!layerOf.has(name)) problems.push(`crate/src/${name}: not in any layer of RUST_LAYERS`);
  }
  for (const name of layerOf.keys()) {
    if (!modules.has(name)) problems.push(`RUST_LAYERS names ${name}, which crate/src does not have`);
  }
  const names = reexports(readFileSync(join(srcRoot, 'lib.rs'), 'utf8'));
  const graph = new Map();
  for (const [name, files] of modules) {
    const deps = new Map();
    for (const file of files) {
      // Unit tests (`#[cfg(test)] mod tests`, last in a file) may use any layer.
      const code = stripRust(readFileSync(file, 'utf8')).split(/#\[cfg\(test\)\]\s*mod\s+tests\b/)[0];
      for (const dep of usesOf(code, modules, names)) {
        if (dep !== name && !deps.has(dep)) deps.set(dep, file.slice(srcRoot.length - 'crate/src'.length));
      }
    }
    graph.set(name, deps);
    for (const [dep, file] of deps) {
      if ((layerOf.get(dep) ?? -1) > (layerOf.get(name) ?? Infinity)) {
        problems.push(`${file}: ${name} uses ${dep}, a higher layer`);
      }
    }
  }
  for (const cycle of cycles(new Map([...graph].map(([n, d]) => [n, [...d.keys()]])))) {
    problems.push(`cycle: ${cycle.join(' -> ')}`);
  }
  return { modules: modules.size, edges: [...graph.values()].reduce((n, d) => n + d.size, 0), graph, problems };
}

/** Every elementary cycle found by a depth-first search (each reported once). */
export function cycles(graph) {
  const found = new Map();
  const state = new Map();
  const stack = [];
  const visit = (node) => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') {
        const cycle = stack.slice(stack.indexOf(next));
        const key = [...cycle].sort().join(',');
        if (!found.has(key)) found.set(key, [...cycle, next]);
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return [...found.values()];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { modules, edges, graph, problems } = checkRust();
  if (process.argv.includes('--graph')) {
    for (const [name, deps] of graph) console.log(`${name} -> ${[...deps.keys()].sort().join(', ')}`);
  }
  if (problems.length > 0) {
    for (const p of problems) console.error(`check-rust-layers: ${p}`);
    process.exit(1);
  }
  console.log(`check-rust-layers: ${modules} modules, ${edges} uses, ${RUST_LAYERS.length} layers, no cycle`);
}
