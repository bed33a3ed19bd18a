/** What went wrong, for logs and metrics; every kind is transient from the caller's view. */
export type ScanFailureKind =
  /** Could not connect (clamd down, connection refused, connect timeout). */
  | "connect"
  /** Connection dropped or reset mid-scan (ECONNRESET, EPIPE) without a usable reply. */
  | "connection"
  /** No progress (neither bytes sent nor a reply) for timeoutMs. */
  | "timeout"
  | "empty_reply"
  | "unknown_reply"
  /** clamd answered "... ERROR" (other than the stream size limit, which is unscannable). */
  | "error_reply"
  /** The caller's AbortSignal fired. */
  | "aborted"
  /** Reading the body failed (e.g. the object store stream broke). */
  | "source"
  /** clamd does not behave as configured (limits-probe.ts): no scan of it counts. */
  | "misconfigured";

/**
 * The scan could not produce a verdict. Transient: the caller retries (or, after its retry
 * budget, parks/quarantines the object). Never to be read as clean.
 */
export class ScanFailedError extends Error {
  readonly code = "scan_error" as const;
  readonly kind: ScanFailureKind;
  /** What clamd sent, when it sent anything. */
  readonly raw: string | undefined;

  constructor(kind: ScanFailureKind, message: string, options?: { raw?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ScanFailedError";
    this.kind = kind;
    this.raw = options?.raw;
  }
}
