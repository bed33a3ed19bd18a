/** Why an upload was quarantined. Stable codes: compliance reports and clients match on them. */
export const QUARANTINE_REASONS = [
  "malware", // clamd found a signature (the name is kept with the verdict)
  "malware_on_rescan", // verified, then matched by newer signatures on a rescan (packages/pipeline/src/rescan.ts)
  "type_mismatch", // sniffed type disagrees with the declared type
  "type_not_allowed", // sniffed type is not on the allowlist
  "size_mismatch", // stored size differs from the declared size
  "too_large", // stored size is above the configured maximum
  "unscannable", // the scanner could not look inside (limits exceeded, encrypted content)
  "checksum_mismatch", // sha256 of the stored bytes differs from the declared one
  "invalid_content", // text format that fails its content check (bad UTF-8, NUL, script in SVG...)
  "scan_error", // the scan kept failing until retries ran out: fail closed
  // Image metadata stripping (packages/pipeline/src/image-stripping.ts): a decoder failure
  // is a finding, never a pass.
  "image_undecodable", // the image library could not decode the image (truncated, corrupt, not what its magic says)
  "image_too_large", // the image is over the configured pixel or byte limit for stripping (a decompression bomb)
  // Active content (packages/pipeline/src/active-content): refused by default, each may be
  // allowed by policy (ACTIVE_CONTENT_ALLOW).
  "pdf_javascript", // a PDF with JavaScript (JavaScript actions, /JS, XFA forms)
  "pdf_launch_action", // a PDF with a Launch action (starts a program or opens a file)
  "pdf_embedded_file", // a PDF carrying embedded files or file attachments
  "office_macros", // an OOXML document with a VBA project or a macro-enabled content type
  "office_ole_object", // an OOXML document with ActiveX controls or embedded OLE objects
  "trailing_data", // bytes after an image's end marker (a polyglot's usual hiding place)
] as const;
export type QuarantineReason = (typeof QUARANTINE_REASONS)[number];

/** The reasons a policy may allow (ACTIVE_CONTENT_ALLOW); every other reason always quarantines. */
export const ACTIVE_CONTENT_REASONS = ["pdf_javascript", "pdf_launch_action", "pdf_embedded_file", "office_macros", "office_ole_object", "trailing_data"] as const satisfies readonly QuarantineReason[];
export type ActiveContentReason = (typeof ACTIVE_CONTENT_REASONS)[number];

export type Verdict =
  | { outcome: "clean" }
  | { outcome: "quarantine"; reason: QuarantineReason; detail: string; signature?: string };

export function clean(): Verdict {
  return { outcome: "clean" };
}

export function quarantine(reason: QuarantineReason, detail: string, signature?: string): Verdict {
  return signature === undefined ? { outcome: "quarantine", reason, detail } : { outcome: "quarantine", reason, detail, signature };
}
