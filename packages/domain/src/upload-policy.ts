import { InvalidRequestError, PayloadTooLargeError } from "./errors.ts";
import { canonicalType } from "./content-types.ts";
import { quoteForMessage, textFault, textFaultMessage, validateFilename } from "./filename.ts";
import { MAX_SINGLE_PUT, planMultipart, type MultipartPlan } from "./multipart.ts";
import { multipartBound, sizeLimitFor, type Transfer } from "./upload-size.ts";

/** The rules an upload declaration is checked against; built once from configuration. */
export interface UploadPolicy {
  allowedTypes: readonly string[]; // canonical media types
  maxSize: number; // bytes
  multipartThreshold: number; // declared sizes above this get a multipart upload
  partSize: number; // preferred part size
  urlTtlSeconds: number; // default presigned URL lifetime
  maxUrlTtlSeconds: number; // cap on a client-requested lifetime
  /** New uploads ask for image metadata stripping (recorded on each: Upload.stripImageMetadata). */
  stripImageMetadata?: boolean;
  /** The tenant's policy version these rules come from (tenant-policy.ts), named in refusals. */
  policyVersion?: number;
}

/** A refusal's details name the policy version the limit comes from, when it comes from a tenant's. */
const versionOf = (policy: UploadPolicy) => (policy.policyVersion === undefined ? {} : { policyVersion: policy.policyVersion });

export interface UploadDeclaration {
  filename: string;
  contentType: string; // canonical
  /** null: the size is learned on arrival (validateSizeUnknownDeclaration). */
  size: number | null;
  /** The most bytes the upload may hold: `size` when declared (a session's budget may narrow it further). */
  sizeLimit: number;
  sha256?: string; // hex, lower case
  md5?: string; // base64, as Content-MD5 wants it
  metadata: Record<string, string>;
  multipart: MultipartPlan | null;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const MD5_B64 = /^[A-Za-z0-9+/]{22}==$/;
const METADATA_KEY = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const MAX_METADATA_ENTRIES = 16;
export const MAX_METADATA_VALUE = 512;

export interface RawDeclaration {
  filename?: unknown;
  contentType?: unknown;
  size?: unknown;
  sha256?: unknown;
  md5?: unknown;
  metadata?: unknown;
}

export function validateDeclaration(raw: RawDeclaration, policy: UploadPolicy): UploadDeclaration {
  const { filename, contentType } = validateNameAndType(raw, policy);

  const size = raw.size;
  if (typeof size !== "number" || !Number.isSafeInteger(size)) {
    throw new InvalidRequestError("invalid_size", "size must be an integer number of bytes");
  }
  if (size <= 0) {
    throw new InvalidRequestError("invalid_size", "size must be greater than 0");
  }
  if (size > policy.maxSize) {
    throw new PayloadTooLargeError("size_too_large", `size ${size} exceeds the maximum of ${policy.maxSize} bytes`, { maxSize: policy.maxSize, ...versionOf(policy) });
  }

  let sha256: string | undefined;
  if (raw.sha256 !== undefined) {
    if (typeof raw.sha256 !== "string" || !SHA256_HEX.test(raw.sha256.toLowerCase())) {
      throw new InvalidRequestError("invalid_checksum", "sha256 must be 64 hexadecimal characters");
    }
    sha256 = raw.sha256.toLowerCase();
  }
  let md5: string | undefined;
  if (raw.md5 !== undefined) {
    if (typeof raw.md5 !== "string" || !MD5_B64.test(raw.md5)) {
      throw new InvalidRequestError("invalid_checksum", "md5 must be the base64 encoding of a 16-byte MD5 digest (as in Content-MD5)");
    }
    md5 = raw.md5;
  }

  const metadata = validateMetadata(raw.metadata);
  // S3 refuses single PUTs above 5 GiB, whatever the configured threshold says.
  const multipart = size > policy.multipartThreshold || size > MAX_SINGLE_PUT ? planMultipart(size, policy.partSize) : null;
  if (multipart && (sha256 || md5)) {
    // A whole-object checksum cannot be bound into per-part URLs; the pipeline still
    // recomputes sha256 for the whole object and compares it, so we keep sha256 and refuse md5.
    if (md5) throw new InvalidRequestError("invalid_checksum", "md5 cannot be bound to a multipart upload; declare sha256 instead");
  }
  return sha256 === undefined && md5 === undefined
    ? { filename, contentType, size, sizeLimit: size, metadata, multipart }
    : { filename, contentType, size, sizeLimit: size, metadata, multipart, ...(sha256 ? { sha256 } : {}), ...(md5 ? { md5 } : {}) };
}

/**
 * A declaration without a size (the Uppy routes, when the page sends none): the upload gets
 * a size limit instead (upload-size.ts), and the client's own choice of transfer (Uppy picks
 * form POST or multipart by its own rule) is taken as it is. No checksums: nothing could bind
 * them (a POST policy has no MD5 condition, part sizes are the client's).
 */
export function validateSizeUnknownDeclaration(raw: Omit<RawDeclaration, "size" | "sha256" | "md5">, policy: UploadPolicy, transfer: Transfer): UploadDeclaration {
  const { filename, contentType } = validateNameAndType(raw, policy);
  const metadata = validateMetadata(raw.metadata);
  const sizeLimit = sizeLimitFor(policy.maxSize, transfer);
  return { filename, contentType, size: null, sizeLimit, metadata, multipart: transfer === "multipart" ? multipartBound(sizeLimit) : null };
}

function validateNameAndType(raw: Pick<RawDeclaration, "filename" | "contentType">, policy: UploadPolicy): { filename: string; contentType: string } {
  const filename = validateFilename(raw.filename);
  if (typeof raw.contentType !== "string") {
    throw new InvalidRequestError("invalid_content_type", "contentType must be a string");
  }
  const contentType = canonicalType(raw.contentType);
  if (contentType === null) {
    throw new InvalidRequestError("invalid_content_type", `contentType ${quoteForMessage(raw.contentType, 100)} is not a valid media type`);
  }
  if (!policy.allowedTypes.includes(contentType)) {
    throw new InvalidRequestError("content_type_not_allowed", `contentType ${contentType} is not allowed`, { allowed: policy.allowedTypes, ...versionOf(policy) });
  }
  return { filename, contentType };
}

/** Upload metadata: at most 16 entries of lower-case keys and short, clean string values. */
export function validateMetadata(raw: unknown): Record<string, string> {
  if (raw === undefined) return {};
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new InvalidRequestError("invalid_metadata", "metadata must be an object of string values");
  }
  const entries = Object.entries(raw);
  if (entries.length > MAX_METADATA_ENTRIES) {
    throw new InvalidRequestError("invalid_metadata", `metadata may hold at most ${MAX_METADATA_ENTRIES} entries`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of entries) {
    if (!METADATA_KEY.test(k)) {
      throw new InvalidRequestError("invalid_metadata", `metadata key ${quoteForMessage(k, 70)} must be 1-64 lower-case letters, digits, '_' or '-'`);
    }
    if (typeof v !== "string" || v.length > MAX_METADATA_VALUE) {
      throw new InvalidRequestError("invalid_metadata", `metadata value of ${k} must be a string of at most ${MAX_METADATA_VALUE} characters`);
    }
    // Metadata is echoed like the filename (UIs, audit, object metadata): the same control
    // and bidi rules. Zero-width joiners stay allowed here: they belong to emoji sequences and
    // to Persian or Indic words, and a value is never shown as a file's name.
    const fault = textFault(v, { invisible: false });
    if (fault) throw new InvalidRequestError("invalid_metadata", textFaultMessage(`metadata value of ${k}`, fault), { key: k, rule: fault.rule, ...(fault.character ? { character: fault.character } : {}) });
    out[k] = v;
  }
  return out;
}

/** A client-requested URL lifetime, defaulted and capped by policy. */
export function urlTtl(requested: unknown, policy: UploadPolicy): number {
  if (requested === undefined) return policy.urlTtlSeconds;
  if (typeof requested !== "number" || !Number.isInteger(requested) || requested < 60 || requested > policy.maxUrlTtlSeconds) {
    throw new InvalidRequestError("invalid_expiry", `expiresIn must be an integer from 60 to ${policy.maxUrlTtlSeconds} seconds`, { maxUrlTtlSeconds: policy.maxUrlTtlSeconds, ...versionOf(policy) });
  }
  return requested;
}
