/**
 * The bounds-checked views of guest memory that host functions get.
 *
 * A view belongs to one host call: it works while the guest is suspended at that call and
 * refuses every access after the host function returned (or the call was cancelled or timed
 * out). Every access is checked by the core — a `(ptr, len)` outside the guest's memory is
 * `TRAP` / `memory_out_of_bounds`, never a clamp — and charged to the capability's byte
 * quota. Refusals are *denials*: counted in the call's metrics, and if the host function
 * lets one propagate, the guest call ends with that very error.
 *
 * Pointers and lengths are the guest's `i32` values: an integer from -2^31 to 2^32-1, where
 * a negative number is read as the unsigned address it stands for (as wasm itself does).
 *
 * @module
 */

import { invalidArgument, SandboxError, type AnySandboxError } from './errors.js';

/** The page-side view: each method is a round trip to the worker while the guest waits. */
export interface GuestMemory {
  /** A copy of `len` bytes at `ptr`. */
  read(ptr: number, len: number): Promise<Uint8Array>;
  /** `len` bytes at `ptr` decoded as UTF-8 (invalid sequences become U+FFFD). */
  readString(ptr: number, len: number): Promise<string>;
  /** Copies `bytes` to `ptr`, all or nothing. */
  write(ptr: number, bytes: Uint8Array): Promise<void>;
  /**
   * Writes `text` as UTF-8 at `ptr` — at most `maxBytes` bytes, cut at a character boundary
   * — and returns how many bytes it wrote.
   */
  writeString(ptr: number, text: string, maxBytes?: number): Promise<number>;
  /** The size of the guest's memory in bytes (0 when it exports none). */
  size(): Promise<number>;
  /** Aborted when the guest call ends (cancelled, timed out, finished) before the host function. */
  readonly signal: AbortSignal;
}

/** The synchronous view of a local sandbox (`nestbox/worker`); same contract, no promises. */
export interface SyncGuestMemory {
  /** A copy of `len` bytes at `ptr`. */
  read(ptr: number, len: number): Uint8Array;
  /** `len` bytes at `ptr` decoded as UTF-8 (invalid sequences become U+FFFD). */
  readString(ptr: number, len: number): string;
  /** Copies `bytes` to `ptr`, all or nothing. */
  write(ptr: number, bytes: Uint8Array): void;
  /** Writes `text` as UTF-8 (at most `maxBytes` bytes); returns the bytes written. */
  writeString(ptr: number, text: string, maxBytes?: number): number;
  /** The size of the guest's memory in bytes. */
  size(): number;
  /** Aborted when the guest call ends before the host function. */
  readonly signal: AbortSignal;
}

/** Errors a view raised itself (bounds, quota): these keep their code when propagated. */
const viewErrors = new WeakSet<object>();

/** Whether `error` is a denial raised by a memory view (so the guest call ends with it). */
export function isViewDenial(error: unknown): error is SandboxError {
  return typeof error === 'object' && error !== null && viewErrors.has(error);
}

/** What a view needs from its sandbox: raw, checked access to one instance's memory. */
export interface MemoryAccess<Bytes, Unit> {
  read(ptr: number, len: number): Bytes;
  write(ptr: number, bytes: Uint8Array): Unit;
  size(): number | Promise<number>;
}

/** The byte quota of the capability whose host function holds a view (its private entry). */
export interface ByteQuota {
  /** The capability's name, for messages. */
  readonly name: string;
  /** How many bytes it may move through views, reads plus writes. */
  readonly maxBytes: number;
  /**
   * How many it moved so far (across every sandbox and instance), counting the accesses in
   * flight: an access is charged before it starts and refunded if it fails.
   */
  bytes: number;
}

/** Book-keeping shared by a view and its call. */
export interface ViewContext {
  /** The capability whose host function holds the view (quota), if any. */
  readonly entry: ByteQuota | undefined;
  /** Called once per denial. */
  readonly deny: () => void;
  /** Aborted when the view must stop working. */
  readonly signal: AbortSignal;
  /** Details added to every denial (capability, import). */
  readonly details: Readonly<Record<string, unknown>>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A guest `i32` used as an address or a length, as the unsigned number it stands for. */
function address(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < -0x8000_0000 || value > 0xffff_ffff) {
    throw invalidArgument(`${what} must be an i32 (an integer from -2^31 to 2^32-1), got ${String(value)}`);
  }
  return value >>> 0;
}

/** UTF-8 of `text`, cut at a character boundary to at most `maxBytes` bytes. */
function encodeAtMost(text: string, maxBytes: number | undefined): Uint8Array {
  const bytes = encoder.encode(text);
  if (maxBytes === undefined || bytes.length <= maxBytes) return bytes;
  let end = address(maxBytes, 'maxBytes');
  // Step back over continuation bytes (10xxxxxx) so no character is split.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** Checks the view is usable and the quota allows `n` more bytes; returns an error if not. */
function refusal(context: ViewContext, closed: boolean, n: number): AnySandboxError | undefined {
  if (context.signal.aborted) {
    const reason: unknown = context.signal.reason;
    return reason instanceof SandboxError
      ? reason
      : new SandboxError('CANCELLED', 'the guest call ended while the host function was running');
  }
  if (closed) return invalidArgument('memory view used after its host call returned');
  const entry = context.entry;
  if (entry !== undefined && entry.bytes + n > entry.maxBytes) {
    const error = new SandboxError(
      'CAPABILITY_QUOTA',
      `capability ${entry.name} may move at most ${entry.maxBytes} bytes through guest memory (${entry.bytes} used, ${n} more asked)`,
      { ...context.details, quota: 'bytes', limit: entry.maxBytes },
    );
    return denial(context, error);
  }
  return undefined;
}

/**
 * Charges `n` bytes to the capability's byte quota now, before the access runs (checked by
 * {@link refusal} just before, with no await in between), so that accesses in flight
 * together cannot pass the quota; returns the refund for an access that failed (no bytes moved).
 */
function reserve(context: ViewContext, n: number): () => void {
  const entry = context.entry;
  if (entry === undefined || n === 0) return () => undefined;
  entry.bytes += n;
  let refunded = false;
  return () => {
    if (refunded) return;
    refunded = true;
    entry.bytes -= n;
  };
}

/** Marks `error` as a view denial and counts it. */
function denial(context: ViewContext, error: SandboxError): SandboxError {
  viewErrors.add(error);
  context.deny();
  return error;
}

/** A core error from an access: an out-of-bounds `TRAP` is a denial of this view. */
function accessError(context: ViewContext, error: unknown): unknown {
  if (error instanceof SandboxError && error.code === 'TRAP') {
    const denied = new SandboxError(error.code, error.message, { ...error.details, ...context.details });
    return denial(context, denied);
  }
  return error;
}

/** The page view over an asynchronous access (worker round trips). */
export class AsyncMemoryView implements GuestMemory {
  readonly #access: MemoryAccess<Promise<Uint8Array>, Promise<void>>;
  readonly #context: ViewContext;
  #closed = false;

  /** A view of one instance's memory for one host call. */
  constructor(access: MemoryAccess<Promise<Uint8Array>, Promise<void>>, context: ViewContext) {
    this.#access = access;
    this.#context = context;
  }

  /** {@inheritDoc GuestMemory.signal} */
  get signal(): AbortSignal {
    return this.#context.signal;
  }

  /** Ends the view (its host call returned). */
  close(): void {
    this.#closed = true;
  }

  /** {@inheritDoc GuestMemory.read} */
  async read(ptr: number, len: number): Promise<Uint8Array> {
    const p = address(ptr, 'ptr');
    const n = address(len, 'len');
    const refused = refusal(this.#context, this.#closed, n);
    if (refused !== undefined) throw refused;
    // Reserved before the round trip, so concurrent accesses cannot pass the quota together.
    const refund = reserve(this.#context, n);
    try {
      return await this.#access.read(p, n);
    } catch (error) {
      refund();
      throw accessError(this.#context, error);
    }
  }

  /** {@inheritDoc GuestMemory.readString} */
  async readString(ptr: number, len: number): Promise<string> {
    return decoder.decode(await this.read(ptr, len));
  }

  /** {@inheritDoc GuestMemory.write} */
  async write(ptr: number, bytes: Uint8Array): Promise<void> {
    const p = address(ptr, 'ptr');
    if (!(bytes instanceof Uint8Array)) throw invalidArgument('bytes must be a Uint8Array');
    const refused = refusal(this.#context, this.#closed, bytes.length);
    if (refused !== undefined) throw refused;
    const refund = reserve(this.#context, bytes.length);
    try {
      await this.#access.write(p, bytes);
    } catch (error) {
      refund();
      throw accessError(this.#context, error);
    }
  }

  /** {@inheritDoc GuestMemory.writeString} */
  async writeString(ptr: number, text: string, maxBytes?: number): Promise<number> {
    if (typeof text !== 'string') throw invalidArgument('text must be a string');
    const bytes = encodeAtMost(text, maxBytes);
    await this.write(ptr, bytes);
    return bytes.length;
  }

  /** {@inheritDoc GuestMemory.size} */
  async size(): Promise<number> {
    const refused = refusal(this.#context, this.#closed, 0);
    if (refused !== undefined) throw refused;
    return this.#access.size();
  }
}

/** The local view over synchronous access (the core in this thread). */
export class SyncMemoryView implements SyncGuestMemory {
  readonly #access: MemoryAccess<Uint8Array, void>;
  readonly #context: ViewContext;
  #closed = false;

  /** A view of one instance's memory for one host call. */
  constructor(access: MemoryAccess<Uint8Array, void>, context: ViewContext) {
    this.#access = access;
    this.#context = context;
  }

  /** {@inheritDoc SyncGuestMemory.signal} */
  get signal(): AbortSignal {
    return this.#context.signal;
  }

  /** Ends the view (its host call returned). */
  close(): void {
    this.#closed = true;
  }

  /** Opens the view again for the next host call of its capability (views reused per call). */
  reopen(): void {
    this.#closed = false;
  }

  /** {@inheritDoc SyncGuestMemory.read} */
  read(ptr: number, len: number): Uint8Array {
    const p = address(ptr, 'ptr');
    const n = address(len, 'len');
    const refused = refusal(this.#context, this.#closed, n);
    if (refused !== undefined) throw refused;
    const refund = reserve(this.#context, n);
    try {
      return this.#access.read(p, n);
    } catch (error) {
      refund();
      throw accessError(this.#context, error);
    }
  }

  /** {@inheritDoc SyncGuestMemory.readString} */
  readString(ptr: number, len: number): string {
    return decoder.decode(this.read(ptr, len));
  }

  /** {@inheritDoc SyncGuestMemory.write} */
  write(ptr: number, bytes: Uint8Array): void {
    const p = address(ptr, 'ptr');
    if (!(bytes instanceof Uint8Array)) throw invalidArgument('bytes must be a Uint8Array');
    const refused = refusal(this.#context, this.#closed, bytes.length);
    if (refused !== undefined) throw refused;
    const refund = reserve(this.#context, bytes.length);
    try {
      this.#access.write(p, bytes);
    } catch (error) {
      refund();
      throw accessError(this.#context, error);
    }
  }

  /** {@inheritDoc SyncGuestMemory.writeString} */
  writeString(ptr: number, text: string, maxBytes?: number): number {
    if (typeof text !== 'string') throw invalidArgument('text must be a string');
    const bytes = encodeAtMost(text, maxBytes);
    this.write(ptr, bytes);
    return bytes.length;
  }

  /** {@inheritDoc SyncGuestMemory.size} */
  size(): number {
    const refused = refusal(this.#context, this.#closed, 0);
    if (refused !== undefined) throw refused;
    const size = this.#access.size();
    if (typeof size !== 'number') throw invalidArgument('internal: synchronous access returned a promise');
    return size;
  }
}
