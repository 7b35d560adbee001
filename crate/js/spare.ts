/**
 * One worker started in advance: while a page has a sandbox in a dedicated worker, a second
 * worker of the same kind (same `workerUrl` and watchdog grace) is started and booted in the
 * background, so the next `createSandbox` adopts a worker that is already running instead of
 * waiting for the browser to start one (most of a later sandbox's cold start).
 *
 * A spare has run nothing: it is a fresh worker with nestbox's core and no guest, exactly
 * what a new sandbox would have started itself, so adopting it shares no state with any
 * sandbox. It is taken by one sandbox only; a new spare starts once that sandbox is open.
 * A spare that failed or was replaced before it was taken is discarded (the new sandbox
 * starts its own, and its counters start at zero). When the last sandbox of its kind is
 * disposed the spare is terminated too, so a page (or a Node.js script: a spare never keeps
 * the process alive) that is done with nestbox has no worker left running.
 *
 * @module
 */

import type { WorkerConnection } from './connection.js';

interface Kind {
  /** Sandboxes of this kind alive (created and not disposed). */
  live: number;
  spare: WorkerConnection | undefined;
}

const kinds = new Map<string, Kind>();

/** The key of a kind of dedicated worker. */
export function spareKey(workerUrl: string | URL | undefined, graceMs: number): string {
  return `${workerUrl === undefined ? '' : String(workerUrl)}\u0000${graceMs}`;
}

/**
 * A connection for a new sandbox of kind `key`: the spare when one is ready and unused,
 * else `make()`.
 */
export function takeConnection(key: string, make: () => WorkerConnection): WorkerConnection {
  const kind = kinds.get(key);
  const spare = kind?.spare;
  if (kind !== undefined) kind.spare = undefined;
  if (spare !== undefined && !spare.closed && spare.restarts === 0) return spare;
  spare?.close();
  return make();
}

/**
 * A sandbox of kind `key` is open: counts it and starts a spare for the next one if there
 * is none.
 */
export function sandboxOpened(key: string, make: () => WorkerConnection): void {
  let kind = kinds.get(key);
  if (kind === undefined) {
    kind = { live: 0, spare: undefined };
    kinds.set(key, kind);
  }
  kind.live++;
  if (kind.spare === undefined || kind.spare.closed || kind.spare.restarts > 0) {
    kind.spare?.close();
    const spare = make();
    kind.spare = spare;
    spare.prestart();
  }
}

/** A sandbox of kind `key` was disposed: the last one takes the spare with it. */
export function sandboxClosed(key: string): void {
  const kind = kinds.get(key);
  if (kind === undefined) return;
  kind.live = Math.max(0, kind.live - 1);
  if (kind.live > 0) return;
  kind.spare?.close();
  kinds.delete(key);
}
