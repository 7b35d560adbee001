/**
 * {@link Resource}: the base of every disposable public class (sandboxes, modules, instances,
 * worker pools, tenant pools and sandboxes, local ones too), and {@link disposedError}, the
 * one place a `DISPOSED` error is made.
 *
 * @module
 */

import { SandboxError } from './errors.js';

/**
 * The `DISPOSED` error for a `what` (`"sandbox"`, `"module"`, …) that was disposed, `during`
 * an operation when it was disposed while that ran.
 */
export function disposedError(what: string, during?: string): SandboxError {
  return new SandboxError('DISPOSED', `the ${what} was disposed${during === undefined ? '' : ` during ${during}`}`);
}

/**
 * Something to dispose: `dispose()` (or `using`, `[Symbol.dispose]`) releases it once —
 * calling it again does nothing — and its methods then throw `DISPOSED`.
 */
export abstract class Resource implements Disposable {
  #disposed = false;

  /** Releases what it holds; later calls do nothing. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.release();
  }

  /** Same as {@link dispose}: `using x = …`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** What {@link dispose} does, once. */
  protected abstract release(): void;
}
