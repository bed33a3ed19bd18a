/**
 * The OpenAPI 3.1 description of every route. The operations (paths, statuses, headers) are
 * written here, next to the routes, and a unit test compares them with the router's stack;
 * every schema is generated from @intake/contract, the zod schemas the API validates with
 * and the SDK takes its types from, so the document cannot drift from either.
 */
import { componentSchemas, fieldSchema, GetUploadQuery, ListUploadsQuery, queryParameters, UPLOAD_ID } from "@intake/contract";
import * as z from "zod";
import { uppyPaths } from "./routes/uppy-openapi.ts";

export interface OpenApiOptions {
  allowedTypes: readonly string[];
  maxSize: number;
  multipartThreshold: number;
  bodyLimitBytes: number;
  publicUrl?: string;
  /** Part URLs one request may ask for (MAX_PARTS_PER_REQUEST). */
  maxPartsPerRequest?: number;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ "application/json": { schema } });
const error = (description: string) => ({ description, content: json(ref("Error")) });
const idParam = { name: "id", in: "path", required: true, schema: fieldSchema(z.string().regex(UPLOAD_ID)) };

const retryAfter = { "Retry-After": { description: "Seconds until the same request may succeed", schema: { type: "integer", minimum: 1 } } };
const limited = (description: string) => ({ description, headers: retryAfter, content: json(ref("Error")) });

const COMMON_ERRORS = {
  "400": error("Invalid request: malformed JSON, unknown field, or a value that breaks the policy"),
  "401": error("Missing, unknown or revoked API key; for an upload session token: session_unknown, session_expired or session_revoked"),
  "403": error("An upload session token on a route it may not use (session_not_allowed), or past its limits (session_max_files, session_max_bytes, session_type_not_allowed)"),
  "404": error("No such upload for this tenant (another tenant's upload is also 404)"),
  "413": error("Body or declared size too large"),
  "415": error("Body is not application/json"),
  "429": limited("Rate limited: the API key's or the address's request budget is spent (rate_limited), or too many failed authentications from this address or for this key id (too_many_failed_authentications); Retry-After says when to try again"),
  "503": error("A dependency is unavailable; retry later"),
};

export function openApiDocument(o: OpenApiOptions): Record<string, unknown> {
  return {
    openapi: "3.1.0",
    info: {
      title: "Intake upload API",
      version: "1.0.0",
      description:
        "Declare an upload, send the bytes straight to object storage with the presigned URL, complete it, and download it once the pipeline has verified it.",
    },
    ...(o.publicUrl ? { servers: [{ url: o.publicUrl }] } : {}),
    security: [{ bearer: [] }],
    paths: {
      "/healthz": { get: { summary: "Liveness", security: [], responses: { "200": { description: "The process serves requests", content: json(ref("Liveness")) } } } },
      "/readyz": {
        get: {
          summary: "Readiness: database, Redis, storage and clamd reachable",
          security: [],
          responses: { "200": { description: "Ready", content: json(ref("Readiness")) }, "503": { description: "A dependency is down", content: json(ref("Readiness")) } },
        },
      },
      "/openapi.json": { get: { summary: "This document", security: [], responses: { "200": { description: "OpenAPI 3.1 document" } } } },
      "/v1/uploads": {
        post: {
          summary: "Declare an upload and get a presigned PUT URL (or a multipart upload)",
          parameters: [{ name: "Idempotency-Key", in: "header", required: false, schema: { type: "string", maxLength: 255 }, description: "A retry with the same key returns the same upload." }],
          requestBody: { required: true, content: json(ref("CreateUpload")) },
          responses: {
            "201": { description: "Upload declared", content: json({ oneOf: [ref("SingleUploadCreated"), ref("SinglePostUploadCreated"), ref("MultipartUploadCreated")] }) },
            "200": { description: "Idempotent replay: the upload created by the first request (Idempotent-Replayed: true)", content: json({ oneOf: [ref("SingleUploadCreated"), ref("SinglePostUploadCreated"), ref("MultipartUploadCreated")] }) },
            "409": error("Idempotency-Key reused for a different request, or its upload is no longer pending"),
            ...COMMON_ERRORS,
            "429": limited(
              "Rate limited (as everywhere), or a tenant quota is reached: quota_pending_uploads (open uploads: not yet verified, quarantined, expired or aborted), quota_pending_bytes (their declared bytes), quota_uploads_per_day (per UTC day; Retry-After until midnight UTC). details names the quota, its limit and the current use",
            ),
          },
        },
        get: {
          summary: "List uploads, newest first",
          parameters: queryParameters(ListUploadsQuery),
          responses: {
            "200": { description: "A page", content: json(ref("UploadPage")) },
            ...COMMON_ERRORS,
          },
        },
      },
      "/v1/uploads/{id}": {
        get: {
          summary: "Status and details of an upload; with wait, a long-poll for its verdict",
          parameters: [idParam, ...queryParameters(GetUploadQuery)],
          responses: { "200": { description: "The upload", content: json(ref("UploadEnvelope")) }, ...COMMON_ERRORS },
        },
        delete: {
          summary: "Abort a pending upload (aborts the multipart upload, deletes any stored bytes)",
          parameters: [idParam],
          responses: { "200": { description: "Aborted", content: json(ref("UploadEnvelope")) }, "409": error("The upload is no longer pending"), ...COMMON_ERRORS },
        },
      },
      "/v1/uploads/{id}/parts": {
        post: {
          summary: "Sign URLs for a batch of parts of a multipart upload",
          parameters: [idParam],
          requestBody: { required: true, content: json(ref("SignParts")) },
          responses: {
            "200": { description: "Part URLs", content: json(ref("SignedParts")) },
            "409": error("The upload is no longer pending, or its life (expiresAt) is over (multipart_upload_expired)"),
            ...COMMON_ERRORS,
          },
        },
        get: {
          summary: "Parts the storage holds (to resume)",
          parameters: [idParam],
          responses: {
            "200": { description: "Stored parts", content: json(ref("StoredParts")) },
            "501": error("The storage does not implement ListParts (storage_unsupported)"),
            ...COMMON_ERRORS,
          },
        },
      },
      "/v1/uploads/{id}/complete": {
        post: {
          summary: "Tell the API the bytes are there; it checks the object (HeadObject) and hands it to processing",
          parameters: [idParam],
          requestBody: { required: false, content: json(ref("CompleteUpload")) },
          responses: { "200": { description: "Uploaded (repeating is harmless)", content: json(ref("UploadEnvelope")) }, "409": error("Object missing, size mismatch, upload not pending, or a multipart upload past its expiresAt (multipart_upload_expired); state unchanged"), ...COMMON_ERRORS },
        },
      },
      "/v1/upload-sessions": {
        post: {
          summary: "Mint an upload session: a short-lived token a browser uses instead of the API key (API key only)",
          description:
            "The token (is_<id>_<secret>, shown once, stored hashed) may only create uploads within the session's limits (its metadata merged over the client's), complete and abort them, sign and list their parts, and read their status: as Authorization: Bearer on /v1/uploads, or in the path of the Uppy routes. Every other route answers it 403 session_not_allowed; another session's or tenant's upload is 404. Created uploads count against maxFiles and maxBytes even when aborted.",
          requestBody: { required: false, content: json(ref("CreateUploadSession")) },
          responses: {
            "201": { description: "Session minted", content: json(ref("UploadSessionMinted")) },
            ...COMMON_ERRORS,
          },
        },
      },
      "/v1/upload-sessions/{id}": {
        delete: {
          summary: "Revoke an upload session of this tenant (its token stops at once; repeating is harmless)",
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: { "200": { description: "Revoked", content: json(ref("UploadSessionEnvelope")) }, ...COMMON_ERRORS },
        },
      },
      // The Companion-style routes @uppy/aws-s3 6.x calls (routes/uppy.ts).
      ...uppyPaths(),
      "/v1/uploads/{id}/download": {
        get: {
          summary: "Redirect to a short presigned GET (verified uploads only; attachment, verified type)",
          parameters: [idParam],
          responses: { "302": { description: "Location: presigned GET URL (the body repeats it)", headers: { Location: { schema: { type: "string" } } }, content: json(ref("DownloadRedirect")) }, "409": error("The upload is not verified; the message names its status"), ...COMMON_ERRORS },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "API key: Authorization: Bearer ik_live_... (or an upload session token, is_..., on the routes it may use)" } },
      schemas: componentSchemas({
        allowedTypes: o.allowedTypes,
        maxSize: o.maxSize,
        multipartThreshold: o.multipartThreshold,
        bodyLimitBytes: o.bodyLimitBytes,
        maxPartsPerRequest: o.maxPartsPerRequest ?? 100,
      }),
    },
  };
}
