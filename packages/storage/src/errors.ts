import { DependencyUnavailableError, IntakeError } from "@intake/domain";

/** The storage does not implement an operation (fauxqs lacks ListParts/ListMultipartUploads). */
export class StorageUnsupportedError extends IntakeError {
  constructor(operation: string) {
    super("unsupported", "storage_unsupported", `the object storage does not implement ${operation}`, { operation });
  }
}

/** The storage answered with an error that is the request's fault, not a transient one. */
export class StorageRequestError extends IntakeError {
  readonly storageCode: string;
  constructor(storageCode: string, message: string) {
    super("invalid", "storage_rejected", message, { storageCode });
    this.storageCode = storageCode;
  }
}

/**
 * A conditional request found the object changed (S3 412 PreconditionFailed): the bytes
 * under the key are not the ones the condition named.
 */
export class ObjectChangedError extends IntakeError {
  constructor(operation: string) {
    super("conflict", "object_changed", `the object changed before ${operation}: its ETag no longer matches`, { operation });
  }
}

interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

export function statusOf(err: unknown): number | undefined {
  return (err as SdkError)?.$metadata?.httpStatusCode;
}

export function codeOf(err: unknown): string {
  const e = err as SdkError;
  return e?.Code ?? e?.name ?? e?.code ?? "Unknown";
}

/**
 * Translates an SDK error at the boundary: what the caller did wrong stays a request error;
 * network failures, throttling and 5xx become DependencyUnavailableError (retry later);
 * NotImplemented becomes StorageUnsupportedError.
 */
export function translateStorageError(err: unknown, operation: string): Error {
  const code = codeOf(err);
  const status = statusOf(err);
  if (code === "NotImplemented" || status === 501) return new StorageUnsupportedError(operation);
  if (code === "PreconditionFailed" || status === 412) return new ObjectChangedError(operation);
  if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
    return new StorageRequestError(code, `storage refused ${operation}: ${code}`);
  }
  return new DependencyUnavailableError("storage", `object storage failed during ${operation}: ${code}`, { cause: err });
}
