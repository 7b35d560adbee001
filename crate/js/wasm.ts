/**
 * nestbox's own wasm (`nestbox_bg.wasm`, the core), compiled once per page: every worker
 * the page starts gets the same `WebAssembly.Module` in its first message (modules are
 * structured-cloneable, and the browser shares their compiled code) instead of fetching and
 * compiling 2 MB again.
 *
 * The compile starts with the first worker and its promise is shared by every later one; a
 * compile that failed is forgotten, so the next worker tries again. This is nestbox's own
 * code, not a guest's: guests are verified and compiled by the core inside the worker.
 *
 * @module
 */

import { isNode, readFileUrl } from './platform.js';

/** Compiles in flight or done, by the wasm's URL (a failed or missing one is removed). */
const compiled = new Map<string, Promise<WebAssembly.Module | null>>();

/**
 * Where the core's wasm is: next to this module, which is where the package ships it and
 * what bundlers rewrite (webpack 5 and Vite emit the file for exactly this form).
 */
export function defaultWasmUrl(): URL {
  return new URL('./nestbox_bg.wasm', import.meta.url);
}

/**
 * The core's `WebAssembly.Module` compiled from `url`, once per page (and per URL); rejects
 * with an `Error` saying why when it cannot be fetched or compiled. With `optional` (a guess:
 * the URL next to a custom worker script), a 404 resolves to `null` instead: the worker then
 * fetches the core itself, from wherever its script imports it. `undefined` where the page
 * cannot fetch it (a `file:` URL; in Node, anything else): the worker loads it itself, as it
 * always could. In Node a `file:` URL is read with `fs` and compiled the same way.
 */
export function compiledCore(url: URL, optional = false): Promise<WebAssembly.Module | null> | undefined {
  const href = url.href;
  // In Node the package is on disk: a `file:` URL is read with `fs` (and worker threads load
  // nothing else); a browser cannot fetch one.
  if ((url.protocol === 'file:') !== isNode()) return undefined;
  let promise = compiled.get(href);
  if (promise === undefined) {
    const started = compile(href, optional);
    promise = started;
    compiled.set(href, started);
    // Neither a failure nor a missing file is kept: the next worker tries again.
    const forget = (): void => {
      if (compiled.get(href) === started) compiled.delete(href);
    };
    started.then((module) => {
      if (module === null) forget();
    }, forget);
  }
  return promise;
}

async function compile(href: string, optional: boolean): Promise<WebAssembly.Module | null> {
  if (href.startsWith('file:')) return compileFile(new URL(href), optional);
  let response: Response;
  try {
    response = await fetch(href);
  } catch (error) {
    throw new Error(`could not fetch ${href}: ${String(error)}`);
  }
  if (optional && response.status === 404) return null;
  if (!response.ok) throw new Error(`could not fetch ${href}: HTTP ${response.status} ${response.statusText}`.trim());
  try {
    // Streaming compilation needs the wasm MIME type; a server that sends another one gets
    // the slower compile of the whole buffer instead of a failure.
    const type = (response.headers.get('content-type') ?? '').split(';', 1)[0]?.trim().toLowerCase();
    if (type === 'application/wasm' && typeof WebAssembly.compileStreaming === 'function') {
      return await WebAssembly.compileStreaming(response);
    }
    return await WebAssembly.compile(await response.arrayBuffer());
  } catch (error) {
    throw new Error(`could not compile ${href}: ${String(error)}`);
  }
}

/** Node: the core compiled from a file (`optional`: a missing file is `null`). */
async function compileFile(url: URL, optional: boolean): Promise<WebAssembly.Module | null> {
  let bytes: Uint8Array<ArrayBuffer> | undefined;
  try {
    bytes = await readFileUrl(url);
  } catch (error) {
    if (optional && (error as { code?: unknown } | null)?.code === 'ENOENT') return null;
    throw new Error(`could not read ${url.href}: ${String(error)}`);
  }
  if (bytes === undefined) return null;
  try {
    return await WebAssembly.compile(bytes);
  } catch (error) {
    throw new Error(`could not compile ${url.href}: ${String(error)}`);
  }
}
