import { canonicalType } from "@intake/domain";
import { SvgContentCheck } from "./svg-content.ts";

/**
 * Content checks for formats without magic bytes (text/plain, text/csv, application/json,
 * image/svg+xml). The sniffer cannot vouch for them, so their bytes are read instead: they
 * must be valid UTF-8 without NUL bytes, JSON must parse, and an SVG must hold nothing but
 * allowlisted, inert SVG (svg-content.ts: a namespace-aware XML parse, because a browser
 * runs <script>, on* handlers and javascript: URLs of an SVG opened directly, and a regex
 * cannot know what a prefix, a namespace or a character reference turns a name into).
 *
 * The check is incremental: the scan stage feeds it the same chunks it streams to clamd, so
 * the object is read once. Only JSON is kept (up to JSON_LIMIT) because JSON.parse needs it
 * whole; a larger JSON cannot be validated and is refused rather than waved through. The
 * SVG parser keeps only what its limits allow (SVG_LIMITS).
 */
export const JSON_LIMIT = 16 * 1024 * 1024;

export class TextContentCheck {
  readonly type: string;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });
  private problem: string | null = null;
  private json: string[] | null;
  private jsonLength = 0;
  private readonly svg: SvgContentCheck | null;
  private offset = 0;

  constructor(declaredType: string) {
    this.type = canonicalType(declaredType) ?? declaredType;
    this.json = this.type === "application/json" ? [] : null;
    this.svg = this.type === "image/svg+xml" ? new SvgContentCheck() : null;
  }

  push(chunk: Uint8Array): void {
    // Once the SVG parser has refused, nothing later can change the answer: skip the rest.
    if (this.problem || this.svg?.finding) return;
    const nul = chunk.indexOf(0);
    if (nul !== -1) return this.fail(`NUL byte at offset ${this.offset + nul}: not a text file`);
    let text: string;
    try {
      text = this.decoder.decode(chunk, { stream: true });
    } catch {
      return this.fail(`invalid UTF-8 near offset ${this.offset}`);
    }
    this.offset += chunk.length;
    this.inspectText(text);
  }

  /** The problem found, or null when the content passed. Call once, after the last chunk. */
  finish(): string | null {
    if (!this.problem) {
      try {
        this.inspectText(this.decoder.decode());
      } catch {
        this.fail("invalid UTF-8: the content ends inside a multi-byte sequence");
      }
    }
    if (this.problem) return this.problem;
    if (this.svg) return this.svg.finish();
    if (this.json) {
      try {
        JSON.parse(this.json.join(""));
      } catch (err) {
        return `not valid JSON: ${(err as Error).message.slice(0, 200)}`;
      }
    }
    return null;
  }

  private inspectText(text: string): void {
    if (this.problem || text.length === 0) return;
    if (this.json) {
      this.jsonLength += text.length;
      if (this.jsonLength > JSON_LIMIT) return this.fail(`JSON larger than ${JSON_LIMIT} characters cannot be validated`);
      this.json.push(text);
    }
    this.svg?.push(text);
  }

  private fail(problem: string): void {
    this.problem ??= problem;
  }
}

/** Convenience for whole buffers (tests, small objects). */
export function checkTextContent(declaredType: string, bytes: Uint8Array): string | null {
  const check = new TextContentCheck(declaredType);
  check.push(bytes);
  return check.finish();
}
