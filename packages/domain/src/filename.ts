import { InvalidRequestError } from "./errors.ts";

/**
 * The client's filename is kept for display and for Content-Disposition on download only;
 * it never becomes part of an object key (OWASP: store under a generated name). It is still
 * checked, because it will be echoed into headers and UIs.
 */
export const MAX_FILENAME_BYTES = 255;

// C0/C1 controls, DEL, and the line/paragraph separators U+2028/U+2029 (line breaks in
// JavaScript and in many UIs, so they can forge a second line in a log or a listing).
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/u;
// The Unicode bidi controls that let "exe.pdf" display as "fdp.exe" (CVE-2021-42574 style):
// LRE/RLE/PDF/LRO/RLO U+202A-U+202E, LRI/RLI/FSI/PDI U+2066-U+2069, and the marks
// U+200E/U+200F/U+061C.
const BIDI = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/u;
// Characters that display as nothing, so two names that look the same differ ("inv\u200Boice.pdf"
// beside "invoice.pdf"), or a name hides what a reader sees: every format character (\p{Cf}:
// U+200B-U+200D zero-width space/non-joiner/joiner, U+2060 word joiner, U+FEFF BOM, U+00AD
// soft hyphen, U+2061-U+2064 invisible operators, U+180E, the tag characters U+E0000-U+E007F,
// and the bidi controls above, which are tested first for a clearer message), plus blank
// letters that are not Cf: the combining grapheme joiner U+034F, Hangul fillers U+115F,
// U+1160, U+3164, U+FFA0, Khmer U+17B4/U+17B5 and the Mongolian variation selectors.
const INVISIBLE = /[\p{Cf}\u034f\u115f\u1160\u3164\uffa0\u17b4\u17b5\u180b-\u180f]/u;

// Without the u flag, so the halves of a pair are seen one by one.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Which rule a piece of client text breaks, or null; shared by filenames and metadata values. */
export type TextFault = { rule: "control" | "bidi" | "invisible" | "unpaired_surrogate"; character?: string; index?: number };

/**
 * Control and bidi characters are refused everywhere client text is echoed; zero-width and
 * other invisible characters additionally where `invisible` is set (filenames: they make
 * look-alike names). A lone UTF-16 surrogate (JSON allows "\ud800") has no UTF-8 form at all.
 */
export function textFault(text: string, o: { invisible: boolean }): TextFault | null {
  if (LONE_SURROGATE.test(text)) return { rule: "unpaired_surrogate" };
  for (const [rule, re] of [["control", CONTROL], ["bidi", BIDI], ...(o.invisible ? [["invisible", INVISIBLE] as const] : [])] as const) {
    const m = re.exec(text);
    if (m) return { rule, character: codePoint(m[0]), index: m.index };
  }
  return null;
}

const FAULT_MESSAGE: Record<TextFault["rule"], string> = {
  control: "must not contain NUL, control or line separator characters",
  bidi: "must not contain bidirectional override characters",
  invisible: "must not contain zero-width or other invisible characters (such as U+200B, U+200D, U+2060 or the U+FEFF byte order mark)",
  unpaired_surrogate: "must be valid Unicode (it holds an unpaired surrogate)",
};

/** "filename must not contain ... (U+200B at index 3)" */
export function textFaultMessage(subject: string, f: TextFault): string {
  return `${subject} ${FAULT_MESSAGE[f.rule]}${f.character ? ` (${f.character} at index ${f.index})` : ""}`;
}

export function validateFilename(raw: unknown): string {
  if (typeof raw !== "string") {
    throw new InvalidRequestError("invalid_filename", "filename must be a string");
  }
  // Tested before normalizing: NFC would fail on (and could not fix) a lone surrogate.
  const fault = textFault(raw, { invisible: true });
  if (fault) throw new InvalidRequestError("invalid_filename", textFaultMessage("filename", fault), { rule: fault.rule, ...(fault.character ? { character: fault.character } : {}) });
  const name = raw.normalize("NFC");
  if (name.trim().length === 0) {
    throw new InvalidRequestError("invalid_filename", "filename must not be empty");
  }
  if (Buffer.byteLength(name, "utf8") > MAX_FILENAME_BYTES) {
    throw new InvalidRequestError("invalid_filename", `filename must be at most ${MAX_FILENAME_BYTES} bytes in UTF-8`);
  }
  if (name.includes("/") || name.includes("\\")) {
    throw new InvalidRequestError("invalid_filename", "filename must not contain path separators");
  }
  // Padding does not help: " .." and ". ." are ".." to whatever trims the name (Windows drops
  // trailing dots and spaces too, so "..." is no name at all there).
  if (/^[.\s]+$/u.test(name)) {
    throw new InvalidRequestError("invalid_filename", "filename must not be a relative path (a name of only dots and spaces)");
  }
  return name;
}

/**
 * Client text quoted into an error message, which clients and UIs show like any text we
 * echo: JSON-quoted, cut to `max` characters, and everything outside printable ASCII
 * written as \uXXXX, so a refused value cannot carry its bidi override or line separator
 * into the message that refuses it.
 */
export function quoteForMessage(text: string, max: number): string {
  return JSON.stringify(text.slice(0, max)).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function codePoint(ch: string): string {
  return `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * A Content-Disposition value that is safe in a header: an ASCII fallback (quotes,
 * backslashes, ';', '%', '=' and non-ASCII replaced) plus the RFC 6266/5987 filename* form
 * for the real name, so browsers show the original while nothing can break out of the
 * header. Without '=' the fallback holds no RFC 2047 encoded word ("=?UTF-8?Q?=E2=80=AE..."
 * is plain ASCII, so the filename rules pass it, yet a client that decodes it reads a
 * right-to-left override) and no "filename*=" for a lax parser to take for the parameter.
 */
export function contentDisposition(filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, "_").replace(/["\\;%=]/g, "_");
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
