/**
 * The API's request and response shapes: the types of @intake/contract's zod schemas, the
 * ones the API validates requests with and generates its OpenAPI document from, so the SDK
 * cannot drift from either. Imported as types only: the browser bundle carries no zod
 * (test/client/sdk-browser-entry.test.ts checks it). Requests are the schemas' input types,
 * responses their output types.
 */
import type * as z from "zod";
import type * as wire from "@intake/contract";
import type { UploadSessionView, UploadView } from "@intake/domain";

/**
 * The upload's statuses and its public view are the domain's own (the API answers with
 * uploadView, the webhooks carry it), which the contract's Upload schema is checked equal to
 * at compile time. Domain code is pure (no Node imports), so the browser entry can take the
 * status list from it too.
 */
/** TERMINAL_STATUSES: the ones the pipeline never leaves (a reviewer may still release a quarantined upload). */
export { UPLOAD_STATUSES, TERMINAL_STATUSES } from "@intake/domain";
export type UploadStatus = UploadView["status"];

/** components.schemas.Upload */
export type Upload = UploadView;

/** What the pipeline found (all null until it did). */
export type UploadResult = UploadView["result"];

/** components.schemas.CreateUpload: POST /v1/uploads */
export type CreateUploadInput = z.input<typeof wire.CreateUpload>;

/** The presigned request the API answers with: send exactly these headers. */
export type PresignedRequest = Pick<SignedPart, "method" | "url" | "headers" | "expiresAt">;

/** components.schemas.SingleUploadCreated */
export type SingleUploadCreated = z.output<typeof wire.SingleUploadCreated>;

/** components.schemas.MultipartUploadCreated */
export type MultipartUploadCreated = z.output<typeof wire.MultipartUploadCreated>;

/** components.schemas.SinglePostUploadCreated: POST url as multipart/form-data, every field, then the file last. */
export type SinglePostUploadCreated = z.output<typeof wire.SinglePostUploadCreated>;

export type UploadCreated = z.output<typeof wire.UploadCreated>;

type SignPartsBody = z.input<typeof wire.SignParts>;

/** A part to sign, with the checksums of its bytes (signed into its URL and returned in its headers). */
export type PartRequest = NonNullable<SignPartsBody["parts"]>[number];

/** Exactly one of partNumbers (no checksums) or parts (with checksums): the schema's two lists, never both. */
export type SignPartsInput = ({ partNumbers: NonNullable<SignPartsBody["partNumbers"]>; parts?: never } | { parts: PartRequest[]; partNumbers?: never }) & Pick<SignPartsBody, "expiresIn">;

export type SignedPart = z.output<typeof wire.SignedPart>;

export type StoredPart = z.output<typeof wire.StoredPart>;

export type CompletedPart = NonNullable<z.input<typeof wire.CompleteUpload>["parts"]>[number];

/** GET /v1/uploads's query, as values (the SDK writes them into the query string). */
export type ListUploadsQuery = z.output<typeof wire.ListUploadsQuery>;

export type UploadPage = z.output<typeof wire.UploadPage>;

/** The download's short presigned GET (the body of its 302). */
export type DownloadUrl = z.output<typeof wire.DownloadRedirect>;

/** components.schemas.CreateUploadSession */
export type CreateUploadSessionInput = z.input<typeof wire.CreateUploadSession>;

/** components.schemas.UploadSession (the domain's UploadSessionView, checked equal to the schema). */
export type UploadSession = UploadSessionView;

export type UploadSessionMinted = z.output<typeof wire.UploadSessionMinted>;

/** components.schemas.Error */
export type ErrorBody = z.output<typeof wire.ErrorBody>;
