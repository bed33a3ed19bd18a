/**
 * The OpenAPI 3.1 description of every route. Written by hand, next to the routes; a unit
 * test compares its paths and methods with the router's stack so the two cannot drift.
 */
import { UPLOAD_STATUSES } from "@intake/domain";
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
const idParam = { name: "id", in: "path", required: true, schema: { type: "string", pattern: "^[A-Za-z0-9_-]{1,64}$" } };

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
  const presigned = {
    type: "object",
    required: ["method", "url", "headers", "expiresAt"],
    properties: {
      method: { const: "PUT" },
      url: { type: "string", format: "uri", description: "Presigned URL. A bearer credential until it expires: do not log or share it." },
      headers: { type: "object", additionalProperties: { type: "string" }, description: "Headers to send exactly as given; they are part of the signature." },
      expiresAt: { type: "string", format: "date-time" },
    },
  };
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
      "/healthz": { get: { summary: "Liveness", security: [], responses: { "200": { description: "The process serves requests" } } } },
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
          parameters: [
            { name: "status", in: "query", schema: ref("Status") },
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 100, default: 20 } },
            { name: "cursor", in: "query", schema: { type: "string" }, description: "nextCursor of the previous page" },
          ],
          responses: {
            "200": { description: "A page", content: json({ type: "object", properties: { items: { type: "array", items: ref("Upload") }, nextCursor: { type: ["string", "null"] } } }) },
            ...COMMON_ERRORS,
          },
        },
      },
      "/v1/uploads/{id}": {
        get: {
          summary: "Status and details of an upload; with wait, a long-poll for its verdict",
          parameters: [
            idParam,
            {
              name: "wait",
              in: "query",
              required: false,
              schema: { type: "integer", minimum: 0, maximum: 20, default: 0 },
              description: "Seconds to hold the request while the status is not terminal (verified, quarantined, expired, aborted); the answer comes as soon as it is, or with the current status when the wait ends. Loop on it to wait for a verdict (invalid_wait outside 0..20).",
            },
          ],
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
          requestBody: {
            required: true,
            content: json({
              type: "object",
              additionalProperties: false,
              description: "Exactly one of partNumbers (no checksums) or parts (with per-part checksums).",
              oneOf: [{ required: ["partNumbers"] }, { required: ["parts"] }],
              properties: {
                partNumbers: { type: "array", items: { type: "integer", minimum: 1, maximum: 10000 }, minItems: 1, maxItems: o.maxPartsPerRequest ?? 100, uniqueItems: true, description: "Each within the upload's part count, each once (too_many_part_numbers, duplicate_part_number, invalid_part_numbers)" },
                parts: {
                  type: "array",
                  minItems: 1,
                  maxItems: o.maxPartsPerRequest ?? 100,
                  description: "Parts with the checksums of their bytes; each declared checksum is signed into that part's URL and returned in its headers (Content-MD5, x-amz-checksum-sha256), which the part PUT must send. Same limits as partNumbers; a malformed checksum is invalid_checksum.",
                  items: {
                    type: "object",
                    additionalProperties: false,
                    required: ["partNumber"],
                    properties: {
                      partNumber: { type: "integer", minimum: 1, maximum: 10000 },
                      md5: { type: "string", pattern: "^[A-Za-z0-9+/]{22}==$", description: "Base64 of the part's 16-byte MD5 digest (as in Content-MD5). Enforced by AWS S3 and Ceph RGW (400 BadDigest)." },
                      sha256: { type: "string", pattern: "^[0-9a-fA-F]{64}$", description: "Hex SHA-256 of the part; sent base64 as x-amz-checksum-sha256. Enforced by AWS S3; Ceph RGW 16 ignores it (the header is still signed). On storage that verifies part sha256s (STORAGE_KIND aws) it is required on every part of an upload that declared its sha256 (part_checksum_required) and refused on any other (part_checksum_unsupported)." },
                    },
                  },
                },
                expiresIn: { type: "integer", minimum: 60, description: "Part URL lifetime; never past the multipart upload's own expiry" },
              },
            }),
          },
          responses: {
            "200": { description: "Part URLs", content: json({ type: "object", properties: { parts: { type: "array", items: { allOf: [presigned, { type: "object", properties: { partNumber: { type: "integer" }, size: { type: "integer" } } }] } } } }) },
            "409": error("The upload is no longer pending, or its life (expiresAt) is over (multipart_upload_expired)"),
            ...COMMON_ERRORS,
          },
        },
        get: {
          summary: "Parts the storage holds (to resume)",
          parameters: [idParam],
          responses: {
            "200": { description: "Stored parts", content: json({ type: "object", properties: { parts: { type: "array", items: { type: "object", properties: { partNumber: { type: "integer" }, size: { type: "integer" }, etag: { type: "string" } } } } } }) },
            "501": error("The storage does not implement ListParts (storage_unsupported)"),
            ...COMMON_ERRORS,
          },
        },
      },
      "/v1/uploads/{id}/complete": {
        post: {
          summary: "Tell the API the bytes are there; it checks the object (HeadObject) and hands it to processing",
          parameters: [idParam],
          requestBody: {
            required: false,
            content: json({ type: "object", additionalProperties: false, properties: { parts: { type: "array", description: "Multipart only: every part with the ETag storage returned", items: { type: "object", additionalProperties: false, required: ["partNumber", "etag"], properties: { partNumber: { type: "integer" }, etag: { type: "string" } } } } } }),
          },
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
            "201": { description: "Session minted", content: json({ type: "object", required: ["token", "expiresAt", "session"], properties: { token: { type: "string", pattern: "^is_[a-z0-9]{16}_[A-Za-z0-9_-]{43}$", description: "A bearer credential: do not log it" }, expiresAt: { type: "string", format: "date-time" }, session: ref("UploadSession") } }) },
            ...COMMON_ERRORS,
          },
        },
      },
      "/v1/upload-sessions/{id}": {
        delete: {
          summary: "Revoke an upload session of this tenant (its token stops at once; repeating is harmless)",
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: { "200": { description: "Revoked", content: json({ type: "object", required: ["session"], properties: { session: ref("UploadSession") } }) }, ...COMMON_ERRORS },
        },
      },
      // The Companion-style routes @uppy/aws-s3 6.x calls (routes/uppy.ts).
      ...uppyPaths(),
      "/v1/uploads/{id}/download": {
        get: {
          summary: "Redirect to a short presigned GET (verified uploads only; attachment, verified type)",
          parameters: [idParam],
          responses: { "302": { description: "Location: presigned GET URL", headers: { Location: { schema: { type: "string" } } } }, "409": error("The upload is not verified; the message names its status"), ...COMMON_ERRORS },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "API key: Authorization: Bearer ik_live_... (or an upload session token, is_..., on the routes it may use)" } },
      schemas: {
        Error: {
          type: "object",
          required: ["error"],
          properties: { error: { type: "object", required: ["code", "message"], properties: { code: { type: "string" }, message: { type: "string" }, details: { type: "object" } } } },
        },
        Status: { type: "string", enum: [...UPLOAD_STATUSES] },
        CreateUpload: {
          type: "object",
          additionalProperties: false,
          required: ["filename", "contentType", "size"],
          properties: {
            filename: { type: "string", maxLength: 255, description: "Display name only; never part of the object key. No control, bidi, zero-width or other invisible characters (U+200B-U+200D, U+2060, U+FEFF, ...), no path separators." },
            contentType: { type: "string", enum: [...o.allowedTypes] },
            size: { type: "integer", minimum: 1, maximum: o.maxSize, description: `Exact size in bytes, bound into the signature. Above ${o.multipartThreshold} bytes the upload is multipart.` },
            sha256: { type: "string", pattern: "^[0-9a-fA-F]{64}$", description: "Hex SHA-256 of the whole object. Single PUT: signed in as x-amz-checksum-sha256 (base64; returned in headers; AWS S3 refuses other bytes, Ceph RGW 16 does not check it). Both kinds: the pipeline hashes the stored bytes and quarantines the upload (checksum_mismatch) when they differ." },
            md5: { type: "string", pattern: "^[A-Za-z0-9+/]{22}==$", description: "Base64 of the 16-byte MD5 digest, as in Content-MD5; signed in and returned in headers (single PUT only; refused for multipart: declare per-part md5 on the parts call). AWS S3 and Ceph RGW refuse other bytes (400 BadDigest)." },
            metadata: { type: "object", additionalProperties: { type: "string", maxLength: 512, description: "No control or bidi characters" }, maxProperties: 16 },
            method: { enum: ["PUT", "POST"], default: "PUT", description: "POST: a presigned form upload (single uploads only: post_single_only; not with md5: md5_needs_put). Its policy pins the key, the Content-Type and the exact size (content-length-range [size, size])." },
            expiresIn: { type: "integer", minimum: 60, description: "Single PUT: the URL's lifetime. Multipart: the whole upload's life (default and cap: the multipart TTL); part URLs end by then, complete is refused after it, and the reaper aborts it." },
          },
          description: `JSON bodies are limited to ${o.bodyLimitBytes} bytes.`,
        },
        SingleUploadCreated: {
          allOf: [presigned, { type: "object", required: ["upload", "kind"], properties: { upload: ref("Upload"), kind: { const: "single" } } }],
        },
        SinglePostUploadCreated: {
          type: "object",
          required: ["upload", "kind", "method", "url", "fields", "expiresAt"],
          description: "POST url as multipart/form-data: every field (in any order), then the file last.",
          properties: {
            upload: ref("Upload"),
            kind: { const: "single" },
            method: { const: "POST" },
            url: { type: "string", format: "uri" },
            fields: { type: "object", additionalProperties: { type: "string" }, description: "Form fields, key and the signed Policy among them. A bearer credential until expiresAt." },
            expiresAt: { type: "string", format: "date-time" },
          },
        },
        CreateUploadSession: {
          type: "object",
          additionalProperties: false,
          properties: {
            expiresIn: { type: "integer", minimum: 60, maximum: 86400, default: 900 },
            maxFiles: { type: "integer", minimum: 1, maximum: 1000, default: 10 },
            maxBytes: { type: ["integer", "null"], minimum: 1, description: "Total declared bytes; absent: only the per-file maximum" },
            allowedTypes: { type: "array", minItems: 1, maxItems: 100, items: { type: "string", enum: [...o.allowedTypes] }, description: "A subset of the deployment's types (else 400 session_type_not_allowed); absent: all of them" },
            metadata: { type: "object", additionalProperties: { type: "string", maxLength: 512 }, maxProperties: 16, description: "Merged into every upload's metadata, over the client's" },
          },
        },
        UploadSession: {
          type: "object",
          properties: {
            id: { type: "string" },
            expiresAt: { type: "string", format: "date-time" },
            revokedAt: { type: ["string", "null"], format: "date-time" },
            maxFiles: { type: "integer" },
            maxBytes: { type: ["integer", "null"] },
            allowedTypes: { type: "array", items: { type: "string" } },
            metadata: { type: "object", additionalProperties: { type: "string" } },
            filesUsed: { type: "integer" },
            bytesUsed: { type: "integer" },
          },
        },
        MultipartUploadCreated: {
          type: "object",
          required: ["upload", "kind", "uploadId", "partSize", "partCount", "expiresAt"],
          properties: {
            upload: ref("Upload"),
            kind: { const: "multipart" },
            uploadId: { type: "string" },
            partSize: { type: "integer" },
            partCount: { type: "integer" },
            expiresAt: { type: "string", format: "date-time", description: "Part URLs can be requested until then." },
          },
        },
        UploadEnvelope: { type: "object", required: ["upload"], properties: { upload: ref("Upload") } },
        Upload: {
          type: "object",
          properties: {
            id: { type: "string" },
            status: ref("Status"),
            filename: { type: "string" },
            contentType: { type: "string" },
            size: { type: "integer" },
            sha256: { type: ["string", "null"] },
            md5: { type: ["string", "null"] },
            metadata: { type: "object", additionalProperties: { type: "string" } },
            multipart: { type: ["object", "null"], properties: { partSize: { type: "integer" }, partCount: { type: "integer" } } },
            urlExpiresAt: { type: "string", format: "date-time" },
            createdAt: { type: "string", format: "date-time" },
            updatedAt: { type: "string", format: "date-time" },
            uploadedAt: { type: ["string", "null"], format: "date-time" },
            finishedAt: { type: ["string", "null"], format: "date-time" },
            result: { type: "object", description: "What the pipeline found (null until it did)" },
          },
        },
        Readiness: {
          type: "object",
          properties: {
            status: { enum: ["ready", "not_ready"] },
            checks: { type: "object", additionalProperties: { type: "object", properties: { status: { enum: ["up", "down"] }, latencyMs: { type: "number" }, error: { type: "string" } } } },
            scanner: { type: "object", properties: { testSignaturesOnly: { type: "boolean" }, warning: { type: "string" } } },
            pipeline: {
              type: "object",
              description: "The pipeline's health facts. Flagged here, never a reason for 503: only clamd down (in checks) makes the API not ready.",
              properties: {
                checkedAt: { type: "string", format: "date-time" },
                clamd: { type: "object", properties: { reachable: { type: "boolean" }, engine: { type: ["string", "null"] }, versionLine: { type: ["string", "null"] }, error: { type: "string" } } },
                signatures: {
                  type: "object",
                  properties: {
                    version: { type: ["string", "null"] },
                    date: { type: ["string", "null"], format: "date-time" },
                    dateSource: { enum: ["clamd", "test_database_files", null] },
                    ageHours: { type: ["number", "null"] },
                    maxAgeHours: { type: "number" },
                    stale: { type: "boolean", description: "Older than SIGNATURE_MAX_AGE_HOURS, or of unknown age" },
                    testSignaturesOnly: { type: "boolean", description: "Only the generated test database is loaded: no real malware protection" },
                  },
                },
                sqs: {
                  type: "object",
                  properties: {
                    receiveLag: { type: ["object", "null"], properties: { lagMs: { type: "number" }, observedAt: { type: "string", format: "date-time" }, messages: { type: "integer" } } },
                    receiveLagError: { type: "string" },
                    deadLetters: { type: ["object", "null"], properties: { depth: { type: "integer" }, inFlight: { type: "integer" } } },
                    deadLettersError: { type: "string" },
                  },
                },
                processing: {
                  type: "object",
                  properties: {
                    oldest: { type: ["object", "null"], properties: { status: ref("Status"), since: { type: "string", format: "date-time" }, ageSeconds: { type: "number" }, stuck: { type: "boolean" } } },
                    stuckAfterSeconds: { type: "number" },
                    error: { type: "string" },
                  },
                },
                flags: { type: "array", items: { type: "object", properties: { code: { type: "string" }, severity: { enum: ["critical", "warning"] }, message: { type: "string" } } } },
              },
            },
          },
        },
      },
    },
  };
}
