import type { IntakeClient } from "./client.ts";
import { backoffDelay, sleep } from "./backoff.ts";
import { IntakeApiError, IntakeTimeoutError } from "./errors.ts";
import type { Upload } from "./types.ts";

export interface WaitOptions {
  /** Give up after this long (default 5 minutes): rejects with IntakeTimeoutError. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface Verdict {
  status: "verified" | "quarantined";
  /** Why it was quarantined (malware, type_mismatch, ...). */
  reason?: string;
  upload: Upload;
}

/** The server holds a GET at most this long (MAX_WAIT_SECONDS in the API). */
const SERVER_WAIT_SECONDS = 20;

/**
 * Long-polls GET /v1/uploads/:id?wait=N until the upload is verified or quarantined: each
 * request is held by the API until the status is terminal or N seconds pass, so a wait
 * costs one request per 20 s, not a poll per second. An upload that ended without a
 * verdict (expired, aborted) rejects with an IntakeApiError (409 no_verdict). Transient
 * failures (network, 5xx, 429) are retried with backoff until the deadline.
 */
export async function waitForVerdict(client: IntakeClient, id: string, o: WaitOptions = {}): Promise<Verdict> {
  const deadline = Date.now() + (o.timeoutMs ?? 300_000);
  let last: Upload | undefined;
  for (let failures = 0; ; ) {
    o.signal?.throwIfAborted();
    const left = deadline - Date.now();
    if (left <= 0) throw new IntakeTimeoutError(`no verdict for upload ${id} within the timeout (last status: ${last?.status ?? "unknown"})`, last);
    try {
      last = await client.get(id, { wait: Math.max(1, Math.min(SERVER_WAIT_SECONDS, Math.floor(left / 1000))), ...(o.signal ? { signal: o.signal } : {}) });
      failures = 0;
    } catch (err) {
      if (o.signal?.aborted) throw o.signal.reason;
      const transient = !(err instanceof IntakeApiError) || err.status >= 500 || err.status === 429;
      if (!transient) throw err;
      const retryAfter = err instanceof IntakeApiError && err.retryAfterSeconds ? err.retryAfterSeconds * 1000 : 0;
      await sleep(Math.min(Math.max(retryAfter, backoffDelay(failures++, 500)), Math.max(0, deadline - Date.now())), o.signal);
      continue;
    }
    if (last.status === "verified") return { status: "verified", upload: last };
    if (last.status === "quarantined") return { status: "quarantined", ...(last.result.reason ? { reason: last.result.reason } : {}), upload: last };
    if (last.status === "expired" || last.status === "aborted") {
      throw new IntakeApiError(409, { code: "no_verdict", message: `upload ${id} ended ${last.status} without a verdict`, details: { id, status: last.status } });
    }
  }
}
