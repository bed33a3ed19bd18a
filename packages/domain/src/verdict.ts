/** Why an upload was quarantined. Stable codes: compliance reports and clients match on them. */
export const QUARANTINE_REASONS = [
  "malware", // clamd found a signature (the name is kept with the verdict)
  "type_mismatch", // sniffed type disagrees with the declared type
  "type_not_allowed", // sniffed type is not on the allowlist
  "size_mismatch", // stored size differs from the declared size
  "too_large", // stored size is above the configured maximum
  "unscannable", // the scanner could not look inside (limits exceeded, encrypted content)
  "checksum_mismatch", // sha256 of the stored bytes differs from the declared one
  "invalid_content", // text format that fails its content check (bad UTF-8, NUL, script in SVG...)
  "scan_error", // the scan kept failing until retries ran out: fail closed
] as const;
export type QuarantineReason = (typeof QUARANTINE_REASONS)[number];

export type Verdict =
  | { outcome: "clean" }
  | { outcome: "quarantine"; reason: QuarantineReason; detail: string; signature?: string };

export function clean(): Verdict {
  return { outcome: "clean" };
}

export function quarantine(reason: QuarantineReason, detail: string, signature?: string): Verdict {
  return signature === undefined ? { outcome: "quarantine", reason, detail } : { outcome: "quarantine", reason, detail, signature };
}
