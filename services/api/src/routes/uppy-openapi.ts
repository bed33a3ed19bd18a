/**
 * The Uppy routes (routes/uppy.ts) in the OpenAPI document. Their shapes are Companion's,
 * which @uppy/aws-s3 6.x (companionEndpoint) and 5.x (endpoint) expect (PascalCase parts
 * included); errors are our Error body, with "<code>: <message>" also in the reason phrase,
 * the only part Uppy shows. Uppy sends no size: without metadata[size] the size is learned
 * on arrival, within a size limit (@intake/domain upload-size.ts).
 */
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: object) => ({ "application/json": { schema } });
const error = (description: string) => ({ description, content: json(ref("Error")) });

const ERRORS = {
  "400": error("Invalid request (invalid_size: a metadata[size] that is not a byte count; key_required, key_mismatch: key is not this upload's; with metadata[size] only: multipart_too_small, post_single_only; invalid_part_numbers: a part beyond the upload's bound; missing_parts, part_too_small at complete; or a value that breaks the policy)"),
  "401": error("The token in the path is not a live upload session (session_unknown, session_expired, session_revoked)"),
  "403": error("An API key in the path (session_required), or past the session's limits (session_max_files, session_max_bytes, session_type_not_allowed)"),
  "404": error("No such upload in this session"),
  "409": error("The upload is not pending, or its multipart upload expired"),
  "413": error("size_over_limit: the parts of a size-unknown upload hold more than its limit (it is aborted)"),
  "429": error("Rate limited, or too many failed authentications from this address"),
  "503": error("A dependency is unavailable; retry later"),
};
const token = { name: "token", in: "path", required: true, description: "An upload session token (is_...): a bearer credential in the URL, never an API key", schema: { type: "string" } };
const uploadId = { name: "uploadId", in: "path", required: true, description: "Our upload id (not storage's UploadId)", schema: { type: "string", pattern: "^[A-Za-z0-9_-]{1,64}$" } };
const key = { name: "key", in: "query", required: true, description: "The key create answered; must be this upload's", schema: { type: "string" } };
const declaration = {
  type: "object",
  required: ["filename", "type", "metadata"],
  additionalProperties: false,
  properties: {
    filename: { type: "string" },
    type: { type: "string", description: "The file's media type (the declared contentType)" },
    metadata: {
      type: "object",
      description:
        "Uppy's file meta: name, type and relativePath are Uppy's and not stored; the rest becomes the upload's metadata. size is optional: sent (a page's own choice), the upload is bound to it exactly; absent (as Uppy sends it), the size is learned on arrival, within a limit (the per-file maximum, the session's remaining budget)",
    },
  },
};

export function uppyPaths(): Record<string, unknown> {
  const base = "/v1/uppy/{token}/s3";
  return {
    [`${base}/params`]: {
      get: {
        summary: "Uppy (@uppy/aws-s3 6.x, companionEndpoint): declare a single upload and get its presigned form POST",
        security: [],
        parameters: [
          token,
          { name: "filename", in: "query", required: true, schema: { type: "string" } },
          { name: "type", in: "query", required: true, schema: { type: "string" } },
          { name: "metadata[size]", in: "query", required: false, description: "Optional exact size; absent, the policy's content-length-range is [1, limit] (limit: the per-file maximum, the session's remaining budget, 5 GiB)", schema: { type: "string", pattern: "^[0-9]{1,16}$" } },
        ],
        responses: {
          "200": { description: "The form POST: send fields first, the file last", content: json({ type: "object", required: ["method", "url", "fields"], properties: { method: { const: "POST" }, url: { type: "string" }, fields: { type: "object", required: ["key"], additionalProperties: { type: "string" } }, expires: { type: "string", format: "date-time" } } }) },
          ...ERRORS,
        },
      },
    },
    [`${base}/multipart`]: {
      post: {
        summary: "Uppy: declare a multipart upload (Uppy's choice); without metadata.size, part URLs bind no length and are signed for as many parts as the limit needs at 5 MiB",
        security: [],
        parameters: [token],
        requestBody: { required: true, content: json(declaration) },
        responses: { "200": { description: "Created", content: json({ type: "object", required: ["key", "uploadId"], properties: { key: { type: "string" }, uploadId: { type: "string" } } }) }, ...ERRORS },
      },
    },
    [`${base}/multipart/{uploadId}/{partNumber}`]: {
      get: {
        summary: "Uppy: a presigned part URL (PUT the part's bytes, no Content-Type; read its ETag)",
        security: [],
        parameters: [token, uploadId, { name: "partNumber", in: "path", required: true, schema: { type: "integer", minimum: 1 } }, key],
        responses: { "200": { description: "The part URL", content: json({ type: "object", required: ["url"], properties: { url: { type: "string" }, expires: { type: "string", format: "date-time" } } }) }, ...ERRORS },
      },
    },
    [`${base}/multipart/{uploadId}`]: {
      get: {
        summary: "Uppy: the parts storage holds (resume)",
        security: [],
        parameters: [token, uploadId, key],
        responses: {
          "200": { description: "Stored parts", content: json({ type: "array", items: { type: "object", required: ["PartNumber", "ETag", "Size"], properties: { PartNumber: { type: "integer" }, ETag: { type: "string" }, Size: { type: "integer" } } } }) },
          "501": error("This storage cannot list parts (storage_unsupported)"),
          ...ERRORS,
        },
      },
      delete: {
        summary: "Uppy: cancel (abort) the multipart upload",
        security: [],
        parameters: [token, uploadId, key],
        responses: { "200": { description: "Aborted", content: json({ type: "object", additionalProperties: false }) }, ...ERRORS },
      },
    },
    [`${base}/multipart/{uploadId}/complete`]: {
      post: {
        summary: "Uppy: complete the multipart upload; it then goes through the checks like any other",
        security: [],
        parameters: [token, uploadId, key],
        requestBody: { required: true, content: json({ type: "object", required: ["parts"], additionalProperties: false, properties: { parts: { type: "array", items: { type: "object", required: ["PartNumber", "ETag"], properties: { PartNumber: { type: "integer" }, ETag: { type: "string" } } } } } }) },
        responses: {
          "200": { description: "Completed: location is the upload's status URL", content: json({ type: "object", required: ["location", "key", "upload"], properties: { location: { type: "string" }, key: { type: "string" }, upload: ref("Upload") } }) },
          ...ERRORS,
        },
      },
    },
  };
}
