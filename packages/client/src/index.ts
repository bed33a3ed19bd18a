/** @intake/client: the browser-safe entry (no Node imports). Node code may use @intake/client/node. */
export { IntakeClient, type IntakeClientOptions, type RequestOptions } from "./client.ts";
export { IntakeApiError, IntakeStorageError, IntakeTimeoutError, IntakeUploadInterruptedError } from "./errors.ts";
export { webDigests, type Digests } from "./digests.ts";
export type { UploadProgress } from "./progress.ts";
export { blobSource, bytesSource, streamSource, type ByteSource, type ByteStream, type RandomAccessSource, type SequentialSource, type UploadSource } from "./sources.ts";
export type { UploadOptions, UploadOutcome } from "./upload.ts";
export type { Verdict, WaitOptions } from "./verdict.ts";
export * from "./types.ts";
