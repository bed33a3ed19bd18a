/**
 * Pure interpretation of clamd replies. Kept apart from the socket code so every rule that
 * decides "clean" can be unit-tested exhaustively.
 *
 * Rules (fail closed): the ONLY clean reply is exactly "stream: OK" (plus the NUL/newline
 * terminator). Anything unexpected is an error, never clean.
 *
 * "Safe" parsing: replies come from the network, so no backtracking regular expressions,
 * only linear string operations on a reply capped at MAX_REPLY_CHARS; the cost does not
 * depend on crafted input beyond its (bounded) length.
 */

/** Replies longer than this are not clamd INSTREAM/VERSION replies: treated as garbage. */
export const MAX_REPLY_CHARS = 16 * 1024;

/** Why an object could not be judged, for machines (the report's `reason` is for humans). */
export type UnscannableKind =
  /** The stream exceeded clamd's StreamMaxLength ("INSTREAM size limit exceeded. ERROR"). */
  | "stream_limit_exceeded"
  /** Heuristics.Limits.Exceeded.*: MaxFileSize, MaxScanSize, MaxRecursion, MaxFiles, MaxScanTime. */
  | "scan_limit_exceeded"
  /** Heuristics.Encrypted.*: encrypted archive or document, contents not inspectable. */
  | "encrypted"
  /**
   * Intake.Unscannable.*: a container clamd unpacks but cuts short without any alert (CAB
   * past MaxFileSize/MaxScanSize, 7z with coders clamd lacks), named by the project's own
   * signatures (infra/clamd/up.sh) wherever clamd meets it.
   */
  | "unsupported_container";

/** Transient failure kinds; the caller retries these, and they are never a verdict. */
export type ReplyErrorKind = "empty_reply" | "unknown_reply" | "error_reply";

export type ClamdReplyClass =
  | { outcome: "clean" }
  | { outcome: "infected"; signature: string }
  | { outcome: "unscannable"; kind: UnscannableKind; reason: string; signature?: string }
  | { outcome: "error"; kind: ReplyErrorKind; message: string };

const STREAM_PREFIX = "stream: ";
const FOUND_SUFFIX = " FOUND";
const CLEAN_LINE = "stream: OK";
const SIZE_LIMIT_LINE = "INSTREAM size limit exceeded. ERROR";
const LIMITS_PREFIX = "Heuristics.Limits.Exceeded";
const ENCRYPTED_PREFIX = "Heuristics.Encrypted";
/** Signature names infra/clamd/up.sh gives containers clamd would skip silently. */
export const UNSCANNABLE_SIGNATURE_PREFIX = "Intake.Unscannable.";

/** Split on NUL and LF (z- and n-prefixed commands), drop CRs and empty records. */
function records(raw: string): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i <= raw.length; i++) {
    const c = i < raw.length ? raw.charCodeAt(i) : 0;
    if (i === raw.length || c === 0 || c === 10) {
      let end = i;
      while (end > start && (raw.charCodeAt(end - 1) === 13 || raw.charCodeAt(end - 1) === 32)) end--;
      let s = start;
      while (s < end && raw.charCodeAt(s) === 32) s++;
      if (end > s) out.push(raw.slice(s, end));
      start = i + 1;
    }
  }
  return out;
}

function hasControlChars(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 32 || c === 127) return true;
  }
  return false;
}

/**
 * Classify the raw text clamd sent back for an INSTREAM scan.
 *
 * Several records can appear (AllMatchScan); precedence, most severe first:
 * infected > error > unscannable > clean. An infection is reported even next to errors
 * (quarantine is the safe side); an error beats "unscannable" so the caller retries rather
 * than giving a final verdict on a confused reply; clean needs every record to be clean.
 */
export function classifyClamdReply(raw: string): ClamdReplyClass {
  if (raw.length > MAX_REPLY_CHARS) {
    return { outcome: "error", kind: "unknown_reply", message: `reply of ${raw.length} characters is not a clamd scan reply` };
  }
  const lines = records(raw);
  if (lines.length === 0) return { outcome: "error", kind: "empty_reply", message: "clamd sent an empty reply" };

  let infected: string | undefined;
  let error: { kind: ReplyErrorKind; message: string } | undefined;
  let unscannable: { kind: UnscannableKind; reason: string; signature?: string } | undefined;
  let clean = 0;

  for (const line of lines) {
    if (hasControlChars(line)) {
      error ??= { kind: "unknown_reply", message: `unexpected control characters in clamd reply` };
    } else if (line === CLEAN_LINE) {
      clean++;
    } else if (line === SIZE_LIMIT_LINE) {
      unscannable ??= {
        kind: "stream_limit_exceeded",
        reason: "the object is larger than clamd's StreamMaxLength: it was not scanned",
      };
    } else if (line.startsWith(STREAM_PREFIX) && line.endsWith(FOUND_SUFFIX) && line.length > STREAM_PREFIX.length + FOUND_SUFFIX.length) {
      const signature = line.slice(STREAM_PREFIX.length, line.length - FOUND_SUFFIX.length).trim();
      if (signature.length === 0) {
        error ??= { kind: "unknown_reply", message: `FOUND without a signature name: ${line}` };
      } else if (signature.startsWith(LIMITS_PREFIX)) {
        unscannable ??= {
          kind: "scan_limit_exceeded",
          reason: `clamd scan limits exceeded (${signature}): the content was not fully inspected`,
          signature,
        };
      } else if (signature.startsWith(UNSCANNABLE_SIGNATURE_PREFIX)) {
        unscannable ??= {
          kind: "unsupported_container",
          reason: `a container clamd cannot fully unpack (${signature}): its content was not all inspected`,
          signature,
        };
      } else if (signature.startsWith(ENCRYPTED_PREFIX)) {
        unscannable ??= {
          kind: "encrypted",
          reason: `encrypted content (${signature}): clamd cannot inspect it`,
          signature,
        };
      } else {
        infected ??= signature;
      }
    } else if (line.endsWith("ERROR")) {
      error ??= { kind: "error_reply", message: `clamd error: ${line}` };
    } else {
      error ??= { kind: "unknown_reply", message: `unrecognised clamd reply: ${line.slice(0, 200)}` };
    }
  }

  if (infected !== undefined) return { outcome: "infected", signature: infected };
  if (error) return { outcome: "error", ...error };
  if (unscannable) return { outcome: "unscannable", ...unscannable };
  if (clean === lines.length) return { outcome: "clean" };
  // Unreachable: every record above is clean, infected, unscannable or an error.
  return { outcome: "error", kind: "unknown_reply", message: "unclassifiable clamd reply" };
}

/** What clamd's VERSION command says about itself. */
export interface ScannerVersion {
  /** "ClamAV 1.4.6" */
  engine: string;
  /** Daily signature database version ("27441"), or "none" when clamd reports none:
   * only custom/test databases are loaded (see hasTestSignaturesOnly). */
  signatures: string;
  /** Date of that database as clamd prints it ("Sat Nov 21 09:25:02 2026"). */
  signaturesDate?: string;
  raw: string;
}

/** Parse "ClamAV 1.4.6/27441/Sat Nov 21 09:25:02 2026" (or plain "ClamAV 1.4.6"). */
export function parseVersionReply(raw: string): ScannerVersion | null {
  const lines = records(raw);
  if (lines.length !== 1 || raw.length > MAX_REPLY_CHARS) return null;
  const line = lines[0]!;
  if (!line.startsWith("ClamAV ") || hasControlChars(line)) return null;
  const [engine, signatures, ...date] = line.split("/");
  if (!engine) return null;
  const result: ScannerVersion = { engine: engine.trim(), signatures: signatures?.trim() || "none", raw: line };
  const d = date.join("/").trim();
  if (d) result.signaturesDate = d;
  return result;
}
