import { IntakeApiError, IntakeStorageError, IntakeTimeoutError, IntakeUploadInterruptedError } from "../errors.ts";

/** The CLI's exit codes (documented in `intake --help`). */
export const EXIT = {
  ok: 0,
  /** Bad arguments, missing configuration, a file that cannot be read. */
  usage: 1,
  /** A file was quarantined, or the API (or storage) refused a request with a 4xx. */
  refused: 2,
  /** The network, the API or storage failed (5xx, unreachable, timed out). */
  transport: 3,
  interrupted: 130,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A usage error found by the CLI itself (not by commander). */
export class UsageError extends Error {
  override name = "UsageError";
}

/** What went wrong, as the CLI reports it: an exit code, a short code and a message. */
export interface Failure {
  exit: ExitCode;
  code: string;
  message: string;
}

export function classify(err: unknown): Failure {
  if (err instanceof UsageError) return { exit: EXIT.usage, code: "usage", message: err.message };
  if (err instanceof IntakeUploadInterruptedError) {
    const inner = classify(err.cause);
    return { ...inner, message: `${inner.message} (upload ${err.uploadId} left pending; it can be resumed until it expires)` };
  }
  if (err instanceof IntakeApiError) return { exit: err.status >= 500 || err.status === 429 ? EXIT.transport : EXIT.refused, code: err.code, message: err.message };
  if (err instanceof IntakeStorageError) {
    const refused = err.status >= 400 && err.status < 500;
    return { exit: refused ? EXIT.refused : EXIT.transport, code: err.storageCode ?? (err.status ? `storage_${err.status}` : "storage_unreachable"), message: err.message };
  }
  if (err instanceof IntakeTimeoutError) return { exit: EXIT.transport, code: "timeout", message: err.message };
  if (err instanceof Error && err.name === "AbortError") return { exit: EXIT.interrupted, code: "interrupted", message: "interrupted" };
  // fetch's TypeError("fetch failed") with the socket error as its cause.
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${(err.cause as NodeJS.ErrnoException).code ?? err.cause.message}` : "";
  return { exit: EXIT.transport, code: "transport", message: `${err instanceof Error ? err.message : String(err)}${cause}` };
}

/** The worst of several outcomes decides the process's exit code. */
export const worst = (codes: readonly ExitCode[]): ExitCode => codes.reduce<ExitCode>((a, b) => (b > a ? b : a), EXIT.ok);
