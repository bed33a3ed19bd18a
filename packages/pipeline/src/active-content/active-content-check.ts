import { ACTIVE_CONTENT_REASONS, canonicalType, OOXML_TYPES, quarantine, type ActiveContentReason, type Verdict } from "@intake/domain";
import type { ContentCheck, ContentCheckContext } from "../content-checks.ts";
import type { Finding } from "./findings.ts";
import { IMAGE_FORMATS, ImageTrailerCheck } from "./image-trailer.ts";
import { OoxmlActiveContentCheck } from "./ooxml-check.ts";
import { PdfActiveContentCheck } from "./pdf-check.ts";

/**
 * Active content as a policy: PDFs with JavaScript, Launch actions or embedded files,
 * OOXML documents with macros or ActiveX/OLE objects, and data after an image's end marker
 * each quarantine with their own reason unless the policy allows that reason
 * (ACTIVE_CONTENT_ALLOW; by default nothing is allowed). What a check could not establish
 * (unscannable) or a file that is not the format it claims (invalid_content) is never
 * allowed.
 *
 * PDF and OOXML checks apply when the sniffed or the declared type names the format (a
 * mismatch quarantines anyway, but the content is not waved through meanwhile); the image
 * check applies by the sniffed type, which is what a viewer renders.
 */
export function activeContentChecks(ctx: ContentCheckContext): ContentCheck[] {
  const types = [ctx.upload.sniffedType, ctx.upload.declaredType].map((t) => (t ? canonicalType(t) : null));
  const sniffed = types[0];
  const allowed = new Set<ActiveContentReason>(ctx.activeContentAllowed ?? []);
  const { maxFileSize, maxScanSize } = ctx.clamdLimits;
  const checks: ContentCheck[] = [];
  if (types.includes("application/pdf")) {
    const pdf = new PdfActiveContentCheck({ maxStreamBytes: Math.min(maxFileSize, maxScanSize), maxTotalBytes: maxScanSize });
    checks.push({ push: (c) => pdf.push(c), finish: () => decide(pdf.finish(), allowed) });
  }
  if (types.some((t) => t !== null && OOXML_TYPES.has(t))) {
    const ooxml = new OoxmlActiveContentCheck({ maxTotalBytes: maxScanSize });
    checks.push({ push: (c) => ooxml.push(c), finish: () => decide(ooxml.finish(), allowed) });
  }
  const format = sniffed ? IMAGE_FORMATS[sniffed] : undefined;
  if (format) {
    const image = new ImageTrailerCheck(format);
    checks.push({ push: (c) => image.push(c), finish: () => decide(listOf(image.finish()), allowed) });
  }
  return checks;
}

const listOf = (f: Finding | null): Finding[] => (f ? [f] : []);

/** Reasons in the order their findings take precedence when a file has several. */
const PRECEDENCE: Finding["reason"][] = [...ACTIVE_CONTENT_REASONS, "invalid_content", "unscannable"];

/** The verdict for a check's findings: the first one the policy does not allow, or null. */
export function decide(findings: Finding[], allowed: ReadonlySet<ActiveContentReason>): Verdict | null {
  const refused = findings.filter((f) => !allowed.has(f.reason as ActiveContentReason));
  refused.sort((a, b) => PRECEDENCE.indexOf(a.reason) - PRECEDENCE.indexOf(b.reason));
  const first = refused[0];
  return first ? quarantine(first.reason, first.detail) : null;
}
