/**
 * What differs between browsers and Node.js (≥ 20), decided at run time, never at build time:
 * the package is one set of ES modules for both.
 *
 * Node's own modules (`node:fs`, `node:worker_threads`) are only ever loaded with
 * {@link nodeImport}: an `import()` of a name passed in at run time, marked for webpack
 * (`webpackIgnore`) and Vite (`@vite-ignore`) to leave alone, so a browser bundle neither
 * resolves nor includes them, and in a browser the code that would call it never runs.
 *
 * - **nestbox's own wasm** ({@link coreWasm}): wasm-bindgen's loader fetches
 *   `nestbox_bg.wasm` next to `nestbox.js`; Node's `fetch` refuses `file:` URLs, so in Node a
 *   `file:` location is read with `fs` and handed over as bytes.
 * - **Module sources** ({@link readFileUrl}): `sandbox.load(new URL('./guest.wasm',
 *   import.meta.url))` in Node reads the file the same way.
 * - **`reportError`** ({@link report}): Node 20 has none; a listener's exception is printed
 *   with `console.error` there instead (it never ends the process).
 *
 * @module
 */

import type { InitInput } from './nestbox.js';

interface NodeProcessLike {
  versions?: { node?: unknown };
}

/** Whether this is Node.js (or a runtime that says it is compatible with it). */
export function isNode(): boolean {
  const process = (globalThis as { process?: NodeProcessLike }).process;
  return typeof process?.versions?.node === 'string';
}

/**
 * One of Node's own modules (`node:…`), loaded at run time. Bundlers are told to leave the
 * `import()` alone, and its name is an argument, so there is nothing for them to resolve.
 */
export function nodeImport<T>(name: `node:${string}`): Promise<T> {
  return import(/* webpackIgnore: true */ /* @vite-ignore */ name) as Promise<T>;
}

interface NodeFs {
  readFile(path: URL): Promise<Uint8Array>;
}

/** A `file:` URL's bytes, in Node (`fs`); `undefined` anywhere else or for another scheme. */
export async function readFileUrl(url: URL): Promise<Uint8Array<ArrayBuffer> | undefined> {
  if (url.protocol !== 'file:' || !isNode()) return undefined;
  const fs = await nodeImport<NodeFs>('node:fs/promises');
  const bytes = await fs.readFile(url);
  // A Buffer is a Uint8Array over a pooled ArrayBuffer: copy it out to one of its own.
  return new Uint8Array(bytes);
}

/** Where wasm-pack put `nestbox_bg.wasm` (a bundler rewrites this to the file it emits). */
function packagedWasm(): URL {
  return new URL('./nestbox_bg.wasm', import.meta.url);
}

/**
 * The argument for wasm-bindgen's `init`: `given` as it is, except that a `file:` URL in Node
 * is read with `fs`; without `given`, in Node, the packaged `nestbox_bg.wasm` read with `fs`;
 * otherwise `undefined` (wasm-bindgen fetches it next to `nestbox.js`).
 */
export function coreWasm(given?: InitInput): { module_or_path: InitInput | Promise<InitInput> } | undefined {
  if (!isNode()) return given === undefined ? undefined : { module_or_path: given };
  let url: URL | undefined;
  if (given === undefined) url = packagedWasm();
  else if (given instanceof URL) url = given;
  else if (typeof given === 'string' && given.startsWith('file:')) url = new URL(given);
  if (url === undefined || url.protocol !== 'file:') {
    return given === undefined ? undefined : { module_or_path: given };
  }
  const file = url;
  return { module_or_path: readFileUrl(file).then((bytes) => bytes ?? file) };
}

/**
 * Reports an exception nobody can catch (a listener that threw) without ending anything:
 * `reportError` where the platform has it, else `console.error` (Node 20).
 */
export function report(error: unknown): void {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(error);
  else console.error(error);
}
