import * as z from "zod";
import { instant, metadataInput, metadataOutput } from "./fields.ts";

/** /v1/upload-sessions on the wire. The limits' bounds are the API's fixed session policy. */

export const SESSION_LIMITS = { maxTtlSeconds: 86_400, defaultTtlSeconds: 900, maxFiles: 1000, defaultMaxFiles: 10, maxAllowedTypes: 100 } as const;

const between = (name: string, min: number, max: number) => {
  const message = `${name} must be an integer from ${min} to ${max}`;
  return z.int({ error: message }).min(min, { error: message }).max(max, { error: message });
};

/** allowedTypes: the document's enum of the deployment's types; validation takes strings (the service checks the subset). */
export function createUploadSessionSchema(allowedType: z.ZodType<string> = z.string({ error: "allowedTypes must be a non-empty array of media types" })) {
  const L = SESSION_LIMITS;
  const list = `allowedTypes must be a non-empty array of at most ${L.maxAllowedTypes} media types`;
  return z.strictObject({
    expiresIn: between("expiresIn", 60, L.maxTtlSeconds).meta({ default: L.defaultTtlSeconds }).optional(),
    maxFiles: between("maxFiles", 1, L.maxFiles).meta({ default: L.defaultMaxFiles }).optional(),
    maxBytes: between("maxBytes", 1, Number.MAX_SAFE_INTEGER).nullable().meta({ description: "Total declared bytes; absent or null: only the per-file maximum" }).optional(),
    allowedTypes: z
      .array(allowedType, { error: list })
      .min(1, { error: list })
      .max(L.maxAllowedTypes, { error: list })
      .meta({ description: "A subset of the deployment's types (else 400 session_type_not_allowed); absent: all of them" })
      .optional(),
    metadata: metadataInput("Merged into every upload's metadata, over the client's").optional(),
  });
}

/** POST /v1/upload-sessions (no body: every default). */
export const CreateUploadSession = createUploadSessionSchema();

export const CREATE_UPLOAD_SESSION_ERRORS = {
  expiresIn: "invalid_expiry",
  maxFiles: "invalid_max_files",
  maxBytes: "invalid_max_bytes",
  allowedTypes: "invalid_allowed_types",
  metadata: "invalid_metadata",
} as const satisfies Record<keyof z.input<typeof CreateUploadSession>, string>;

/** The session as its minter sees it (the domain's UploadSessionView: checked equal at compile time). */
export const UploadSession = z.strictObject({
  id: z.string(),
  expiresAt: instant(),
  revokedAt: instant().nullable(),
  maxFiles: z.int(),
  maxBytes: z.int().nullable(),
  allowedTypes: z.array(z.string()),
  metadata: metadataOutput(),
  filesUsed: z.int(),
  bytesUsed: z.int(),
});

export const UploadSessionMinted = z.strictObject({
  token: z
    .string()
    .regex(/^is_[a-z0-9]{16}_[A-Za-z0-9_-]{43}$/)
    .meta({ description: "is_<id>_<secret>: shown once, stored hashed. A bearer credential: do not log it" }),
  expiresAt: instant(),
  session: UploadSession,
});

export const UploadSessionEnvelope = z.strictObject({ session: UploadSession });
