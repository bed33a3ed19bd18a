import { GET_UPLOAD_ERRORS, GetUploadQuery, MAX_WAIT_SECONDS } from "@intake/contract";
import { isTerminal, type Upload } from "@intake/domain";
import { checkShape } from "./http/request-shape.ts";

/**
 * The long-poll behind GET /v1/uploads/:id?wait=SECONDS: answer as soon as the upload's
 * status is terminal (verified, quarantined, expired, aborted) or when the wait is over,
 * whichever comes first. Clients (the SDK's waitForVerdict) loop on it instead of polling.
 *
 * Each waiter re-reads its one row by primary key on a backoff (200 ms doubling to 2 s),
 * so a waiter costs at most one indexed read every 2 s, and a client that goes away stops
 * its own loop (the signal). The cap stays below the HTTP server's 30 s request timeout
 * and the idle timeouts common in proxies.
 */
export { MAX_WAIT_SECONDS };
const FIRST_CHECK_MS = 200;
const MAX_CHECK_MS = 2_000;

/** `wait` from the query (the contract's GetUploadQuery): absent is 0 (answer at once); otherwise an integer 0..MAX_WAIT_SECONDS. */
export function parseWaitSeconds(raw: string | undefined): number {
  if (raw === undefined) return 0;
  return checkShape(GetUploadQuery, { wait: raw }, GET_UPLOAD_ERRORS, "query").wait ?? 0;
}

export interface WaitOptions {
  seconds: number;
  /** Aborted when the client disconnects: stop reading the database for nobody. */
  signal: AbortSignal;
}

/** Reads the upload until its status is terminal or the wait ends; returns the last read. */
export async function waitUntilTerminal(read: () => Promise<Upload>, first: Upload, o: WaitOptions): Promise<Upload> {
  const deadline = Date.now() + o.seconds * 1000;
  let upload = first;
  let interval = FIRST_CHECK_MS;
  while (!isTerminal(upload.status) && !o.signal.aborted) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    await pause(Math.min(interval, left), o.signal);
    if (o.signal.aborted) break;
    upload = await read();
    interval = Math.min(interval * 2, MAX_CHECK_MS);
  }
  return upload;
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
