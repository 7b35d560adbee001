/**
 * Capabilities: host functions a guest may call, granted by name.
 *
 * A capability is an opaque, frozen token. The function behind it, its declared signature,
 * its quota and whether it was revoked live in a module-level `WeakMap` that nothing outside
 * this file can read; each sandbox maps the tokens it granted to small integer ids
 * ({@link CapabilityTable}), and only those ids cross to the worker and the core.
 *
 * @module
 */

import type { CoreGrant } from './nestbox.js';
import { announceRevoke } from './audit.js';
import { invalidArgument, SandboxError } from './errors.js';
import type { GuestMemory, SyncGuestMemory } from './memory.js';
import type { CapabilityToken, ImportsObject, Value, ValueType } from './types.js';

export type { CapabilityToken, ImportsObject };

/** Limits on one capability, across every sandbox and instance it is granted to. */
export interface CapabilityQuota {
  /** How many times guests may call it; the next call fails with `CAPABILITY_QUOTA`. */
  maxCalls?: number;
  /**
   * How many bytes its host function may move through the memory view (reads plus writes);
   * the access that would pass it is refused with `CAPABILITY_QUOTA`. Each access is charged
   * when it starts, before its round trip to the worker (and refunded if it fails), so
   * accesses in flight together — `Promise.all` of reads, or several instances calling the
   * capability at once — cannot pass it.
   */
  maxBytes?: number;
}

/** The JavaScript type of a WebAssembly value type: `i64` is `bigint`, the others `number`. */
export type JsValueOf<T extends ValueType> = T extends 'i64' ? bigint : number;

/** The arguments a host function gets for declared parameter types `P`. */
export type ArgsOf<P extends readonly ValueType[]> = { -readonly [K in keyof P]: JsValueOf<P[K]> };

/**
 * What a host function returns for declared result types `R`: nothing for `[]`, the value
 * (or a one-element array) for one result, an array for several.
 */
export type ResultOf<R extends readonly ValueType[]> = number extends R['length']
  ? HostResult
  : R extends readonly []
    ? void
    : R extends readonly [infer A extends ValueType]
      ? JsValueOf<A> | [JsValueOf<A>]
      : ArgsOf<R>;

/** The declared signature (checked by the core against the guest's import at link time). */
export interface CapabilityDeclaration<
  P extends readonly ValueType[] = readonly ValueType[],
  R extends readonly ValueType[] = readonly ValueType[],
> {
  /** Parameter types, in order. */
  params: P;
  /** Result types, in order. */
  results: R;
  /** Optional quota. */
  quota?: CapabilityQuota;
  /** A name for errors and details (default: the function's own name). */
  name?: string;
}

/** What a host function may return: nothing, one value, or an array for several results. */
export type HostResult = void | Value | readonly Value[];

/**
 * A host function for a page sandbox: gets the calling instance's memory view first, then
 * the guest's arguments (`i64` as `bigint`), typed by the declaration; may be async.
 */
export type HostFunction<
  P extends readonly ValueType[] = readonly ValueType[],
  R extends readonly ValueType[] = readonly ValueType[],
> = (memory: GuestMemory, ...args: ArgsOf<P>) => ResultOf<R> | PromiseLike<ResultOf<R>>;

/** A synchronous host function for a local sandbox (`nestbox/worker`), with a sync view. */
export type SyncHostFunction<
  P extends readonly ValueType[] = readonly ValueType[],
  R extends readonly ValueType[] = readonly ValueType[],
> = (memory: SyncGuestMemory, ...args: ArgsOf<P>) => ResultOf<R> | PromiseLike<ResultOf<R>>;

/** A host function as the table stores it (any declaration). */
type StoredFunction<M> = (memory: M, ...args: Value[]) => unknown;

/** One capability's private state. */
export type CapabilityEntry = {
  readonly name: string;
  readonly params: readonly ValueType[];
  readonly results: readonly ValueType[];
  readonly maxCalls: number;
  readonly maxBytes: number;
  calls: number;
  bytes: number;
  revoked: boolean;
} & (
  | { readonly kind: 'async'; readonly fn: StoredFunction<GuestMemory> }
  | { readonly kind: 'sync'; readonly fn: StoredFunction<SyncGuestMemory> }
);

const entries = new WeakMap<CapabilityToken, CapabilityEntry>();

/** The prototype of every token: only a tag for consoles. */
const tokenPrototype: object = Object.freeze(
  Object.create(null, { [Symbol.toStringTag]: { value: 'nestbox.Capability' } }),
);

const VALUE_TYPES: readonly string[] = ['i32', 'i64', 'f32', 'f64'];

function types(value: unknown, what: string): ValueType[] {
  if (!Array.isArray(value)) throw invalidArgument(`${what} must be an array of value types`);
  return value.map((t, i) => {
    if (typeof t !== 'string' || !VALUE_TYPES.includes(t)) {
      throw invalidArgument(`${what}[${i}] must be "i32", "i64", "f32" or "f64", got ${String(t)}`);
    }
    return t as ValueType;
  });
}

function quotaField(value: unknown, what: string): number {
  if (value === undefined) return Infinity;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalidArgument(`${what} must be a non-negative integer, got ${String(value)}`);
  }
  return value;
}

/** Makes a token of either kind (the public factories check `fn` and `decl`). */
export function makeCapability(
  kind: 'async' | 'sync',
  fn: StoredFunction<GuestMemory> | StoredFunction<SyncGuestMemory>,
  decl: CapabilityDeclaration,
): CapabilityToken {
  if (typeof fn !== 'function') throw invalidArgument('capability: fn must be a function');
  if (typeof decl !== 'object' || decl === null) {
    throw invalidArgument('capability: the declaration {params, results} is required');
  }
  const known = ['params', 'results', 'quota', 'name'];
  for (const key of Object.keys(decl)) {
    if (!known.includes(key)) throw invalidArgument(`capability: unknown declaration field ${JSON.stringify(key)}`);
  }
  const quota: unknown = decl.quota ?? {};
  if (typeof quota !== 'object' || quota === null) throw invalidArgument('capability: quota must be an object');
  for (const key of Object.keys(quota)) {
    if (key !== 'maxCalls' && key !== 'maxBytes') {
      throw invalidArgument(`capability: unknown quota field ${JSON.stringify(key)}`);
    }
  }
  const { maxCalls, maxBytes } = quota as CapabilityQuota;
  const name = decl.name ?? (fn.name || 'anonymous');
  if (typeof name !== 'string') throw invalidArgument('capability: name must be a string');
  const common = {
    name,
    params: Object.freeze(types(decl.params, 'capability: params')),
    results: Object.freeze(types(decl.results, 'capability: results')),
    maxCalls: quotaField(maxCalls, 'capability: quota.maxCalls'),
    maxBytes: quotaField(maxBytes, 'capability: quota.maxBytes'),
    calls: 0,
    bytes: 0,
    revoked: false,
  };
  const entry: CapabilityEntry =
    kind === 'async'
      ? { ...common, kind, fn: fn as StoredFunction<GuestMemory> }
      : { ...common, kind, fn: fn as StoredFunction<SyncGuestMemory> };
  // An empty, frozen object: nothing about `fn` is reachable from the token itself.
  const token = Object.freeze(Object.create(tokenPrototype) as CapabilityToken);
  entries.set(token, entry);
  return token;
}

/**
 * Makes a capability: a host function the page can grant to guests by name.
 *
 * ```ts
 * const log = capability(async (mem, ptr, len) => console.log(await mem.readString(ptr, len)),
 *                        { params: ['i32', 'i32'], results: [] });
 * await sandbox.instantiate(mod, { imports: { env: { log } } });
 * ```
 *
 * The same token may be granted to any number of instances and sandboxes; its quota and
 * {@link revoke} apply to all of them.
 *
 * @throws TypeError (`INVALID_ARGUMENT`) for a malformed declaration.
 */
export function capability<const P extends readonly ValueType[], const R extends readonly ValueType[]>(
  fn: HostFunction<P, R>,
  decl: CapabilityDeclaration<P, R>,
): CapabilityToken {
  // The declaration types the function's arguments; the table checks them at run time.
  return makeCapability('async', fn as unknown as StoredFunction<GuestMemory>, decl);
}

/**
 * Revokes a capability everywhere: every later call of it by any guest fails that guest
 * call with `CAPABILITY_REVOKED`, and it can no longer be granted. Cannot be undone. Every
 * live sandbox that granted it records a `revoke` entry in its audit log (once: revoking
 * again changes nothing).
 *
 * @throws TypeError if `token` is not a capability.
 */
export function revoke(token: CapabilityToken): void {
  const entry = entryOf(token);
  if (entry.revoked) return;
  entry.revoked = true;
  announceRevoke(token, entry.name);
}

/** Whether `token` was revoked. */
export function isRevoked(token: CapabilityToken): boolean {
  return entryOf(token).revoked;
}

/** The private state of a token. @throws TypeError if `token` is not one. */
export function entryOf(token: unknown): CapabilityEntry {
  const entry = typeof token === 'object' && token !== null ? entries.get(token as CapabilityToken) : undefined;
  if (entry === undefined) throw invalidArgument('not a capability token (make one with capability())');
  return entry;
}

/** How an instance's import is linked: the import, its sandbox-local id and its token. */
export interface Link {
  readonly import: string;
  readonly capability: number;
  readonly token: CapabilityToken;
}

/**
 * One sandbox's capability ids: each token it grants gets a small id (from 1, never reused
 * within the sandbox). The worker and the core only ever see these ids.
 */
export class CapabilityTable {
  readonly #ids = new Map<CapabilityToken, number>();
  #next = 1;

  /** The id `token` has in this sandbox, if it was ever linked here. */
  granted(token: object): number | undefined {
    return this.#ids.get(token as CapabilityToken);
  }

  /** The id of `token` in this sandbox, assigning one on first use. */
  idOf(token: CapabilityToken): number {
    let id = this.#ids.get(token);
    if (id === undefined) {
      id = this.#next++;
      this.#ids.set(token, id);
    }
    return id;
  }

  /**
   * The grants for the core and the links for host dispatch, from an imports object.
   *
   * @param allowSync whether synchronous capabilities may be granted (local sandboxes only).
   * @throws TypeError for a malformed imports object, a non-token, or a sync capability on
   *   the page; `CAPABILITY_REVOKED` for a revoked one.
   */
  link(imports: unknown, allowSync: boolean): { grants: CoreGrant[]; links: Link[] } {
    const grants: CoreGrant[] = [];
    const links: Link[] = [];
    if (imports === undefined) return { grants, links };
    if (typeof imports !== 'object' || imports === null || Array.isArray(imports)) {
      throw invalidArgument('imports must be an object { [module]: { [name]: capability } }');
    }
    for (const [module, names] of Object.entries(imports)) {
      if (typeof names !== 'object' || names === null || Array.isArray(names)) {
        throw invalidArgument(`imports.${module} must be an object { [name]: capability }`);
      }
      for (const [name, token] of Object.entries(names as Record<string, unknown>)) {
        const qualified = `${module}.${name}`;
        let entry: CapabilityEntry;
        try {
          entry = entryOf(token);
        } catch {
          throw invalidArgument(`imports.${qualified} is not a capability token (make one with capability())`);
        }
        if (entry.kind === 'sync' && !allowSync) {
          throw invalidArgument(
            `imports.${qualified}: a synchronous capability (syncCapability) can only be granted in createLocalSandbox`,
          );
        }
        const tokenObject = token as CapabilityToken;
        const id = this.idOf(tokenObject);
        if (entry.revoked) {
          throw new SandboxError('CAPABILITY_REVOKED', `capability ${entry.name} (${qualified}) was revoked`, {
            capability: id,
            import: qualified,
            capabilityName: entry.name,
          });
        }
        const grant: CoreGrant = {
          module,
          name,
          capability: id,
          params: [...entry.params],
          results: [...entry.results],
        };
        // A synchronous capability in a local sandbox is answered from inside the guest's call.
        if (entry.kind === 'sync') grant.direct = true;
        grants.push(grant);
        links.push({ import: qualified, capability: id, token: tokenObject });
      }
    }
    return { grants, links };
  }
}
