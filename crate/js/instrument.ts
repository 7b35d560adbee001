/**
 * The one entry to the native tier's instrumentation pass from JavaScript (the core's
 * `loadNative`: `load`'s checks and audit entries, then the pass with the sandbox's limits).
 * Kept alone in this module so that the pass can move to a second, lazily loaded wasm
 * without touching its callers.
 *
 * @module
 */

import type { Core, CoreModule, CoreProvenance } from './nestbox.js';

/** A module loaded for the native tier: the core's record and the instrumented bytes. */
export interface InstrumentedModule {
  module: CoreModule;
  bytes: Uint8Array;
}

/**
 * Verifies `bytes` exactly as the interpreter's load does (size, SHA-256 against
 * `integrity`, deny list, trust policy and signature, module shape, validation, audit
 * entries), then instruments them. Throws the core's error record.
 */
export function instrumentGuest(
  core: Core,
  bytes: Uint8Array,
  integrity: string,
  provenance: CoreProvenance | undefined,
): InstrumentedModule {
  return core.loadNative(bytes, integrity, provenance);
}
