import type { ErrorBody, Upload } from "./types.ts";

/** The API answered with an error body ({error: {code, message, details}}). */
export class IntakeApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;
  /** Retry-After in seconds, when the API sent one (429, some 503). */
  readonly retryAfterSeconds: number | undefined;
  constructor(status: number, body: ErrorBody["error"], retryAfterSeconds?: number) {
    super(body.message);
    this.name = "IntakeApiError";
    this.status = status;
    this.code = body.code;
    this.details = body.details;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * Object storage refused a presigned request (or it never reached storage). The message
 * names the part and storage's error code, never the URL: presigned URLs are credentials.
 */
export class IntakeStorageError extends Error {
  /** HTTP status from storage; 0 when the request failed before an answer (network). */
  readonly status: number;
  /** Storage's <Code> (e.g. BadDigest, AccessDenied, RequestTimeTooSkewed) when it sent one. */
  readonly storageCode: string | undefined;
  readonly partNumber: number | undefined;
  constructor(message: string, o: { status: number; storageCode?: string; partNumber?: number; cause?: unknown }) {
    super(message, o.cause === undefined ? undefined : { cause: o.cause });
    this.name = "IntakeStorageError";
    this.status = o.status;
    this.storageCode = o.storageCode;
    this.partNumber = o.partNumber;
  }
}

/**
 * upload() stopped before the upload was complete (parts kept failing, the network went
 * away). The upload is left pending so it can be resumed with `resumeUpload(uploadId, ...)`
 * until it expires; the cause is the last failure.
 */
export class IntakeUploadInterruptedError extends Error {
  readonly uploadId: string;
  constructor(uploadId: string, cause: unknown) {
    super(`upload ${uploadId} was interrupted: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = "IntakeUploadInterruptedError";
    this.uploadId = uploadId;
  }
}

/** waitForVerdict ran out of time; `upload` is the last status seen. */
export class IntakeTimeoutError extends Error {
  readonly upload: Upload | undefined;
  constructor(message: string, upload?: Upload) {
    super(message);
    this.name = "IntakeTimeoutError";
    this.upload = upload;
  }
}
