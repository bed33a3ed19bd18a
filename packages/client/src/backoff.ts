/** Delay before retry `attempt` (0-based): exponential from `baseMs`, capped, with jitter so parallel parts do not retry in lockstep. */
export function backoffDelay(attempt: number, baseMs: number, capMs = 8_000): number {
  const d = Math.min(capMs, baseMs * 2 ** attempt);
  return d / 2 + Math.random() * (d / 2);
}

/** Sleeps `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
