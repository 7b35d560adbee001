/**
 * The audit log on the page: {@link AuditTrail} (one sandbox's authoritative copy),
 * {@link verifyAuditLog} (the core's own verifier, run in this thread), and the check of
 * entries arriving from the worker.
 *
 * The core appends entries (policy decisions, loads, instantiations, grants, calls, denials,
 * limits, disposals) to its hash-chained log; the worker forwards each new entry to the page
 * before the next message it sends, so entries reach the page — and `onAudit` — in order,
 * before the reply of the request that caused them. The page keeps them: when the worker is
 * replaced (crash, watchdog, recycling) the log is not lost.
 *
 * A new worker means a new core, whose chain starts again at `seq` 0. The page records, as
 * the new chain's first entry, a link to the last entry it holds (`event: "dispose"`,
 * `extra.segment: "worker_replaced"`, `extra.previousHead`), so the log is a sequence of
 * *segments* and one head hash still covers all of it: `verifyAuditLog` checks each segment
 * with the core's verifier and each link (see `crate/src/bindings/audit.rs`).
 *
 * @module
 */

import type { CoreAuditEntry, CoreAuditEvent, CoreAuditRecord, CoreVerifyResult } from './nestbox.js';
import { AUDIT_EVENTS, ERROR_CODES } from './constants.js';
import { invalidArgument, SandboxError } from './errors.js';
import { coreWasm, report } from './platform.js';
import { sha256Hex } from './sha256.js';

/** What happened, in an {@link AuditEntry}. */
export type AuditEvent = CoreAuditEvent;

/**
 * One entry of a sandbox's audit log, with exactly the fields of its JSON line: `seq` (from
 * 0 in each segment), `time` (ms since the epoch), `event`, `moduleSha256`, `export`,
 * `outcome` (`"ok"` or an error code), `fuel`, `extra` (argument and result digests,
 * capability, origin, key id, …; `source: "page"` for events the page recorded), `prev` and
 * `hash` (`SHA-256(prev ‖ canonical entry)`, hex).
 */
export type AuditEntry = Readonly<CoreAuditEntry>;

/** What {@link verifyAuditLog} says: `index` is the first entry that does not verify. */
export type AuditVerifyResult = CoreVerifyResult;

/** `prev` of the first entry of a chain. */
export const GENESIS = '0'.repeat(64);

const EVENTS: readonly string[] = AUDIT_EVENTS;
const HEX64 = /^[0-9a-f]{64}$/;

function isDict(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether `value` has the shape of an entry (the page checks what the worker sends). */
export function isAuditEntry(value: unknown): value is CoreAuditEntry {
  if (!isDict(value)) return false;
  const { seq, time, event, outcome, prev, hash, moduleSha256, fuel, extra } = value;
  const optionalString = (v: unknown): boolean => v === undefined || typeof v === 'string';
  return (
    Number.isSafeInteger(seq) &&
    (seq as number) >= 0 &&
    Number.isSafeInteger(time) &&
    typeof event === 'string' &&
    EVENTS.includes(event) &&
    typeof outcome === 'string' &&
    typeof prev === 'string' &&
    HEX64.test(prev) &&
    typeof hash === 'string' &&
    HEX64.test(hash) &&
    optionalString(moduleSha256) &&
    optionalString(value['export']) &&
    (fuel === undefined || Number.isSafeInteger(fuel)) &&
    (extra === undefined || (isDict(extra) && Object.values(extra).every((v) => typeof v === 'string')))
  );
}

/** Code-point order, which is the byte order of UTF-8 (Rust's `BTreeMap<String, _>`). */
function byCodePoint(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = (x[i] as string).codePointAt(0)! - (y[i] as string).codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * The canonical text of an entry that its hash covers, exactly as the core writes it
 * (`AuditEntry::canonical` in `crate/src/audit.rs`): JSON without `hash`, fields in a fixed
 * order, absent optional fields left out, `extra` sorted by key, no whitespace.
 */
export function canonicalEntry(entry: CoreAuditEntry): string {
  const parts = [`"seq":${entry.seq}`, `"time":${entry.time}`, `"event":${JSON.stringify(entry.event)}`];
  if (entry.moduleSha256 !== undefined) parts.push(`"moduleSha256":${JSON.stringify(entry.moduleSha256)}`);
  if (entry.export !== undefined) parts.push(`"export":${JSON.stringify(entry.export)}`);
  parts.push(`"outcome":${JSON.stringify(entry.outcome)}`);
  if (entry.fuel !== undefined) parts.push(`"fuel":${entry.fuel}`);
  const extra = Object.entries(entry.extra ?? {}).sort(([a], [b]) => byCodePoint(a, b));
  if (extra.length > 0) {
    parts.push(`"extra":{${extra.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  }
  parts.push(`"prev":${JSON.stringify(entry.prev)}`);
  return `{${parts.join(',')}}`;
}

const encoder = new TextEncoder();

/** `SHA-256(prev ‖ canonical entry)` in hex, recomputed from the entry's fields (as the core does). */
export function entryHash(entry: CoreAuditEntry): string {
  return sha256Hex(encoder.encode(entry.prev + canonicalEntry(entry)));
}

const OUTCOMES: readonly string[] = ['ok', ...ERROR_CODES];

type CoreClass = typeof import('./nestbox.js').Core;
let verifier: Promise<CoreClass> | undefined;

/**
 * nestbox's own wasm in this thread, loaded on first use (only for verification: no guest
 * runs here). Loading again after a failure is allowed.
 */
function coreClass(): Promise<CoreClass> {
  verifier ??= import('./nestbox.js').then(
    async (glue) => {
      await glue.default(coreWasm());
      return glue.Core;
    },
    (error: unknown) => {
      verifier = undefined;
      throw error;
    },
  );
  return verifier;
}

/**
 * Verifies an exported audit log — JSON Lines text (`sandbox.audit.toJSONL()`) or entries
 * (`sandbox.audit.entries()`) — with the core's verifier: every hash recomputed, every `prev`
 * and `seq` checked, worker-replacement segments checked by their links, and, given `head`
 * (the hash you kept somewhere the log's holder cannot write), that nothing was removed from
 * the end. Resolves `{ ok: true }` or `{ ok: false, index, reason }` (`index` = the first
 * entry that does not verify; the number of entries when only the head disagrees).
 *
 * Loads nestbox's wasm in the calling thread on first use (no guest runs there).
 *
 * @throws TypeError (`INVALID_ARGUMENT`) when `log` is neither text nor an array, or `head`
 *   is not a string; `WORKER_CRASHED` when nestbox's wasm cannot be loaded here.
 */
export async function verifyAuditLog(
  log: string | readonly AuditEntry[] | readonly string[],
  head?: string,
): Promise<AuditVerifyResult> {
  if (typeof log !== 'string' && !Array.isArray(log)) {
    throw invalidArgument('verifyAuditLog: the log must be JSON Lines text or an array of entries');
  }
  if (head !== undefined && typeof head !== 'string') throw invalidArgument('verifyAuditLog: head must be a string');
  let Core: CoreClass;
  try {
    Core = await coreClass();
  } catch (error) {
    throw new SandboxError(
      'WORKER_CRASHED',
      `verifyAuditLog: nestbox's own wasm could not be loaded in this thread: ${String(error)}`,
      { reason: String(error) },
      { cause: error },
    );
  }
  try {
    return Core.verifyAudit(log as string | CoreAuditEntry[], head);
  } catch (thrown) {
    const message = isDict(thrown) && typeof thrown['message'] === 'string' ? thrown['message'] : String(thrown);
    throw invalidArgument(`verifyAuditLog: ${message}`);
  }
}

/** A sandbox's audit log (`sandbox.audit`). */
export interface SandboxAudit {
  /**
   * Every entry so far, oldest first, across worker replacements (each new worker's entries
   * start again at `seq` 0 after a link entry). Waits for the entries of everything the
   * sandbox did before the call; after `dispose()` (or when the worker is gone), the copy the
   * page holds.
   */
  entries(): Promise<AuditEntry[]>;
  /** The hash of the newest entry: keep it where the log's holder cannot write, to detect truncation later. */
  head(): Promise<string>;
  /** The log as JSON Lines, for `nestbox audit verify FILE --head HASH` (one segment) or {@link verifyAuditLog}. */
  toJSONL(): Promise<string>;
  /** {@link verifyAuditLog} of {@link entries}, against `head` if given. */
  verify(head?: string): Promise<AuditVerifyResult>;
}

/** The `sandbox.audit` object over `trail`, after `sync` (which waits for entries in flight). */
export function sandboxAudit(trail: AuditTrail, sync: () => Promise<void>): SandboxAudit {
  return Object.freeze({
    entries: async () => (await sync(), trail.entries()),
    head: async () => (await sync(), trail.head()),
    toJSONL: async () => (await sync(), trail.toJSONL()),
    verify: async (head?: string) => {
      await sync();
      return verifyAuditLog(trail.entries(), head);
    },
  });
}

/** Why the worker was replaced, for the link entry of the next segment. */
export interface SegmentBreak {
  readonly reason: string;
  /** False when the page replaced a healthy worker on purpose (recycling). */
  readonly crashed: boolean;
}

/** One sandbox's audit log as the page holds it (authoritative: it outlives workers). */
export class AuditTrail {
  readonly #entries: AuditEntry[] = [];
  /** Index in `#entries` where the current worker's segment begins. */
  #segmentStart = 0;
  #break: SegmentBreak | undefined;
  readonly #listener: ((entry: AuditEntry) => void) | undefined;
  /** Modules that failed integrity or their signature: denied again in a new worker. */
  readonly #denied = new Set<string>();

  constructor(listener: ((entry: AuditEntry) => void) | undefined) {
    this.#listener = listener;
  }

  /** Every entry so far (a copy). */
  entries(): AuditEntry[] {
    return [...this.#entries];
  }

  /**
   * Digests of modules that failed integrity (the bytes received) or their signature in any
   * worker so far, for the deny list of the next one (the core ignores them when its policy
   * does not deny after failure).
   */
  denied(): string[] {
    return [...this.#denied];
  }

  /** The hash of the newest entry ({@link GENESIS} when there is none). */
  head(): string {
    return this.#entries.at(-1)?.hash ?? GENESIS;
  }

  /** The log as JSON Lines. */
  toJSONL(): string {
    return this.#entries.map((e) => JSON.stringify(e) + '\n').join('');
  }

  /**
   * Appends entries sent by the current worker, after checking that each is well formed,
   * has the hash of its own contents (recomputed here) and continues the chain; hands each
   * to the listener. Returns what is wrong when they do not (a protocol
   * violation: the worker lost, forged or reordered entries), keeping none of them.
   */
  receive(batch: readonly unknown[]): string | undefined {
    let expectedSeq = this.#entries.length - this.#segmentStart;
    let expectedPrev = expectedSeq === 0 ? GENESIS : this.head();
    for (const [i, entry] of batch.entries()) {
      if (!isAuditEntry(entry)) return `audit entry ${i} of a batch is malformed`;
      if (!OUTCOMES.includes(entry.outcome)) return `audit entry seq ${entry.seq}: unknown outcome`;
      if (entry.seq !== expectedSeq || entry.prev !== expectedPrev) {
        return `audit entry seq ${entry.seq} does not continue the chain (expected seq ${expectedSeq})`;
      }
      // The worker is not trusted with the chain: every hash is recomputed here.
      if (entryHash(entry) !== entry.hash) {
        return `audit entry seq ${entry.seq}: its hash does not match its contents (tampered)`;
      }
      if (entry.seq === 0 && this.#segmentStart > 0 && entry.extra?.['previousHead'] !== this.head()) {
        return 'the new worker did not start its audit log with the link to the previous one';
      }
      expectedSeq++;
      expectedPrev = entry.hash;
    }
    for (const entry of batch as CoreAuditEntry[]) {
      // The core marks the entries where it put a digest on its deny list (a failed integrity
      // check or a given signature that failed, when the policy denies after failure).
      if (entry.extra?.['denied'] === 'true' && entry.moduleSha256 !== undefined) {
        this.#denied.add(entry.moduleSha256);
      }
      const frozen: AuditEntry = Object.freeze({
        ...entry,
        ...(entry.extra ? { extra: Object.freeze({ ...entry.extra }) } : {}),
      });
      this.#entries.push(frozen);
      if (this.#listener !== undefined) {
        try {
          this.#listener(frozen);
        } catch (error) {
          // A failing listener must not break the sandbox (nor hide later entries from it).
          report(error);
        }
      }
    }
    return undefined;
  }

  /** The worker was replaced: the next entries start a new segment. */
  restarted(why: SegmentBreak): void {
    this.#segmentStart = this.#entries.length;
    this.#break = why;
  }

  /**
   * The record a new core must append first to link its chain to this log, or `undefined`
   * when there is nothing to link to (no entries yet) or the segment already has entries.
   */
  seed(): CoreAuditRecord | undefined {
    if (this.#entries.length === 0 || this.#segmentStart !== this.#entries.length) return undefined;
    const why = this.#break ?? { reason: 'worker replaced', crashed: true };
    const last = this.#entries[this.#entries.length - 1];
    return {
      event: 'dispose',
      outcome: why.crashed ? 'WORKER_CRASHED' : 'ok',
      extra: {
        segment: 'worker_replaced',
        previousHead: this.head(),
        previousSeq: String(last?.seq ?? 0),
        reason: why.reason.slice(0, 1000),
      },
    };
  }
}

// ---- revoke() reaches every sandbox that granted the token ----

/** A sandbox that records revocations of the tokens it granted. */
export interface RevokeListener {
  /** Called once per token revoked (its first `revoke`). */
  revoked(token: object, name: string): void;
}

const revokeListeners = new Set<RevokeListener>();

/** Adds a listener (a live sandbox); removed when it is disposed. */
export function listenForRevokes(listener: RevokeListener): () => void {
  revokeListeners.add(listener);
  return () => revokeListeners.delete(listener);
}

/** Tells every live sandbox that `token` was revoked. */
export function announceRevoke(token: object, name: string): void {
  for (const listener of [...revokeListeners]) {
    try {
      listener.revoked(token, name);
    } catch (error) {
      report(error);
    }
  }
}
