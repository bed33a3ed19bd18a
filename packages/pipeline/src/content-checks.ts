import { isTextType, quarantine, type ActiveContentReason, type Upload, type Verdict } from "@intake/domain";
import { activeContentChecks } from "./active-content/active-content-check.ts";
import { ZipLimitCheck } from "./archive-limits.ts";
import { EmbeddedCabCheck } from "./embedded-cab.ts";
import { EmbeddedGzipCheck } from "./embedded-gzip.ts";
import { TextContentCheck } from "./text-content.ts";

/**
 * The checks that read the object's bytes on the scan stage's one pass (the same chunks
 * that stream to clamd): each sees every byte in order and, once the whole object has
 * passed, answers with a quarantine verdict or null. A check must keep its memory bounded
 * whatever the object's size, and must answer "not established" as a finding, never as a
 * pass: the pipeline fails closed.
 */
export interface ContentCheck {
  push(chunk: Buffer): void;
  /** Called once, after the last chunk, only when every byte of the object was pushed. */
  finish(): Verdict | null;
}

/** clamd's limits as the checks need them (from config, which agrees with clamd's own). */
export interface ClamdLimits {
  maxFileSize: number;
  maxScanSize: number;
  /** clamd's MaxRecursion: how deep nested archives are followed. */
  maxRecursion: number;
}

export interface ContentCheckContext {
  upload: Pick<Upload, "declaredType" | "sniffedType">;
  /** The object's size as storage reports it for the version being read. */
  size: number;
  clamdLimits: ClamdLimits;
  /** Active content the policy lets through (ACTIVE_CONTENT_ALLOW); absent: none, the secure default. */
  activeContentAllowed?: readonly ActiveContentReason[];
}

/** Every check that applies to this upload, in the order their findings take precedence. */
export function contentChecksFor(ctx: ContentCheckContext): ContentCheck[] {
  const checks: ContentCheck[] = [archiveCheck(ctx)];
  const text = textCheck(ctx);
  if (text) checks.push(text);
  checks.push(...activeContentChecks(ctx));
  checks.push(unscannableContainerCheck(new EmbeddedGzipCheck()), unscannableContainerCheck(new EmbeddedCabCheck()));
  return checks;
}

function unscannableContainerCheck(finder: { push(chunk: Buffer): void; finish(): string | null }): ContentCheck {
  // Containers clamd skips without an alert wherever they sit in the object: a gzip past
  // offset 0 (never opened), a cabinet (folders cut at MaxFileSize/MaxScanSize, or not
  // recognised at all); infra/clamd/README.md has the measurements.
  return {
    push: (chunk) => finder.push(chunk),
    finish: () => {
      const problem = finder.finish();
      return problem ? quarantine("unscannable", problem) : null;
    },
  };
}

function archiveCheck(ctx: ContentCheckContext): ContentCheck {
  // clamd extracts a ZIP member (found anywhere in the object, at any depth) only up to
  // MaxFileSize and then says OK about the part it saw (cli_unzip "trimming output size to
  // maxfilesize", no alert): every ZIP structure is walked and measured here instead.
  // MaxScanSize counts the object's own bytes plus everything extracted from it.
  const { maxFileSize, maxScanSize, maxRecursion } = ctx.clamdLimits;
  const zip = new ZipLimitCheck({ maxFileSize, maxTotalBytes: Math.max(0, maxScanSize - ctx.size), maxRecursion });
  return {
    push: (chunk) => zip.push(chunk),
    finish: () => {
      const problem = zip.finish(ctx.size);
      return problem ? quarantine("unscannable", `${problem}; clamd would not have scanned all of it`) : null;
    },
  };
}

function textCheck(ctx: ContentCheckContext): ContentCheck | null {
  if (!isTextType(ctx.upload.declaredType)) return null;
  const text = new TextContentCheck(ctx.upload.declaredType);
  return {
    push: (chunk) => text.push(chunk),
    finish: () => {
      const problem = text.finish();
      return problem ? quarantine("invalid_content", problem) : null;
    },
  };
}
