/**
 * What a content type is, as far as validation is concerned.
 *
 * Declared types come from clients and are normalised before comparison: lower case,
 * parameters dropped, and a few historical aliases folded into one canonical name
 * (image/jpg is what many browsers and SDKs send for JPEG). The equivalence table is the
 * documented list of such aliases; anything not in it must match exactly.
 */
const ALIASES: Record<string, string> = {
  "image/jpg": "image/jpeg",
  "image/pjpeg": "image/jpeg",
  "image/x-png": "image/png",
  "application/x-pdf": "application/pdf",
  "application/x-zip-compressed": "application/zip",
  "application/x-zip": "application/zip",
  "text/x-csv": "text/csv",
  "application/csv": "text/csv",
  "text/json": "application/json",
  "audio/mp3": "audio/mpeg",
  "image/x-ms-bmp": "image/bmp",
  "image/tif": "image/tiff",
};

/** Types with no magic bytes: checked by reading their content instead of sniffing. */
export const TEXT_TYPES = new Set(["text/plain", "text/csv", "application/json", "image/svg+xml"]);

/**
 * Container formats that file-type reports by their container: an .xlsx is a ZIP, and
 * file-type names it precisely only when it sees the right entry. When the sniffer says
 * "application/zip" for a declared OOXML type we do not accept it (a renamed ZIP could be
 * anything); the sniffer is given enough bytes to name OOXML properly.
 */
export const OOXML_TYPES = new Set([
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation",
]);

const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

/** Canonical form of a media type, or null when it is not a syntactically valid one. */
export function canonicalType(raw: string): string | null {
  const bare = raw.split(";")[0]!.trim().toLowerCase();
  if (!MEDIA_TYPE.test(bare)) return null;
  return ALIASES[bare] ?? bare;
}

/** Whether two types name the same format, after aliases are folded. */
export function sameType(a: string, b: string): boolean {
  const ca = canonicalType(a);
  return ca !== null && ca === canonicalType(b);
}

export function isTextType(type: string): boolean {
  const c = canonicalType(type);
  return c !== null && TEXT_TYPES.has(c);
}
