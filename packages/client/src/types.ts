/**
 * The API's request and response shapes, written to match services/api/src/openapi.ts (the
 * document the API serves at /openapi.json). test/client/types.test.ts validates what these
 * calls return against that served document and checks the field lists below against its
 * schemas, so a field added on one side and not the other fails a test.
 */
import type { UploadSessionView, UploadView } from "@intake/domain";

/**
 * The upload's statuses and its public view are the domain's own (the API answers with
 * uploadView, the webhooks carry it): imported, not restated. Domain code is pure (no Node
 * imports), so the browser entry can take the status list from it too.
 */
/** TERMINAL_STATUSES: the ones the pipeline never leaves (a reviewer may still release a quarantined upload). */
export { UPLOAD_STATUSES, TERMINAL_STATUSES } from "@intake/domain";
export type UploadStatus = UploadView["status"];

/** components.schemas.Upload */
export type Upload = UploadView;

/** What the pipeline found (all null until it did). */
export type UploadResult = UploadView["result"];

/** components.schemas.CreateUpload */
export interface CreateUploadInput {
  filename: string;
  contentType: string;
  size: number;
  /** Hex sha256 of the whole object (bound as x-amz-checksum-sha256; the pipeline recomputes it). */
  sha256?: string;
  /** Base64 MD5 (Content-MD5); single PUT only. */
  md5?: string;
  metadata?: Record<string, string>;
  expiresIn?: number;
  /** PUT (default) or POST: a presigned form upload (single uploads only, not with md5). */
  method?: "PUT" | "POST";
}

/** The presigned request the API answers with: send exactly these headers. */
export interface PresignedRequest {
  method: "PUT";
  /** A bearer credential until it expires: never log it. */
  url: string;
  headers: Record<string, string>;
  expiresAt: string;
}

/** components.schemas.SingleUploadCreated */
export interface SingleUploadCreated extends PresignedRequest {
  kind: "single";
  upload: Upload;
}

/** components.schemas.MultipartUploadCreated */
export interface MultipartUploadCreated {
  kind: "multipart";
  upload: Upload;
  uploadId: string;
  partSize: number;
  partCount: number;
  expiresAt: string;
}

/** components.schemas.SinglePostUploadCreated: POST url as multipart/form-data, every field, then the file last. */
export interface SinglePostUploadCreated {
  kind: "single";
  method: "POST";
  upload: Upload;
  url: string;
  /** Form fields (key, Policy, signature...): a bearer credential until expiresAt. */
  fields: Record<string, string>;
  expiresAt: string;
}

export type UploadCreated = SingleUploadCreated | SinglePostUploadCreated | MultipartUploadCreated;

/** A part to sign, with the checksums of its bytes (signed into its URL and returned in its headers). */
export interface PartRequest {
  partNumber: number;
  /** Base64 MD5 (Content-MD5). */
  md5?: string;
  /** Hex SHA-256 (sent as x-amz-checksum-sha256). */
  sha256?: string;
}

/** Exactly one of partNumbers (no checksums) or parts (with checksums). */
export type SignPartsInput = ({ partNumbers: number[]; parts?: never } | { parts: PartRequest[]; partNumbers?: never }) & { expiresIn?: number };

export interface SignedPart extends PresignedRequest {
  partNumber: number;
  size: number;
}

export interface StoredPart {
  partNumber: number;
  size: number;
  etag: string;
}

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

export interface ListUploadsQuery {
  status?: UploadStatus;
  limit?: number;
  cursor?: string;
}

export interface UploadPage {
  items: Upload[];
  nextCursor: string | null;
}

export interface DownloadUrl {
  url: string;
  expiresAt: string;
}

/** components.schemas.CreateUploadSession */
export interface CreateUploadSessionInput {
  expiresIn?: number;
  maxFiles?: number;
  maxBytes?: number | null;
  allowedTypes?: string[];
  metadata?: Record<string, string>;
}

/** components.schemas.UploadSession */
export type UploadSession = UploadSessionView;

export interface UploadSessionMinted {
  /** is_<id>_<secret>: shown once, a bearer credential. */
  token: string;
  expiresAt: string;
  session: UploadSession;
}

/** components.schemas.Error */
export interface ErrorBody {
  error: { code: string; message: string; details?: Record<string, unknown> };
}

/**
 * Field lists of the schemas, checked against the served document by the types test; the
 * `satisfies` clauses make the compiler check them against the interfaces above, both ways.
 */
type Exactly<T, K extends readonly PropertyKey[]> = [Exclude<keyof T, K[number]>] extends [never] ? K : never;
const keys = <T>() => <const K extends readonly (keyof T)[]>(k: Exactly<T, K>) => k;
export const SCHEMA_FIELDS = {
  Upload: keys<Upload>()(["id", "status", "filename", "contentType", "size", "sha256", "md5", "metadata", "multipart", "urlExpiresAt", "createdAt", "updatedAt", "uploadedAt", "finishedAt", "result"]),
  CreateUpload: keys<CreateUploadInput>()(["filename", "contentType", "size", "sha256", "md5", "metadata", "expiresIn", "method"]),
  SinglePostUploadCreated: keys<SinglePostUploadCreated>()(["upload", "kind", "method", "url", "fields", "expiresAt"]),
  CreateUploadSession: keys<CreateUploadSessionInput>()(["expiresIn", "maxFiles", "maxBytes", "allowedTypes", "metadata"]),
  UploadSession: keys<UploadSession>()(["id", "expiresAt", "revokedAt", "maxFiles", "maxBytes", "allowedTypes", "metadata", "filesUsed", "bytesUsed"]),
  SingleUploadCreated: keys<SingleUploadCreated>()(["method", "url", "headers", "expiresAt", "upload", "kind"]),
  MultipartUploadCreated: keys<MultipartUploadCreated>()(["upload", "kind", "uploadId", "partSize", "partCount", "expiresAt"]),
  Error: keys<ErrorBody["error"]>()(["code", "message", "details"]),
} as const;
