// `make size-breakdown`: where the bytes of nestbox's wasm are, by part.
//
//   node scripts/wasm-breakdown.mjs NAMES_WASM SHIPPED_WASM OUT_JSON
//
// NAMES_WASM is the core built with the `names` cargo profile (the release profile with its
// function names kept: the same code, never shipped), before wasm-bindgen; SHIPPED_WASM is
// pkg/nestbox_bg.wasm, whose raw and gzip -9 sizes head the JSON. Every function body of the
// code section is attributed to a part by its (demangled) name in the name section, and each
// data segment to "data". A part's gzip figure is gzip -9 of that part's bytes alone, so the
// figures add up to somewhat more than the whole file's gzip (which compresses across parts).
// wasm-bindgen's `__wbindgen_describe*` functions are not counted: it removes them.
import { readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const [namesPath, shippedPath, outPath] = process.argv.slice(2);
if (!namesPath || !shippedPath || !outPath) {
  console.error('usage: node scripts/wasm-breakdown.mjs NAMES_WASM SHIPPED_WASM OUT_JSON');
  process.exit(2);
}

/** The parts, first match wins: [label, test on the function's name]. */
const PARTS = [
  ['wasmi: translator (guest load)', (n) => /^<?wasmi::(engine::translator|module::)/.test(n)],
  ['wasmi: executor (guest run)', (n) => /^<?wasmi::engine::executor/.test(n)],
  ['wasmi: store, linker, instances', (n) => /^<?wasmi(_core|_collections)?(\[|::)/.test(n)],
  ['wasmi_ir (instruction encoding)', (n) => /^<?wasmi_ir(\[|::)/.test(n)],
  ['wasmparser (validation, parsing)', (n) => /^<?wasmparser(\[|::)/.test(n)],
  ['nestbox: bindings (JS conversion)', (n) => /^<?nestbox::bindings/.test(n)],
  ['nestbox: Go js/wasm membrane', (n) => /^<?nestbox::(gojs|instance::go)/.test(n)],
  ['nestbox: WASI', (n) => /^<?nestbox::wasi/.test(n)],
  ['nestbox: data ABI (Extism)', (n) => /^<?nestbox::data/.test(n)],
  ['nestbox: audit, policy, integrity', (n) => /^<?nestbox::(audit|policy|integrity)/.test(n)],
  ['nestbox: trace', (n) => /^<?nestbox::trace/.test(n)],
  ['nestbox: sandbox, instance, module…', (n) => /^<?nestbox(\[|::)/.test(n)],
  ['ed25519 (curve25519, sha512)', (n) => /^<?(ed25519|curve25519|sha2::sha512)/.test(n)],
  ['sha2 (SHA-256)', (n) => /^<?sha2(\[|::)/.test(n)],
  ['serde, serde_json', (n) => /^<?(serde|zmij|itoa|ryu)/.test(n)],
  ['wasm-bindgen, js-sys, web-sys', (n) => /^<?(wasm_bindgen|js_sys|web_sys|serde_wasm_bindgen|console_error)/.test(n)],
  ['alloc: BTreeMap', (n) => /^<?alloc(\[[0-9a-f]+\])?::collections::btree/.test(n)],
  [
    'core: fmt, panics, floats',
    (n) =>
      /^<?(core|std|alloc)(\[[0-9a-f]+\])?::(fmt|panic|panicking|num::flt2dec|num::bignum|result::unwrap_failed|option::expect_failed)/.test(
        n,
      ),
  ],
  ['core/alloc/std: drops, sort, closures…', (n) => /^<?(core|alloc|std|hashbrown|dlmalloc)/.test(n)],
];

/**
 * A Rust v0 symbol (`_RNv…`) as a `crate::module::…::item` path: its identifiers in order,
 * generic arguments and impl types included (enough to tell which crate and module a function
 * is in). Any other name is returned as it is.
 */
function pathOf(symbol) {
  if (symbol.startsWith('_ZN')) return legacyPathOf(symbol);
  if (!symbol.startsWith('_R')) return symbol;
  const idents = [];
  let i = 2;
  while (i < symbol.length) {
    const c = symbol[i];
    if (c >= '0' && c <= '9') {
      let n = 0;
      while (symbol[i] >= '0' && symbol[i] <= '9') n = n * 10 + Number(symbol[i++]);
      if (symbol[i] === '_') i++;
      idents.push(symbol.slice(i, i + n));
      i += n;
    } else if (c === 's' || c === 'B') {
      // A disambiguator or a back reference: base-62 digits up to `_`.
      i++;
      while (i < symbol.length && symbol[i] !== '_') i++;
      i++;
    } else i++;
  }
  return idents.join('::');
}

/** A legacy Rust symbol (`_ZN…E`) as a path, its trailing hash dropped. */
function legacyPathOf(symbol) {
  const idents = [];
  let i = 3;
  while (symbol[i] >= '0' && symbol[i] <= '9') {
    let n = 0;
    while (symbol[i] >= '0' && symbol[i] <= '9') n = n * 10 + Number(symbol[i++]);
    idents.push(symbol.slice(i, i + n));
    i += n;
  }
  if (/^h[0-9a-f]{16}$/.test(idents.at(-1) ?? '')) idents.pop();
  const unescape = (id) =>
    id
      .replace(/^_\$/, '$')
      .replaceAll('$LT$', '<')
      .replaceAll('$GT$', '>')
      .replaceAll('$u20$', ' ')
      .replaceAll('$C$', ',')
      .replaceAll('$RF$', '&')
      .replaceAll('..', '::');
  return idents.map(unescape).join('::');
}

function leb(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = bytes[at++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (b < 0x80) return [value, at];
  }
}

/** The module's sections as [id, name (custom ones), start, end]. */
function sections(bytes) {
  const out = [];
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at++];
    let size;
    [size, at] = leb(bytes, at);
    let name = '';
    if (id === 0) {
      const [len, p] = leb(bytes, at);
      name = new TextDecoder().decode(bytes.subarray(p, p + len));
    }
    out.push({ id, name, start: at, end: at + size });
    at += size;
  }
  return out;
}

const bytes = new Uint8Array(readFileSync(namesPath));
const all = sections(bytes);

// Imported functions come first in the function index space.
let imported = 0;
const importSection = all.find((s) => s.id === 2);
if (importSection) {
  let [count, at] = leb(bytes, importSection.start);
  for (let i = 0; i < count; i++) {
    for (let k = 0; k < 2; k++) {
      let len;
      [len, at] = leb(bytes, at);
      at += len;
    }
    const kind = bytes[at++];
    if (kind === 0) {
      imported++;
      [, at] = leb(bytes, at);
    } else if (kind === 1) {
      at++;
      const [flags, p] = leb(bytes, at);
      [, at] = leb(bytes, p);
      if (flags & 1) [, at] = leb(bytes, at);
    } else if (kind === 2) {
      const [flags, p] = leb(bytes, at);
      [, at] = leb(bytes, p);
      if (flags & 1) [, at] = leb(bytes, at);
    } else if (kind === 3) at += 2;
    else if (kind === 4) at += 2;
    else throw new Error(`unknown import kind ${kind}`);
  }
}

const names = new Map();
const nameSection = all.find((s) => s.id === 0 && s.name === 'name');
if (!nameSection) throw new Error(`${namesPath} has no name section: build it with --profile names`);
{
  let [len, at] = leb(bytes, nameSection.start);
  at += len;
  while (at < nameSection.end) {
    const sub = bytes[at++];
    let size;
    [size, at] = leb(bytes, at);
    if (sub === 1) {
      let [count, p] = leb(bytes, at);
      for (let i = 0; i < count; i++) {
        let index;
        let n;
        [index, p] = leb(bytes, p);
        [n, p] = leb(bytes, p);
        names.set(index, new TextDecoder().decode(bytes.subarray(p, p + n)));
        p += n;
      }
    }
    at += size;
  }
}

const chunks = new Map(PARTS.map(([label]) => [label, []]));
chunks.set('other', []);
chunks.set('data (strings, tables)', []);
const code = all.find((s) => s.id === 10);
{
  let [count, at] = leb(bytes, code.start);
  for (let i = 0; i < count; i++) {
    let size;
    [size, at] = leb(bytes, at);
    const name = pathOf(names.get(imported + i) ?? '');
    if (!name.startsWith('__wbindgen_describe')) {
      const part = PARTS.find(([, test]) => test(name))?.[0] ?? 'other';
      chunks.get(part).push(bytes.subarray(at, at + size));
    }
    at += size;
  }
}
const data = all.find((s) => s.id === 11);
if (data) chunks.get('data (strings, tables)').push(bytes.subarray(data.start, data.end));

const shipped = readFileSync(shippedPath);
const gz = (buf) => gzipSync(buf, { level: 9 }).length;
const parts = [...chunks]
  .map(([part, list]) => {
    const joined = Buffer.concat(list);
    const functions = part.startsWith('data') ? 0 : list.length;
    return { part, functions, raw: joined.length, gzip: joined.length ? gz(joined) : 0 };
  })
  .filter((p) => p.raw > 0)
  .sort((a, b) => b.gzip - a.gzip);
const result = {
  file: 'nestbox_bg.wasm',
  raw: shipped.length,
  gzip: gz(shipped),
  note: "each part's gzip is gzip -9 of its bytes alone (the parts add up to more than the file)",
  parts,
};
writeFileSync(outPath, `${JSON.stringify(result, null, 2)}\n`);
for (const p of parts)
  console.log(`${p.part.padEnd(48)} ${String(p.raw).padStart(9)} B  gzip ${String(p.gzip).padStart(8)} B`);
console.log(
  `${'nestbox_bg.wasm'.padEnd(48)} ${String(result.raw).padStart(9)} B  gzip ${String(result.gzip).padStart(8)} B`,
);
