/**
 * The synchronous fast path of `nestbox/worker`: a {@link syncCapability} granted to a local
 * instance is called by the interpreter itself, from inside the guest's call, with no
 * host-call step and no driver round.
 *
 * One {@link DirectHost} per instance, made once at instantiation: the core calls its
 * `hostCall(link, memoryBase, memoryBytes)` with numbers only; the arguments and results
 * cross through the core's scratch of 64-bit slots (a `Float64Array` and a `BigInt64Array`
 * over the same bytes); each link keeps one memory view, reopened for each of its calls and
 * closed when the function returns. The happy path makes no object per call (an `i64` is a
 * `BigInt`, as everywhere in the API).
 *
 * Everything else goes the way it always did: the host answers `SUSPEND`, the call suspends
 * with a `host` step marked `direct`, and the sandbox's driver finishes the work —
 * - before the function runs (a revoked capability, a quota reached, a cancelled call): the
 *   step path dispatches it as any host call, so denials are the same, audit entries
 *   included;
 * - after it ran (it threw, answered with a promise, answered values the fast path does not
 *   take, or the instance was disposed meanwhile): the verdict is *owed* ({@link
 *   DirectHost.takeOwed}), and the driver answers the step with it; the function never runs
 *   twice.
 *
 * While a synchronous capability runs, its sandbox's core is inside the guest's call: the
 * sandbox refuses to be used (`BUSY`, see {@link DirectGuard}) rather than re-enter it.
 *
 * @module
 */

import type { CoreDirectHost, CoreDirectSetup } from './nestbox.js';
import { entryOf, type CapabilityEntry, type Link } from './capability.js';
import { SandboxError, type ErrorDetails } from './errors.js';
import { awaited, isThenable, settled, threw, type HostVerdict } from './host.js';
import { SyncMemoryView, type MemoryAccess, type ViewContext } from './memory.js';
import { disposedError } from './resource.js';
import type { Value, ValueType } from './types.js';

/** `hostCall`'s answer: the results are in the scratch. */
const ANSWERED = 0;
/** `hostCall`'s answer: the call suspends with a `direct` host step. */
const SUSPEND = 1;

const I64_MIN = -(2n ** 63n);
const U64_MAX = 2n ** 64n - 1n;

/** Counts the synchronous capabilities running inside a sandbox's core (0: none). */
export interface DirectGuard {
  inside: number;
}

/** What the direct host needs of the call running on its instance. */
export interface DirectCall {
  /** Aborted when the call ends (cancelled, disposed). */
  readonly signal: AbortSignal;
  readonly deadline: number;
  readonly timeoutMs: number;
  /** Counts a denial of this call (a view's bounds or byte quota). */
  readonly deny: () => void;
  /** Whether the instance was disposed (by the capability itself, say). */
  readonly stopped: () => boolean;
}

/** One granted import as the direct host calls it. */
interface DirectLink {
  readonly entry: CapabilityEntry & { readonly kind: 'sync' };
  readonly import: string;
  readonly details: ErrorDetails;
  readonly view: SyncMemoryView;
}

/** A signal that never aborts: what a view sees between calls (it is closed then). */
const idle = new AbortController().signal;

/** The guest memory's place in the core's memory is outside it: never, by construction. */
function outOfBounds(ptr: number, len: number, size: number): SandboxError {
  return new SandboxError('TRAP', `guest range ptr=${ptr} len=${len} is outside linear memory of ${size} bytes`, {
    trapCode: 'memory_out_of_bounds',
  });
}

/** The direct host of one local instance (`CoreDirectHost`). */
export class DirectHost implements CoreDirectHost {
  readonly #memory: WebAssembly.Memory;
  readonly #scratch: number;
  readonly #slots: number;
  #f64: Float64Array;
  #i64: BigInt64Array;
  /** Whether any granted import is direct (otherwise the host is not needed). */
  readonly used: boolean;
  readonly #links: (DirectLink | undefined)[];
  readonly #guard: DirectGuard;
  /** Where the guest's memory is during the current host call. */
  #base = 0;
  #bytes = 0;
  #call: DirectCall | undefined;
  #owed: HostVerdict | Promise<HostVerdict> | undefined;

  /**
   * @param install installs the host in the core (`Core.setDirectHost`), returning its setup.
   * @param links the instance's links (tokens), matched to the core's by capability and import.
   */
  constructor(install: (host: CoreDirectHost) => CoreDirectSetup, links: readonly Link[], guard: DirectGuard) {
    const setup = install(this);
    this.#memory = setup.memory;
    this.#scratch = setup.scratch;
    this.#slots = setup.slots;
    this.#f64 = new Float64Array(this.#memory.buffer, this.#scratch, this.#slots);
    this.#i64 = new BigInt64Array(this.#memory.buffer, this.#scratch, this.#slots);
    this.#guard = guard;
    const access: MemoryAccess<Uint8Array, void> = {
      read: (ptr, len) => {
        if (ptr + len > this.#bytes) throw outOfBounds(ptr, len, this.#bytes);
        return new Uint8Array(this.#memory.buffer, this.#base + ptr, len).slice();
      },
      write: (ptr, bytes) => {
        if (ptr + bytes.length > this.#bytes) throw outOfBounds(ptr, bytes.length, this.#bytes);
        new Uint8Array(this.#memory.buffer, this.#base + ptr, bytes.length).set(bytes);
      },
      size: () => this.#bytes,
    };
    this.#links = setup.links.map(({ capability, import: name, direct }) => {
      const link = links.find((l) => l.capability === capability && l.import === name);
      if (!direct || link === undefined) return undefined;
      const entry = entryOf(link.token);
      if (entry.kind !== 'sync') return undefined;
      const details: ErrorDetails = { capability, import: name, capabilityName: entry.name };
      const host = this;
      const context: ViewContext = {
        entry,
        details,
        deny: () => host.#call?.deny(),
        get signal() {
          return host.#call?.signal ?? idle;
        },
      };
      const view = new SyncMemoryView(access, context);
      view.close();
      return { entry, import: name, details, view };
    });
    this.used = this.#links.some((l) => l !== undefined);
  }

  /** The call now running on the instance (`undefined`: none; every host call then steps). */
  begin(call: DirectCall): void {
    this.#call = call;
    this.#owed = undefined;
  }

  /** The call ended. */
  end(): void {
    this.#call = undefined;
    this.#owed = undefined;
  }

  /**
   * The verdict owed for a `direct` host step (its function already ran), taken; `undefined`
   * when the function did not run (the step is dispatched as any host call).
   */
  takeOwed(): HostVerdict | Promise<HostVerdict> | undefined {
    const owed = this.#owed;
    this.#owed = undefined;
    return owed;
  }

  /** Called by the core from inside the guest's call. Never throws. */
  hostCall(index: number, base: number, bytes: number): number {
    const link = this.#links[index];
    const call = this.#call;
    if (link === undefined || call === undefined) return SUSPEND;
    const entry = link.entry;
    // Denials and cancellation take the step path, which refuses them as it always did.
    if (entry.revoked || entry.calls >= entry.maxCalls || call.signal.aborted) return SUSPEND;
    entry.calls++;
    if (this.#f64.length === 0) {
      // nestbox's memory grew (its old buffer is detached): view the new one.
      this.#f64 = new Float64Array(this.#memory.buffer, this.#scratch, this.#slots);
      this.#i64 = new BigInt64Array(this.#memory.buffer, this.#scratch, this.#slots);
    }
    const params = entry.params;
    this.#base = base;
    this.#bytes = bytes;
    const view = link.view;
    view.reopen();
    const fn = entry.fn;
    let returned: unknown;
    this.#guard.inside++;
    try {
      switch (params.length) {
        case 0:
          returned = fn(view);
          break;
        case 1:
          returned = fn(view, this.#arg(params, 0));
          break;
        case 2:
          returned = fn(view, this.#arg(params, 0), this.#arg(params, 1));
          break;
        case 3:
          returned = fn(view, this.#arg(params, 0), this.#arg(params, 1), this.#arg(params, 2));
          break;
        default:
          returned = fn(view, ...params.map((_, i) => this.#arg(params, i)));
      }
    } catch (thrown) {
      view.close();
      this.#owed = threw(thrown, entry, link.import, link.details);
      return SUSPEND;
    } finally {
      this.#guard.inside--;
    }
    if (isThenable(returned)) {
      this.#owed = awaited(returned, entry, link.import, link.details, call, () => view.close());
      return SUSPEND;
    }
    view.close();
    if (call.signal.aborted) {
      this.#owed = { kind: 'cancelled' };
      return SUSPEND;
    }
    if (call.stopped()) {
      this.#owed = { kind: 'fail', error: disposedError('instance', `host function ${entry.name} (${link.import})`) };
      return SUSPEND;
    }
    const declared = entry.results;
    if (declared.length === 0) return ANSWERED;
    if (declared.length === 1 && !Array.isArray(returned)) {
      if (this.#put(0, declared[0], returned)) return ANSWERED;
    }
    // Anything else (several results, an array, values to convert): checked as on the step
    // path, then written; values the scratch does not take go to the core's own checks.
    const verdict = settled(returned, entry, link.import, link.details);
    if (verdict.kind === 'results' && verdict.results.every((v, i) => this.#put(i, declared[i], v))) return ANSWERED;
    this.#owed = verdict;
    return SUSPEND;
  }

  /** Argument `i` from the scratch, as its declared type reads. */
  #arg(params: readonly ValueType[], i: number): Value {
    return params[i] === 'i64' ? (this.#i64[i] ?? 0n) : (this.#f64[i] ?? 0);
  }

  /** Writes one result as its declared type takes it; false when it does not (as the core's check). */
  #put(i: number, type: ValueType | undefined, value: unknown): boolean {
    switch (type) {
      case 'i32':
        if (typeof value !== 'number' || !Number.isInteger(value) || value < -0x8000_0000 || value > 0xffff_ffff)
          return false;
        this.#f64[i] = value;
        return true;
      case 'i64':
        if (typeof value === 'bigint') {
          if (value < I64_MIN || value > U64_MAX) return false;
          this.#i64[i] = value; // wrapped to 64 bits, as the core wraps 2^63..2^64-1
          return true;
        }
        if (typeof value !== 'number' || !Number.isSafeInteger(value)) return false;
        this.#i64[i] = BigInt(value);
        return true;
      case 'f32':
      case 'f64':
        if (typeof value !== 'number') return false;
        this.#f64[i] = value;
        return true;
      default:
        return false;
    }
  }
}
