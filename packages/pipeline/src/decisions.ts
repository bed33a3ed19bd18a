import {
  canonicalType,
  clean,
  isTextType,
  OOXML_TYPES,
  quarantine,
  recordedSize,
  sameType,
  type Upload,
  type Verdict,
} from "@intake/domain";
import type { Stage } from "./stage-queues.ts";

/**
 * The pipeline's domain decisions, as pure functions: each takes what a stage found and
 * returns a quarantine verdict, or null when the check passed. The stages only gather
 * facts (HeadObject, magic bytes, clamd's answer) and apply what these functions say.
 */

/**
 * Size as stored vs. as declared. The signed URL binds the length, but not every store checks it.
 * An upload whose size is learned on arrival (@intake/domain upload-size.ts) is held to its
 * limit, to at least one byte, and to the size recorded on arrival (the size its quotas and
 * session budget were settled to: a bigger object put there after arrival would otherwise
 * escape them). Without a recorded size there is nothing to hold it to: refused (fail closed).
 */
export function sizeVerdict(storedSize: number, upload: Pick<Upload, "declaredSize" | "sizeLimit" | "storedSize">, maxSize: number): Verdict | null {
  if (storedSize > maxSize) return quarantine("too_large", `stored size ${storedSize} exceeds the maximum of ${maxSize} bytes`);
  if (upload.declaredSize !== null) {
    if (storedSize !== upload.declaredSize) return quarantine("size_mismatch", `stored size ${storedSize} differs from the declared ${upload.declaredSize} bytes`);
    return null;
  }
  if (storedSize > upload.sizeLimit) return quarantine("too_large", `stored size ${storedSize} exceeds this upload's limit of ${upload.sizeLimit} bytes`);
  if (storedSize === 0) return quarantine("size_mismatch", "the stored object is empty; an upload holds at least one byte");
  if (upload.storedSize === null) return quarantine("size_mismatch", "no size was recorded when the object arrived, so nothing holds it to one");
  if (storedSize !== upload.storedSize) return quarantine("size_mismatch", `stored size ${storedSize} differs from the ${upload.storedSize} bytes recorded on arrival: the object changed`);
  return null;
}

/** What the sniffer may answer for a text format (which has no magic bytes of its own). */
const TEXT_SNIFF_ACCEPTED: Record<string, readonly string[]> = {
  // file-type names an SVG that starts with <?xml as XML; the content check decides.
  "image/svg+xml": ["application/xml", "image/svg+xml"],
};

/**
 * Sniffed type vs. declared type and the allowlist. `sniffed` is file-type's mime answer,
 * undefined when it found no signature. Binary formats must be recognised; text formats
 * must not look like a binary format (their content is checked separately).
 */
export function typeVerdict(declaredType: string, sniffed: string | undefined, allowedTypes: readonly string[]): Verdict | null {
  const declared = canonicalType(declaredType) ?? declaredType;
  if (isTextType(declared)) {
    if (sniffed === undefined) return null;
    const s = canonicalType(sniffed) ?? sniffed;
    if (s === declared || (TEXT_SNIFF_ACCEPTED[declared] ?? []).includes(s)) return null;
    return quarantine("type_mismatch", `declared ${declared} (text) but the content is ${s}`);
  }
  if (sniffed === undefined) {
    return quarantine("type_mismatch", `declared ${declared} but the content carries no recognisable file signature`);
  }
  const s = canonicalType(sniffed) ?? sniffed;
  if (!allowedTypes.includes(s)) return quarantine("type_not_allowed", `the content is ${s}, which is not an allowed type (declared ${declared})`);
  if (!sameType(declared, s)) {
    // A renamed ZIP could hold anything: an OOXML declaration needs the sniffer to see
    // the OOXML entries, a bare "application/zip" answer is not enough.
    const hint = OOXML_TYPES.has(declared) && s === "application/zip" ? " (a ZIP container without the expected Office entries)" : "";
    return quarantine("type_mismatch", `declared ${declared} but the content is ${s}${hint}`);
  }
  return null;
}

/** What the malware scanner reported, in the pipeline's terms (see @intake/scanner). */
export type ScanOutcome =
  | { outcome: "clean" }
  | { outcome: "infected"; signature: string }
  | { outcome: "unscannable"; reason: string };

/**
 * The scan stage's verdict. clamd said clean only about the bytes it received: if that is
 * not the whole object (a short read, an object replaced mid-stream), nothing is proven.
 */
export function scanVerdict(
  report: ScanOutcome & { bytes: number; sha256: string },
  expect: { size: number; declaredSha256: string | null },
): Verdict | null {
  if (report.outcome === "infected") return quarantine("malware", `clamd found ${report.signature}`, report.signature);
  if (report.outcome === "unscannable") return quarantine("unscannable", report.reason);
  if (report.bytes !== expect.size) {
    return quarantine("size_mismatch", `the scanner received ${report.bytes} bytes but the object has ${expect.size}: the object changed during processing`);
  }
  if (expect.declaredSha256 !== null && report.sha256 !== expect.declaredSha256.toLowerCase()) {
    return quarantine("checksum_mismatch", `sha256 of the stored bytes is ${report.sha256}, declared ${expect.declaredSha256}`);
  }
  return null;
}

/** The final verdict: the first quarantine finding wins, otherwise clean. */
export function finalVerdict(...findings: (Verdict | null)[]): Verdict {
  return findings.find((f): f is Verdict => f !== null) ?? clean();
}

/**
 * Whether an upload is checked in one pass (one-pass.ts): by its declared size, which the
 * signed URL binds, or the size recorded on arrival. A client that stores more gains nothing:
 * the one-pass read stops at that size and the size check quarantines the upload. No size
 * recorded yet: the staged path, whose inspect stage refuses it.
 */
export function isOnePass(upload: Pick<Upload, "declaredSize" | "storedSize">, onePassMaxBytes: number): boolean {
  const size = recordedSize(upload);
  return size !== null && size <= onePassMaxBytes;
}

/**
 * The stage that moves an upload on from its status; null when the pipeline does not own
 * it. An upload checked in one pass goes from `uploaded` (or `inspecting`, where a one-pass
 * run was interrupted) straight to the scan stage, whose workers hold clamd.
 */
export function stageFor(upload: Pick<Upload, "status" | "declaredSize" | "storedSize">, onePassMaxBytes = 0): Stage | null {
  switch (upload.status) {
    case "uploaded":
    case "inspecting":
      return isOnePass(upload, onePassMaxBytes) ? "scan" : "inspect";
    case "scanning":
      return "scan";
    case "deciding":
      return "finalize";
    default:
      return null;
  }
}
