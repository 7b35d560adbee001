/**
 * Sandboxes that were garbage-collected without `dispose()`.
 *
 * A sandbox owns a worker (a thread and nestbox's wasm memory, which never shrinks) that
 * lives until it is terminated: dropping the last reference to a `Sandbox` does not end it.
 * A `FinalizationRegistry` notices such a sandbox once the collector does (if ever — the
 * language promises nothing), warns with `console.warn`, tells the listeners added with
 * {@link onSandboxLeak}, and disposes it then, so the worker is terminated after all.
 *
 * Its modules and instances keep their sandbox reachable, so a sandbox still in use through
 * them is never collected.
 *
 * @module
 */

import { invalidArgument } from './errors.js';
import { report } from './platform.js';

/** What {@link onSandboxLeak} listeners are told. */
export interface SandboxLeak {
  /** The warning that was printed. */
  readonly message: string;
  /** Calls the sandbox started over its lifetime. */
  readonly calls: number;
  /** Audit entries its log held. */
  readonly auditEntries: number;
}

/** What the registry holds for a sandbox: never the sandbox itself. */
export interface Collectable {
  readonly disposed: boolean;
  dispose(): void;
  leakInfo(): Omit<SandboxLeak, 'message'>;
}

const listeners = new Set<(leak: SandboxLeak) => void>();

const registry =
  typeof FinalizationRegistry === 'function'
    ? new FinalizationRegistry<Collectable>((held) => {
        if (held.disposed) return;
        const message =
          'nestbox: a Sandbox was garbage-collected without dispose(); its worker was still running and is terminated now. Call sandbox.dispose() (or `using`) when you are done with it.';
        const info = held.leakInfo();
        held.dispose();
        console.warn(message);
        for (const listener of [...listeners]) {
          try {
            listener({ message, ...info });
          } catch (error) {
            report(error);
          }
        }
      })
    : undefined;

/** Watches `target` (a public sandbox object); `held` must not reference it. */
export function watchForLeak(target: object, held: Collectable): void {
  registry?.register(target, held, held);
}

/** Stops watching (on dispose). */
export function unwatchLeak(held: Collectable): void {
  registry?.unregister(held);
}

/**
 * Calls `listener` whenever a sandbox is found garbage-collected without `dispose()` (after
 * the `console.warn`). Returns a function that removes the listener. For tests and
 * monitoring; timing is up to the garbage collector.
 */
export function onSandboxLeak(listener: (leak: SandboxLeak) => void): () => void {
  if (typeof listener !== 'function') throw invalidArgument('onSandboxLeak: listener must be a function');
  listeners.add(listener);
  return () => listeners.delete(listener);
}
