import * as z from "zod";
import { MAX_METADATA_ENTRIES, MAX_METADATA_VALUE, UPLOAD_STATUSES } from "@intake/domain";

/**
 * Building blocks the request and response schemas share. Each request field carries the
 * message a client sees when its shape is wrong (the domain's wording, where it had one),
 * so a 400 names the field: the API maps an issue to our error with the code of its field
 * (the `*_ERRORS` tables next to each request schema).
 */
export const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
export const MD5_BASE64 = /^[A-Za-z0-9+/]{22}==$/;
export const UPLOAD_ID = /^[A-Za-z0-9_-]{1,64}$/;
const METADATA_KEY = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** An ISO 8601 instant in UTC, as Date.toISOString() writes it. */
export const instant = () => z.iso.datetime();

export const UploadStatus = z.enum(UPLOAD_STATUSES);

export const sha256Hex = (what: string) =>
  z.string({ error: `${what} must be 64 hexadecimal characters` }).regex(SHA256_HEX, { error: `${what} must be 64 hexadecimal characters` });

export const md5Base64 = (what: string) => {
  const message = `${what} must be the base64 encoding of a 16-byte MD5 digest (as in Content-MD5)`;
  return z.string({ error: message }).regex(MD5_BASE64, { error: message });
};

/** Upload metadata on the way in: its values' characters are the domain's rule (validateMetadata). */
export const metadataInput = (description: string) => {
  const values = `metadata values must be strings of at most ${MAX_METADATA_VALUE} characters`;
  return z
    .record(
      z.string().regex(METADATA_KEY, { error: "metadata keys must be 1-64 lower-case letters, digits, '_' or '-'" }),
      z.string({ error: values }).max(MAX_METADATA_VALUE, { error: values }).meta({ description: "No control or bidi characters" }),
      { error: "metadata must be an object of string values" },
    )
    .meta({ maxProperties: MAX_METADATA_ENTRIES, description });
};

export const metadataOutput = () => z.record(z.string(), z.string());

/** A URL lifetime in seconds; the upper bound is policy (the domain's urlTtl, the multipart TTL). */
export const expiresInSeconds = (description: string) =>
  z.int({ error: "expiresIn must be an integer number of seconds, at least 60" }).min(60, { error: "expiresIn must be an integer number of seconds, at least 60" }).meta({ description });

/** A query parameter holding a small non-negative integer: digits only (no sign, exponent, hex or spaces). */
export const queryInteger = (min: number, max: number, message: string) =>
  z
    .string({ error: message })
    .regex(/^[0-9]{1,6}$/, { error: message })
    .pipe(z.transform(Number))
    .pipe(z.int().min(min, { error: message }).max(max, { error: message }));
