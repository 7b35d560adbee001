/**
 * The trust policy's page side: the `policy` option (checked here for shape, by the core for
 * every value), load options with a signature and an origin, and the origin a module's bytes
 * actually came from.
 *
 * The core decides (allowlist, origins bound to digests, Ed25519 signatures over the digest,
 * the deny list) and logs every decision; the page only says where the bytes came from. When
 * the page fetched them (a URL, a string or a `Response`), the origin is that of the URL they
 * were finally served from (after redirects), so a caller cannot claim another one: an
 * explicit `origin` that disagrees is a TypeError. For bytes, the explicit `origin` is all
 * the core knows.
 *
 * @module
 */

import type { CorePolicy, CoreProvenance } from './nestbox.js';
import { invalidArgument, SandboxError } from './errors.js';
import { engineOf, onlyFields } from './options.js';
import { isNode, readFileUrl } from './platform.js';
import type { Engine, LoadOptions, ModuleSourceLike } from './types.js';

/**
 * Which code a sandbox may load. Every field is optional; a sandbox without a policy loads
 * any module whose integrity checks out. Unknown fields, malformed digests, keys or origins
 * are a TypeError (`INVALID_ARGUMENT`): a typo never silently means "allow".
 */
export interface TrustPolicy {
  /** If not empty, only these digests (`sha256-<base64>` or hex) may load (`POLICY_DENIED`). */
  allowedDigests?: readonly string[];
  /**
   * Origin (`https://cdn.example`, as `URL.origin` gives it) → the digests that may be loaded
   * from it. When set, a module from an origin not listed, from a listed origin with another
   * digest, or of unknown origin is `POLICY_DENIED`.
   */
  origins?: Readonly<Record<string, readonly string[]>>;
  /** Ed25519 public keys (base64 or hex) whose signatures are trusted, by key id. */
  keys?: readonly { id: string; publicKey: string }[];
  /** Every module must carry a valid signature by one of `keys` (`SIGNATURE_INVALID`). */
  requireSignature?: boolean;
  /**
   * A module that failed integrity or whose signature was given and failed (malformed,
   * unknown key, not verifying) is denied for the life of the sandbox, even with a good
   * signature later (`POLICY_DENIED`). A missing signature is refused but not denied: the
   * caller may retry with one. Default true.
   */
  denyAfterFailure?: boolean;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `value` as an origin (`scheme://host[:port]`), or a TypeError naming `what`. */
export function originOf(value: unknown, what: string): string {
  if (typeof value !== 'string') throw invalidArgument(`${what} must be a string such as "https://cdn.example"`);
  let origin: string;
  try {
    origin = new URL(value).origin;
  } catch {
    origin = 'null';
  }
  if (origin === 'null' || origin !== value) {
    throw invalidArgument(
      `${what} ${JSON.stringify(value)} is not an origin: expected scheme://host[:port] as URL.origin gives it` +
        (origin !== 'null' ? ` (${JSON.stringify(origin)})` : ''),
    );
  }
  return origin;
}

/** The checked `policy` option, as the core takes it (`undefined`: permissive). */
export function corePolicy(policy: unknown): CorePolicy | undefined {
  if (policy === undefined) return undefined;
  if (!isObject(policy)) throw invalidArgument('policy must be an object');
  onlyFields(policy, ['allowedDigests', 'origins', 'keys', 'requireSignature', 'denyAfterFailure'], 'policy');
  const origins = policy['origins'];
  if (origins !== undefined) {
    if (!isObject(origins)) throw invalidArgument('policy.origins must be an object { [origin]: digests }');
    for (const key of Object.keys(origins)) originOf(key, 'policy.origins key');
  }
  // The core checks every value (digests, keys, types) and refuses what it cannot use.
  return { ...(policy as CorePolicy) };
}

/** Checked load options: the integrity, and the provenance given by the caller. */
export function loadOptionsOf(options: unknown): {
  integrity: string;
  signature: string | undefined;
  origin: string | undefined;
  engine: Engine | undefined;
} {
  if (!isObject(options)) throw invalidArgument('load options {integrity} are required');
  onlyFields(options, ['integrity', 'signature', 'origin', 'engine'], 'load options');
  const { integrity, signature, origin, engine } = options as Partial<LoadOptions>;
  if (typeof integrity !== 'string') {
    throw invalidArgument('load options: integrity ("sha256-<base64>" or 64 hex digits) is required');
  }
  if (signature !== undefined && typeof signature !== 'string') {
    throw invalidArgument('load options: signature must be a string "<key id>:<base64>"');
  }
  return {
    integrity,
    signature,
    origin: origin === undefined ? undefined : originOf(origin, 'load options: origin'),
    engine: engineOf(engine, 'load options: engine'),
  };
}

/**
 * In Node, a `file:` URL (a `URL`, or a string that is one) is read with `fs` — Node's
 * `fetch` refuses them — with no origin (a file has none). `undefined` for anything else.
 */
async function readLocal(source: URL | string): Promise<Uint8Array | undefined> {
  let url: URL;
  try {
    url = source instanceof URL ? source : new URL(source);
  } catch {
    return undefined; // relative: fetch resolves it against the page
  }
  if (url.protocol !== 'file:' || !isNode()) return undefined;
  try {
    return await readFileUrl(url);
  } catch (error) {
    throw new SandboxError(
      'INVALID_MODULE',
      `reading the module failed: ${String(error)} (${url.href})`,
      { url: url.href },
      { cause: error },
    );
  }
}

/**
 * The bytes of a module source (a private copy) and, when the page fetched them, the origin
 * they were served from (`undefined` for bytes, for a `Response` without a URL, and for
 * opaque origins such as `data:`). A response that is not `ok`, or no response (a network
 * error), is `INVALID_MODULE`; in Node a `file:` URL is read from disk.
 */
export async function fetchModule(
  source: ModuleSourceLike,
): Promise<{ bytes: Uint8Array; origin: string | undefined }> {
  if (source instanceof Uint8Array) return { bytes: source.slice(), origin: undefined };
  if (source instanceof ArrayBuffer) return { bytes: new Uint8Array(source.slice(0)), origin: undefined };
  let response: Response;
  if (source instanceof Response) response = source;
  else if (source instanceof URL || typeof source === 'string') {
    const local = await readLocal(source);
    if (local !== undefined) return { bytes: local, origin: undefined };
    try {
      response = await fetch(source);
    } catch (error) {
      // A network error, a refused URL (CORS, CSP, a relative path in Node): no response at all.
      throw new SandboxError(
        'INVALID_MODULE',
        `fetching the module failed: ${String(error)} (${String(source)})`,
        { url: String(source) },
        { cause: error },
      );
    }
  } else throw invalidArgument('module source must be a Uint8Array, an ArrayBuffer, a Response, a URL or a string');
  if (!response.ok) {
    throw new SandboxError(
      'INVALID_MODULE',
      `fetching the module failed: HTTP ${response.status} from ${response.url}`,
      {
        status: response.status,
        url: response.url,
      },
    );
  }
  let origin: string | undefined;
  if (response.url !== '') {
    const o = new URL(response.url).origin;
    origin = o === 'null' ? undefined : o;
  }
  return { bytes: new Uint8Array(await response.arrayBuffer()), origin };
}

/**
 * The provenance the core gets: the origin the page observed (an explicit one must agree
 * with it) or the explicit one for bytes, and the signature.
 *
 * @throws TypeError when `explicit` disagrees with where the bytes were fetched from.
 */
export function provenanceOf(
  explicit: string | undefined,
  fetched: string | undefined,
  signature: string | undefined,
): CoreProvenance {
  if (explicit !== undefined && fetched !== undefined && explicit !== fetched) {
    throw invalidArgument(
      `load options: origin ${JSON.stringify(explicit)} disagrees with ${JSON.stringify(fetched)}, where the module was fetched from`,
      { origin: explicit, fetchedFrom: fetched },
    );
  }
  const provenance: CoreProvenance = {};
  const origin = fetched ?? explicit;
  if (origin !== undefined) provenance.origin = origin;
  if (signature !== undefined) provenance.signature = signature;
  return provenance;
}
