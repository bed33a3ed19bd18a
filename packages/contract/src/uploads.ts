import * as z from "zod";
import { MAX_FILENAME_BYTES } from "@intake/domain";
import { expiresInSeconds, instant, md5Base64, metadataInput, metadataOutput, queryInteger, sha256Hex, UploadStatus } from "./fields.ts";

/**
 * /v1/uploads on the wire: every request body and query (strict: an unknown field is
 * refused, so a typo never falls back to a default) and every response. Shape only: the
 * policy (allowed types, the maximum size, quotas, filename characters, part counts) is the
 * domain's, and the parts that depend on configuration are injected when the OpenAPI
 * document is built (openapi.ts), through the factories' parameters.
 */

// ---- requests ----

export interface CreateUploadPolicyFields {
  /** The document's enum of allowed types; validation takes any string (the domain canonicalises and decides). */
  contentType?: z.ZodType<string>;
  /** The document's maximum; validation leaves it to the domain (413 size_too_large, not 400). */
  maxSize?: number;
  multipartThreshold?: number;
}

export function createUploadSchema(p: CreateUploadPolicyFields = {}) {
  const sizeMessage = "size must be an integer number of bytes";
  let size = z.int({ error: sizeMessage }).min(1, { error: "size must be greater than 0" });
  if (p.maxSize !== undefined) size = size.max(p.maxSize);
  return z.strictObject({
    filename: z
      .string({ error: "filename must be a string" })
      .max(MAX_FILENAME_BYTES, { error: `filename must be at most ${MAX_FILENAME_BYTES} bytes in UTF-8` })
      .meta({ description: `Display name only; never part of the object key. At most ${MAX_FILENAME_BYTES} bytes in UTF-8; no control, bidi, zero-width or other invisible characters (U+200B-U+200D, U+2060, U+FEFF, ...), no path separators.` }),
    contentType: p.contentType ?? z.string({ error: "contentType must be a string" }),
    size: size.meta({ description: `Exact size in bytes, bound into the signature.${p.multipartThreshold !== undefined ? ` Above ${p.multipartThreshold} bytes the upload is multipart.` : ""}` }),
    sha256: sha256Hex("sha256")
      .meta({ description: "Hex SHA-256 of the whole object. Single PUT: signed in as x-amz-checksum-sha256 (base64; returned in headers; AWS S3 refuses other bytes, Ceph RGW 16 does not check it). Both kinds: the pipeline hashes the stored bytes and quarantines the upload (checksum_mismatch) when they differ." })
      .optional(),
    md5: md5Base64("md5")
      .meta({ description: "Base64 of the 16-byte MD5 digest, as in Content-MD5; signed in and returned in headers (single PUT only; refused for multipart: declare per-part md5 on the parts call). AWS S3 and Ceph RGW refuse other bytes (400 BadDigest)." })
      .optional(),
    metadata: metadataInput("Stored with the upload and returned with it; keys are 1-64 lower-case letters, digits, '_' or '-'").optional(),
    method: z
      .enum(["PUT", "POST"], { error: 'method must be "PUT" or "POST"' })
      .meta({ default: "PUT", description: "POST: a presigned form upload (single uploads only: post_single_only; not with md5: md5_needs_put). Its policy pins the key, the Content-Type and the exact size (content-length-range [size, size])." })
      .optional(),
    expiresIn: expiresInSeconds("Single PUT: the URL's lifetime. Multipart: the whole upload's life (default and cap: the multipart TTL); part URLs end by then, complete is refused after it, and the reaper aborts it.").optional(),
  });
}

/** POST /v1/uploads. `size` is required: it is bound into the signature. */
export const CreateUpload = createUploadSchema();

/** The error code of each field of CreateUpload (the domain's codes for the same faults). */
export const CREATE_UPLOAD_ERRORS = {
  filename: "invalid_filename",
  contentType: "invalid_content_type",
  size: "invalid_size",
  sha256: "invalid_checksum",
  md5: "invalid_checksum",
  metadata: "invalid_metadata",
  method: "invalid_method",
  expiresIn: "invalid_expiry",
} as const satisfies Record<keyof z.input<typeof CreateUpload>, string>;

export function signPartsSchema(maxPartsPerRequest?: number) {
  const partNumber = z.int({ error: "part numbers must be integers from 1 to the upload's part count" }).min(1, { error: "part numbers must be integers from 1 to the upload's part count" }).max(10_000, { error: "part numbers must be integers from 1 to the upload's part count" });
  const limit = <T extends z.ZodArray>(a: T) => (maxPartsPerRequest === undefined ? a : a.max(maxPartsPerRequest));
  return z
    .strictObject({
      partNumbers: limit(z.array(partNumber, { error: "partNumbers must be a non-empty array of part numbers" }).min(1, { error: "partNumbers must be a non-empty array of part numbers" }))
        .meta({ uniqueItems: true, description: "Each within the upload's part count, each once (too_many_part_numbers, duplicate_part_number, invalid_part_numbers)" })
        .optional(),
      parts: limit(
        z
          .array(
            z.strictObject(
              {
                partNumber,
                md5: md5Base64("md5 of a part").meta({ description: "Base64 of the part's 16-byte MD5 digest (as in Content-MD5). Enforced by AWS S3 and Ceph RGW (400 BadDigest)." }).optional(),
                sha256: sha256Hex("sha256 of a part")
                  .meta({ description: "Hex SHA-256 of the part; sent base64 as x-amz-checksum-sha256. Enforced by AWS S3; Ceph RGW 16 ignores it (the header is still signed). On storage that verifies part sha256s (STORAGE_KIND aws) it is required on every part of an upload that declared its sha256 (part_checksum_required) and refused on any other (part_checksum_unsupported)." })
                  .optional(),
              },
              { error: "each part must be an object {partNumber, md5?, sha256?}" },
            ),
            { error: "parts must be a non-empty array of {partNumber, md5?, sha256?}" },
          )
          .min(1, { error: "parts must be a non-empty array of {partNumber, md5?, sha256?}" }),
      )
        .meta({ description: "Parts with the checksums of their bytes; each declared checksum is signed into that part's URL and returned in its headers (Content-MD5, x-amz-checksum-sha256), which the part PUT must send. Same limits as partNumbers; a malformed checksum is invalid_checksum." })
        .optional(),
      expiresIn: expiresInSeconds("Part URL lifetime; never past the multipart upload's own expiry").optional(),
    })
    .meta({ description: "Exactly one of partNumbers (no checksums) or parts (with per-part checksums).", oneOf: [{ required: ["partNumbers"] }, { required: ["parts"] }] });
}

/** POST /v1/uploads/:id/parts. Exactly one of the two lists: the domain checks which (validatePartRequests). */
export const SignParts = signPartsSchema();

export const SIGN_PARTS_ERRORS = {
  partNumbers: "invalid_part_numbers",
  parts: "invalid_part_numbers",
  "parts[].md5": "invalid_checksum",
  "parts[].sha256": "invalid_checksum",
  expiresIn: "invalid_expiry",
} as const satisfies Record<keyof z.input<typeof SignParts>, string> & Record<string, string>;

/** An ETag as storage returns it (quoted or not). */
const ETAG = /^"?[A-Za-z0-9._-]{1,128}"?$/;

/** POST /v1/uploads/:id/complete (no body, or `{}`, for a single upload). */
export const CompleteUpload = z.strictObject({
  parts: z
    .array(
      z.strictObject(
        {
          partNumber: z.int({ error: "partNumber must be an integer from 1 to the upload's part count" }).min(1, { error: "partNumber must be an integer from 1 to the upload's part count" }),
          etag: z.string({ error: "etag must be the ETag storage returned for the part" }).regex(ETAG, { error: "etag must be the ETag storage returned for the part" }),
        },
        { error: "each part must be an object {partNumber, etag}" },
      ),
      { error: "parts must be a non-empty array of {partNumber, etag}" },
    )
    .min(1, { error: "parts must be a non-empty array of {partNumber, etag}" })
    .meta({ description: "Multipart only: every part with the ETag storage returned" })
    .optional(),
});

export const COMPLETE_UPLOAD_ERRORS = { parts: "invalid_parts" } as const satisfies Record<keyof z.input<typeof CompleteUpload>, string>;

/** GET /v1/uploads?status&limit&cursor */
export const ListUploadsQuery = z.strictObject({
  status: z.enum(UploadStatus.options, { error: `status must be one of ${UploadStatus.options.join(", ")}` }).optional(),
  limit: queryInteger(1, 100, "limit must be an integer from 1 to 100").meta({ default: 20 }).optional(),
  cursor: z.string().max(200, { error: "cursor is not one this API returned" }).meta({ description: "nextCursor of the previous page" }).optional(),
});

export const LIST_UPLOADS_ERRORS = { status: "invalid_status", limit: "invalid_limit", cursor: "invalid_cursor" } as const satisfies Record<keyof z.input<typeof ListUploadsQuery>, string>;

/** The longest long-poll: the request is held at most this many seconds. */
export const MAX_WAIT_SECONDS = 20;

/** GET /v1/uploads/:id?wait */
export const GetUploadQuery = z.strictObject({
  wait: queryInteger(0, MAX_WAIT_SECONDS, `wait must be an integer number of seconds from 0 to ${MAX_WAIT_SECONDS}`)
    .meta({
      default: 0,
      description: `Seconds to hold the request while the status is not terminal (verified, quarantined, expired, aborted); the answer comes as soon as it is, or with the current status when the wait ends. Loop on it to wait for a verdict (invalid_wait outside 0..${MAX_WAIT_SECONDS}).`,
    })
    .optional(),
});

export const GET_UPLOAD_ERRORS = { wait: "invalid_wait" } as const satisfies Record<keyof z.input<typeof GetUploadQuery>, string>;

// ---- responses ----

/** The upload's public view (the domain's UploadView: a compile-time check keeps them equal). */
export const Upload = z.strictObject({
  id: z.string(),
  status: UploadStatus,
  filename: z.string(),
  contentType: z.string(),
  size: z.int().nullable().meta({ description: "Size in bytes: declared, or for an upload whose size is learned on arrival (Uppy without metadata[size]) the size of the object that arrived, null until then" }),
  sizeLimit: z.int().meta({ description: "The most bytes the upload may hold: its declared size, or the limit it was created with" }),
  policy: z
    .strictObject({ version: z.int(), digest: z.string() })
    .nullable()
    .meta({ description: "The tenant's policy the upload was declared and is judged under: its version and the SHA-256 of its terms (null for uploads declared before tenant policies)" }),
  sha256: z.string().nullable(),
  md5: z.string().nullable(),
  metadata: metadataOutput(),
  multipart: z.strictObject({ partSize: z.int(), partCount: z.int() }).nullable(),
  urlExpiresAt: instant(),
  createdAt: instant(),
  updatedAt: instant(),
  uploadedAt: instant().nullable(),
  finishedAt: instant().nullable(),
  result: z
    .strictObject({
      storedSize: z.int().nullable(),
      detectedType: z.string().nullable(),
      sha256: z.string().nullable(),
      verdict: z.enum(["clean", "quarantine"]).nullable(),
      reason: z.string().nullable(),
      reasonDetail: z.string().nullable(),
      signature: z.string().nullable(),
      metadataStripped: z.boolean().meta({ description: "The verified copy had its image metadata (EXIF, XMP, IPTC) removed: it is not the uploaded bytes" }),
      servedSha256: z.string().nullable().meta({ description: "SHA-256 of what the download serves (the stripped copy's, else the upload's own)" }),
      servedSize: z.int().nullable().meta({ description: "Size of what the download serves" }),
    })
    .meta({ description: "What the pipeline found (all null until it did)" }),
});

export const UploadEnvelope = z.strictObject({ upload: Upload });

const presignedPutFields = {
  method: z.literal("PUT"),
  url: z.url().meta({ description: "Presigned URL. A bearer credential until it expires: do not log or share it." }),
  headers: z.record(z.string(), z.string()).meta({ description: "Headers to send exactly as given; they are part of the signature." }),
  expiresAt: instant(),
};

export const SingleUploadCreated = z.strictObject({ upload: Upload, kind: z.literal("single"), ...presignedPutFields });

export const SinglePostUploadCreated = z
  .strictObject({
    upload: Upload,
    kind: z.literal("single"),
    method: z.literal("POST"),
    url: z.url(),
    fields: z.record(z.string(), z.string()).meta({ description: "Form fields, key and the signed Policy among them. A bearer credential until expiresAt." }),
    expiresAt: instant(),
  })
  .meta({ description: "POST url as multipart/form-data: every field (in any order), then the file last." });

export const MultipartUploadCreated = z.strictObject({
  upload: Upload,
  kind: z.literal("multipart"),
  uploadId: z.string(),
  partSize: z.int(),
  partCount: z.int(),
  expiresAt: instant().meta({ description: "Part URLs can be requested until then." }),
});

export const UploadCreated = z.union([SingleUploadCreated, SinglePostUploadCreated, MultipartUploadCreated]);

export const SignedPart = z.strictObject({
  partNumber: z.int(),
  size: z.int().nullable().meta({ description: "The part's length, bound into its URL; null for an upload whose size is learned on arrival (the client picks it)" }),
  ...presignedPutFields,
});
export const SignedParts = z.strictObject({ parts: z.array(SignedPart) });

export const StoredPart = z.strictObject({ partNumber: z.int(), size: z.int(), etag: z.string() });
export const StoredParts = z.strictObject({ parts: z.array(StoredPart) });

export const UploadPage = z.strictObject({ items: z.array(Upload), nextCursor: z.string().nullable() });

/** The body of the download's 302 (the same URL as its Location). */
export const DownloadRedirect = z.strictObject({ url: z.url(), expiresAt: instant() });
