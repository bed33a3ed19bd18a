import type { EventEmitter } from "node:events";

export interface WaitOptions {
  /** How long to wait before failing. */
  timeoutMs: number;
  /** What was awaited, for the failure: "upload 42 verified", not "timed out". */
  message: string;
  /** How often a predicate is polled (a predicate has no event to wait on). Default 25 ms. */
  intervalMs?: number;
}

/** Thrown when a wait's deadline passes: names what did not happen and what was last seen. */
export class WaitTimeoutError extends Error {
  readonly code = "wait_timeout";
  constructor(message: string, timeoutMs: number, last?: unknown) {
    super(`${message}: not within ${timeoutMs} ms${last === undefined ? "" : ` (last seen: ${describe(last)})`}`);
    this.name = "WaitTimeoutError";
  }
}

/**
 * Waits until `predicate` returns something other than false/undefined/null and returns
 * that value; fails with `message` at the deadline. A predicate that throws fails the wait
 * at once (a broken probe is not "not yet"). `describeLast` may report the state last seen.
 */
export async function waitFor<T>(
  predicate: () => T | false | null | undefined | Promise<T | false | null | undefined>,
  o: WaitOptions & { describeLast?: () => unknown },
): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value !== false && value !== null && value !== undefined) return value;
    if (Date.now() >= deadline) throw new WaitTimeoutError(o.message, o.timeoutMs, o.describeLast?.());
    await new Promise((r) => setTimeout(r, Math.min(o.intervalMs ?? 25, Math.max(0, deadline - Date.now()))));
  }
}

/**
 * Waits for `event` on `emitter` (optionally the first one whose arguments satisfy
 * `match`), event-driven: no polling. Resolves with the event's arguments.
 */
export function waitForEvent<A extends unknown[] = unknown[]>(
  emitter: EventEmitter,
  event: string,
  o: WaitOptions & { match?: (...args: A) => boolean },
): Promise<A> {
  return new Promise<A>((resolve, reject) => {
    const onEvent = (...args: unknown[]) => {
      if (o.match && !o.match(...(args as A))) return;
      clearTimeout(timer);
      emitter.off(event, onEvent);
      resolve(args as A);
    };
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new WaitTimeoutError(o.message, o.timeoutMs));
    }, o.timeoutMs);
    emitter.on(event, onEvent);
  });
}

/** A promise that must settle within the deadline (a wait on something already started). */
export async function within<T>(work: Promise<T>, o: WaitOptions): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new WaitTimeoutError(o.message, o.timeoutMs)), o.timeoutMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function describe(value: unknown): string {
  try {
    return typeof value === "string" ? value : JSON.stringify(value).slice(0, 500);
  } catch {
    return String(value);
  }
}
