/**
 * Starting the worker that runs a sandbox's core: how {@link WorkerConnection} gets a thread,
 * in a browser or in Node.js, behind one small interface ({@link WorkerHandle}).
 *
 * - **Browsers, bundled or not** — a dedicated module worker. The default is written exactly
 *   as `new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })`, the form
 *   webpack 5 and Vite find and bundle; pages without a bundler pass `workerUrl`.
 * - **Cross-origin** — a browser refuses `new Worker(url)` for a script of another origin
 *   (`SecurityError`). When `workerUrl` is of another origin than the page, or the package
 *   itself was loaded from another origin (a CDN) and no `workerUrl` is given, the worker
 *   starts from a `blob:` module of one line, `import "<absolute worker URL>";`: the worker
 *   is the page's origin, and the imported `worker.js` keeps its own URL as
 *   `import.meta.url`, so `./nestbox.js` and `nestbox_bg.wasm` load from the CDN (which must
 *   answer with CORS headers). The blob URL is revoked once the worker answers or fails.
 * - **Node.js** (no global `Worker`) — a `worker_threads` thread running the same
 *   `worker.js` (it talks through `parentPort` there), loaded with `import()` at run time so
 *   browser bundles never see `node:worker_threads`. The thread keeps the process alive only
 *   while a request to it is in flight ({@link WorkerHandle.busy}): an idle or disposed
 *   sandbox never stops a script from exiting.
 *
 * Whatever fails while starting — no worker on this platform, a URL the platform refuses, a
 * CSP that forbids the worker, a script that does not load — reaches the connection as a
 * {@link WorkerFailure} (a thrown one from {@link WorkerFactory}, or {@link WorkerEvents.error}
 * later), which makes it `WORKER_CRASHED` for the requests in flight, with the cause.
 *
 * @module
 */

import { isNode, nodeImport } from './platform.js';
import { defaultWasmUrl } from './wasm.js';
import type { ToWorker } from './protocol.js';

/** What a worker tells its connection. */
export interface WorkerEvents {
  /** A message from the worker (checked by the connection). */
  message(data: unknown): void;
  /** The worker failed to start or crashed: `reason` for the error's message, `cause` if any. */
  error(reason: string, cause?: unknown): void;
  /** A message from the worker could not be deserialised. */
  messageError(): void;
}

/** One worker, as the connection drives it. */
export interface WorkerHandle {
  post(message: ToWorker): void;
  /** Ends the thread; no event is delivered after this. */
  terminate(): void;
  /** Whether requests are in flight (Node: the thread keeps the process alive only then). */
  busy(busy: boolean): void;
}

/** Starts a worker; throws a {@link WorkerFailure} when it cannot even be created. */
export type WorkerFactory = (events: WorkerEvents) => WorkerHandle;

/** A worker that could not be created: `reason` says why (and which CSP directive, for a `SecurityError`). */
export class WorkerFailure extends Error {
  constructor(reason: string, cause: unknown) {
    super(reason, cause === undefined ? undefined : { cause });
    this.name = 'WorkerFailure';
  }
}

/** The name of a thrown value, if it has one (`SecurityError`, `TypeError`, …). */
function nameOf(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && typeof (error as { name?: unknown }).name === 'string'
    ? (error as { name: string }).name
    : undefined;
}

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/** What `new Worker(...)` threw, as a failure whose reason says what to fix. */
function creationFailure(error: unknown, url: string, viaBlob: boolean): WorkerFailure {
  if (nameOf(error) === 'SecurityError') {
    const hint = viaBlob
      ? `the page's Content-Security-Policy must allow blob: workers (worker-src blob:, or script-src blob: without worker-src), since ${url} is cross-origin`
      : `the page's Content-Security-Policy (worker-src) or the same-origin rule forbids a worker from ${url}`;
    return new WorkerFailure(`the worker could not be started: ${describe(error)} (${hint})`, error);
  }
  return new WorkerFailure(`the worker could not be started from ${url}: ${describe(error)}`, error);
}

/** The URL `workerUrl` names, resolved as `new Worker` would (`undefined` if it does not parse). */
function resolved(url: string | URL): URL | undefined {
  if (url instanceof URL) return url;
  const here = globalThis as { document?: { baseURI?: string }; location?: { href?: string } };
  const base = here.document?.baseURI ?? here.location?.href;
  try {
    return base === undefined ? new URL(url) : new URL(url, base);
  } catch {
    return undefined;
  }
}

/** Whether a worker from `url` is of another origin than this page (or worker). */
function crossOrigin(url: URL): boolean {
  const here = (globalThis as { location?: { origin?: string } }).location?.origin;
  if (here === undefined) return false;
  return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin !== here;
}

/** The URL of this package's own `worker.js`, unbundled (only for the cross-origin check). */
function packagedWorker(): URL | undefined {
  // Not `new URL('./worker.js', import.meta.url)`: a bundler would copy worker.js as an
  // unbundled asset. The wasm's URL is one bundlers already rewrite to the file they emit.
  try {
    return new URL('worker.js', defaultWasmUrl());
  } catch {
    return undefined;
  }
}

/** Why a worker that fired `error` failed, when more is known than the event says. */
type Explain = (message: string) => { reason: string; cause?: unknown };

/**
 * A browser `Worker` as a {@link WorkerHandle}; `revoke` runs once it answered, failed or
 * ended. `explain` (a blob: bootstrap's) turns a load failure into a reason naming what to fix;
 * it is asked a macrotask after the `error` event, so a CSP violation reported meanwhile counts.
 */
function browserHandle(worker: Worker, events: WorkerEvents, revoke: () => void, explain?: Explain): WorkerHandle {
  let ended = false;
  let revoked = false;
  let answered = false;
  const once = (): void => {
    if (revoked) return;
    revoked = true;
    revoke();
  };
  worker.addEventListener('message', (event: MessageEvent<unknown>) => {
    answered = true;
    once();
    if (!ended) events.message(event.data);
  });
  worker.addEventListener('error', (event: ErrorEvent) => {
    event.preventDefault();
    const message = `worker error: ${event.message || 'failed to load or crashed'}`;
    if (explain === undefined || answered) {
      once();
      if (!ended) events.error(message);
      return;
    }
    setTimeout(() => {
      once();
      const { reason, cause } = explain(message);
      if (!ended) events.error(reason, cause);
    }, 0);
  });
  worker.addEventListener('messageerror', () => {
    if (!ended) events.messageError();
  });
  return {
    post: (message) => worker.postMessage(message),
    terminate: () => {
      ended = true;
      once();
      worker.terminate();
    },
    busy: () => undefined,
  };
}

/** Starts a browser worker from `url`, through a `blob:` bootstrap when it is cross-origin. */
function browserWorker(url: string | URL, events: WorkerEvents): WorkerHandle {
  const target = resolved(url);
  if (target !== undefined && crossOrigin(target)) return blobWorker(target, events);
  let worker: Worker;
  try {
    worker = new Worker(url, { type: 'module' });
  } catch (error) {
    throw creationFailure(error, String(url), false);
  }
  return browserHandle(worker, events, () => undefined);
}

/** A module worker whose script is `import "<target>";`, from a `blob:` URL of this origin. */
function blobWorker(target: URL, events: WorkerEvents): WorkerHandle {
  const source = `import ${JSON.stringify(target.href)};\n`;
  let blobUrl: string;
  try {
    blobUrl = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  } catch (error) {
    throw creationFailure(error, target.href, true);
  }
  // A CSP that forbids the blob: worker is reported to this global (Chromium: no exception,
  // an `error` event without a message); remember it, to say which directive refused it.
  const scope = globalThis as {
    addEventListener?: EventTarget['addEventListener'];
    removeEventListener?: EventTarget['removeEventListener'];
  };
  let violation: SecurityPolicyViolationEvent | undefined;
  const onViolation = (event: Event): void => {
    const v = event as SecurityPolicyViolationEvent;
    // Browsers report the blocked URL as the blob: URL itself or only its scheme.
    if (v.blockedURI === blobUrl || v.blockedURI === 'blob') violation ??= v;
  };
  scope.addEventListener?.('securitypolicyviolation', onViolation);
  const done = (): void => {
    scope.removeEventListener?.('securitypolicyviolation', onViolation);
    URL.revokeObjectURL(blobUrl);
  };
  let worker: Worker;
  try {
    worker = new Worker(blobUrl, { type: 'module' });
  } catch (error) {
    done();
    throw creationFailure(error, target.href, true);
  }
  const explain: Explain = (message) => {
    if (violation !== undefined) {
      return {
        reason: `the worker could not be started: the page's Content-Security-Policy refused it (${violation.effectiveDirective}, policy "${violation.originalPolicy}"); a worker of another origin (${target.href}) starts from a blob: module, so allow worker-src blob: ${target.origin}`,
        cause: violation,
      };
    }
    return {
      reason: `${message}: the worker of another origin (${target.href}) did not load from its blob: bootstrap; that origin must send CORS headers (Access-Control-Allow-Origin), and a Content-Security-Policy must allow worker-src blob: ${target.origin}, connect-src ${target.origin} and script-src 'wasm-unsafe-eval'`,
    };
  };
  return browserHandle(worker, events, done, explain);
}

/** The parts of `node:worker_threads`' `Worker` used here. */
interface NodeWorker {
  postMessage(value: unknown): void;
  on(event: 'message' | 'error' | 'messageerror' | 'exit', listener: (value: unknown) => void): unknown;
  terminate(): Promise<unknown>;
  ref(): void;
  unref(): void;
}

interface NodeWorkerThreads {
  Worker: new (filename: string | URL, options: { env: Record<string, string> }) => NodeWorker;
}

/**
 * A `worker_threads` thread running `url` (the package's `worker.js`, or the caller's). The
 * module is loaded asynchronously, so messages posted before the thread exists wait (the
 * connection sends nothing but its first requests before the worker says `ready`).
 */
function nodeWorker(url: string | URL, events: WorkerEvents): WorkerHandle {
  let worker: NodeWorker | undefined;
  let ended = false;
  let busy = true;
  const outbox: ToWorker[] = [];
  const fail = (reason: string, cause?: unknown): void => {
    if (ended) return;
    ended = true;
    void worker?.terminate().catch(() => undefined);
    events.error(reason, cause);
  };
  nodeImport<NodeWorkerThreads>('node:worker_threads').then(
    ({ Worker: NodeWorkerClass }) => {
      if (ended) return;
      let w: NodeWorker;
      try {
        // An empty environment: the process's variables (often secrets) are not copied into
        // the thread the guest runs in.
        w = new NodeWorkerClass(url, { env: {} });
      } catch (error) {
        fail(`the worker thread could not be started from ${String(url)}: ${describe(error)}`, error);
        return;
      }
      worker = w;
      w.on('message', (data) => {
        if (!ended) events.message(data);
      });
      w.on('messageerror', () => {
        if (!ended) events.messageError();
      });
      w.on('error', (error) => fail(`worker error: ${describe(error)}`, error));
      // Exiting by itself (process.exit in the worker, an unloadable script) is a crash too.
      w.on('exit', (code) => fail(`the worker thread exited (code ${String(code)})`));
      // After the listeners: adding a `message` listener refs the thread's port again.
      if (!busy) w.unref();
      for (const message of outbox.splice(0)) w.postMessage(message);
    },
    (error: unknown) => fail(`node:worker_threads could not be loaded: ${describe(error)}`, error),
  );
  return {
    post: (message) => {
      if (ended) return;
      if (worker === undefined) outbox.push(message);
      else worker.postMessage(message);
    },
    terminate: () => {
      if (ended) return;
      ended = true;
      outbox.length = 0;
      void worker?.terminate().catch(() => undefined);
    },
    busy: (value) => {
      busy = value;
      if (value) worker?.ref();
      else worker?.unref();
    },
  };
}

/**
 * The factory of a sandbox's (or pool's) workers: `workerUrl` if given, else this package's
 * `worker.js`. Throws nothing itself; each start may throw a {@link WorkerFailure}.
 */
export function workerFactory(workerUrl: string | URL | undefined): WorkerFactory {
  return (events) => {
    if (typeof Worker !== 'function') {
      if (!isNode()) {
        throw new WorkerFailure(
          'this platform has no Worker: nestbox needs Web Workers or Node.js worker_threads',
          undefined,
        );
      }
      const url = workerUrl ?? packagedWorker();
      if (url === undefined) throw new WorkerFailure('the URL of worker.js could not be found', undefined);
      return nodeWorker(url, events);
    }
    if (workerUrl !== undefined) return browserWorker(workerUrl, events);
    const own = packagedWorker();
    if (own !== undefined && crossOrigin(own)) return blobWorker(own, events);
    let worker: Worker;
    try {
      // Exactly this form: webpack 5 and Vite find `new Worker(new URL(…, import.meta.url))`
      // and bundle the worker with its imports.
      worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    } catch (error) {
      throw creationFailure(error, 'worker.js', false);
    }
    return browserHandle(worker, events, () => undefined);
  };
}
