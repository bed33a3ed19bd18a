import { InvalidRequestError } from "./errors.ts";

/**
 * The client's filename is kept for display and for Content-Disposition on download only;
 * it never becomes part of an object key (OWASP: store under a generated name). It is still
 * checked, because it will be echoed into headers and UIs.
 */
export const MAX_FILENAME_BYTES = 255;

// C0/C1 controls, DEL, and the Unicode bidi controls that let "exe.pdf" display as "fdp.exe"
// (CVE-2021-42574 style): LRE/RLE/PDF/LRO/RLO U+202A-U+202E, LRI/RLI/FSI/PDI U+2066-U+2069,
// and the marks U+200E/U+200F/U+061C.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
const BIDI = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/u;

export function validateFilename(raw: unknown): string {
  if (typeof raw !== "string") {
    throw new InvalidRequestError("invalid_filename", "filename must be a string");
  }
  const name = raw.normalize("NFC");
  if (name.trim().length === 0) {
    throw new InvalidRequestError("invalid_filename", "filename must not be empty");
  }
  if (Buffer.byteLength(name, "utf8") > MAX_FILENAME_BYTES) {
    throw new InvalidRequestError("invalid_filename", `filename must be at most ${MAX_FILENAME_BYTES} bytes in UTF-8`);
  }
  if (CONTROL.test(name)) {
    throw new InvalidRequestError("invalid_filename", "filename must not contain NUL or control characters");
  }
  if (BIDI.test(name)) {
    throw new InvalidRequestError("invalid_filename", "filename must not contain bidirectional override characters");
  }
  if (name.includes("/") || name.includes("\\")) {
    throw new InvalidRequestError("invalid_filename", "filename must not contain path separators");
  }
  if (name === "." || name === "..") {
    throw new InvalidRequestError("invalid_filename", "filename must not be a relative path");
  }
  return name;
}

/**
 * A Content-Disposition value that is safe in a header: an ASCII fallback (quotes,
 * backslashes, ';' and non-ASCII replaced) plus the RFC 6266/5987 filename* form for the
 * real name, so browsers show the original while nothing can break out of the header.
 */
export function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, "_").replace(/["\\;%]/g, "_");
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
