/**
 * `runWasi`'s parts shared by the page sandbox and the local one: its options checked and
 * translated for the core, the async stdin source read chunk by chunk, the output collected
 * (and streamed to the caller's callbacks), and the result.
 *
 * @module
 */

import type { CoreTrace, CoreWasiConfig, CoreWasiFiles } from './nestbox.js';
import { invalidArgument, SandboxError, type AnySandboxError } from './errors.js';
import { callOptions, onlyFields, type CheckedCallOptions } from './options.js';
import type { Metrics, WasiFiles, WasiResult, WasiRunOptions } from './types.js';

const RUN_FIELDS = [
  'args',
  'env',
  'files',
  'preopens',
  'stdin',
  'onStdout',
  'onStderr',
  'deterministic',
  'signal',
  'timeoutMs',
  'fuel',
  'maxMemoryBytes',
  'onProgress',
  'trace',
  'limits',
  'imports',
] as const;

const LIMIT_FIELDS = ['maxStdoutBytes', 'maxStderrBytes', 'maxFsBytes', 'maxFiles'] as const;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isReadableStream(value: unknown): value is ReadableStream<Uint8Array | string> {
  return typeof ReadableStream !== 'undefined' && value instanceof ReadableStream;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array | string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function'
  );
}

/** `runWasi`'s options, checked: what the core gets, and what stays on this side. */
export interface WasiPlan {
  /** For `instantiateWasi`, without `grants` (the caller links `imports`). */
  config: CoreWasiConfig;
  /** The async stdin source, when stdin is one. */
  stdin: AsyncIterable<Uint8Array | string> | ReadableStream<Uint8Array | string> | undefined;
  onStdout: ((chunk: Uint8Array) => void) | undefined;
  onStderr: ((chunk: Uint8Array) => void) | undefined;
  imports: unknown;
  call: CheckedCallOptions;
}

/**
 * Checks `runWasi`'s options (TypeError for misuse) and translates them: `files` is a
 * preopen at `/` (before `preopens`), a string stdin is its UTF-8 bytes, an async source is
 * `"async"`. The core checks the rest again (paths, NULs, quotas, number ranges).
 */
export function wasiPlan(options: unknown, sandboxTimeoutMs: number): WasiPlan {
  if (options === undefined) options = {};
  if (!isObject(options)) throw invalidArgument('runWasi options must be an object');
  onlyFields(options, RUN_FIELDS, 'runWasi options');
  const o = options as WasiRunOptions;
  const call = callOptions(
    {
      signal: o.signal,
      timeoutMs: o.timeoutMs,
      fuel: o.fuel,
      maxMemoryBytes: o.maxMemoryBytes,
      onProgress: o.onProgress,
      trace: o.trace,
    },
    sandboxTimeoutMs,
  );
  const config: CoreWasiConfig = {};
  if (o.args !== undefined) {
    if (!Array.isArray(o.args) || !o.args.every((a) => typeof a === 'string')) {
      throw invalidArgument('args must be an array of strings (the whole argv, args[0] being the program name)');
    }
    config.args = [...o.args];
  }
  if (o.env !== undefined) {
    if (Array.isArray(o.env)) config.env = o.env.map((pair) => (Array.isArray(pair) ? [...pair] : pair)) as never;
    else if (isObject(o.env)) config.env = { ...o.env };
    else throw invalidArgument('env must be an object or an array of [key, value] pairs');
  }
  const preopens: NonNullable<CoreWasiConfig['preopens']> = [];
  if (o.files !== undefined) {
    if (!isObject(o.files)) throw invalidArgument('files must be an object { "path": contents }');
    preopens.push({ guestPath: '/', files: o.files });
  }
  if (o.preopens !== undefined) {
    if (!Array.isArray(o.preopens))
      throw invalidArgument('preopens must be an array of { guestPath, files, readOnly }');
    for (const p of o.preopens) {
      if (!isObject(p)) throw invalidArgument('each preopen must be an object { guestPath, files, readOnly }');
      preopens.push({ ...p } as never);
    }
  }
  if (preopens.length > 0) config.preopens = preopens;
  let stdin: WasiPlan['stdin'];
  const s = o.stdin;
  if (typeof s === 'string') config.stdin = new TextEncoder().encode(s);
  else if (s instanceof Uint8Array) config.stdin = s;
  else if (isReadableStream(s) || isAsyncIterable(s)) {
    config.stdin = 'async';
    stdin = s;
  } else if (s !== undefined && s !== null) {
    throw invalidArgument('stdin must be a string, a Uint8Array, an AsyncIterable<Uint8Array> or a ReadableStream');
  }
  for (const [name, f] of [
    ['onStdout', o.onStdout],
    ['onStderr', o.onStderr],
  ] as const) {
    if (f !== undefined && typeof f !== 'function') throw invalidArgument(`${name} must be a function`);
  }
  if (o.deterministic !== undefined) {
    if (!isObject(o.deterministic)) throw invalidArgument('deterministic must be an object { seed, startTimeNs }');
    config.deterministic = { ...o.deterministic } as never;
  }
  const limits: unknown = o.limits;
  if (limits !== undefined) {
    if (!isObject(limits)) throw invalidArgument('limits must be an object');
    onlyFields(limits, LIMIT_FIELDS, 'runWasi limits');
    // Types and ranges are the core's to check (INVALID_ARGUMENT).
    for (const name of LIMIT_FIELDS) {
      if (limits[name] !== undefined) config[name] = limits[name] as number | bigint;
    }
  }
  return { config, stdin, onStdout: o.onStdout, onStderr: o.onStderr, imports: o.imports, call };
}

/**
 * Reads an async stdin source one chunk at a time: never an empty chunk (skipped), a string
 * as its UTF-8 bytes. {@link close} stops the source when the run ends before it did
 * (`return()` on an iterator, `cancel()` on a stream: what leaving a `for await` does).
 */
export class StdinReader {
  readonly #next: () => Promise<IteratorResult<unknown>>;
  readonly #stop: () => Promise<unknown>;
  #done = false;

  constructor(source: AsyncIterable<Uint8Array | string> | ReadableStream<Uint8Array | string>) {
    if (isReadableStream(source)) {
      const reader = source.getReader();
      this.#next = () => reader.read() as Promise<IteratorResult<unknown>>;
      this.#stop = () => reader.cancel();
    } else {
      const iterator = source[Symbol.asyncIterator]();
      this.#next = () => iterator.next();
      this.#stop = async () => iterator.return?.();
    }
  }

  /** The next non-empty chunk, or end of file. A source that throws, or yields something else, rejects. */
  async read(): Promise<{ bytes: Uint8Array; eof: boolean }> {
    for (;;) {
      if (this.#done) return { bytes: new Uint8Array(0), eof: true };
      const { value, done } = await this.#next();
      if (done === true) {
        this.#done = true;
        continue;
      }
      let bytes: Uint8Array;
      if (typeof value === 'string') bytes = new TextEncoder().encode(value);
      else if (value instanceof Uint8Array) bytes = value.slice();
      else throw new TypeError(`stdin yielded ${typeof value}, not a Uint8Array or a string`);
      if (bytes.length > 0) return { bytes, eof: false };
    }
  }

  /** Stops the source, unless it already ended. */
  close(): void {
    if (this.#done) return;
    this.#done = true;
    this.#stop().catch(() => undefined);
  }
}

/** What the guest wrote, in chunks, streamed to the caller's callbacks as it arrives. */
export class OutputCollector {
  readonly #stdout: Uint8Array[] = [];
  readonly #stderr: Uint8Array[] = [];
  readonly #plan: WasiPlan;
  readonly #fail: (error: AnySandboxError) => void;

  /** `fail`: how a callback that throws ends the run (`HOST_ERROR`, the thrown value as `cause`). */
  constructor(plan: WasiPlan, fail: (error: AnySandboxError) => void) {
    this.#plan = plan;
    this.#fail = fail;
  }

  push(stdout: Uint8Array, stderr: Uint8Array): void {
    this.#emit(stdout, this.#stdout, this.#plan.onStdout, 'onStdout');
    this.#emit(stderr, this.#stderr, this.#plan.onStderr, 'onStderr');
  }

  #emit(
    chunk: Uint8Array,
    into: Uint8Array[],
    callback: ((chunk: Uint8Array) => void) | undefined,
    name: string,
  ): void {
    if (chunk.length === 0) return;
    into.push(chunk);
    if (callback === undefined) return;
    try {
      // The caller's own copy: the collected one stays intact whatever the callback does.
      callback(chunk.slice());
    } catch (thrown) {
      this.#fail(
        new SandboxError(
          'HOST_ERROR',
          `${name} threw: ${String(thrown)}`,
          { cause: String(thrown) },
          { cause: thrown },
        ),
      );
    }
  }

  get stdout(): Uint8Array {
    return concat(this.#stdout);
  }

  get stderr(): Uint8Array {
    return concat(this.#stderr);
  }

  /** Adds the output so far to an error that ended the run (`details.stdout`, `details.stderr`). */
  attach<E extends AnySandboxError>(error: E): E {
    error.details.stdout = this.stdout;
    error.details.stderr = this.stderr;
    return error;
  }
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** The result of `runWasi`, with lazily decoded text. */
export function wasiResult(
  exitCode: number,
  output: OutputCollector,
  files: CoreWasiFiles,
  metrics: Metrics,
  trace?: CoreTrace,
): WasiResult {
  const decoder = new TextDecoder();
  const result: WasiResult = {
    exitCode,
    stdout: output.stdout,
    stderr: output.stderr,
    get stdoutText(): string {
      return decoder.decode(this.stdout);
    },
    get stderrText(): string {
      return decoder.decode(this.stderr);
    },
    files: files as WasiFiles,
    metrics,
  };
  if (trace !== undefined) result.trace = trace;
  return result;
}
