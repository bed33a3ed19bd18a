import { canonicalType } from "@intake/domain";

/**
 * Content checks for formats without magic bytes (text/plain, text/csv, application/json,
 * image/svg+xml). The sniffer cannot vouch for them, so their bytes are read instead: they
 * must be valid UTF-8 without NUL bytes, JSON must parse, and an SVG must not carry active
 * content (a browser runs <script>, on* handlers and javascript: URLs of an SVG opened
 * directly; <foreignObject> embeds arbitrary HTML; <!ENTITY> enables entity-expansion bombs).
 *
 * The check is incremental: the scan stage feeds it the same chunks it streams to clamd, so
 * the object is read once. Only JSON is kept (up to JSON_LIMIT) because JSON.parse needs it
 * whole; a larger JSON cannot be validated and is refused rather than waved through.
 */
export const JSON_LIMIT = 16 * 1024 * 1024;
/** Characters kept between chunks so a pattern split across two chunks is still seen. */
const CARRY = 256;

const SVG_ACTIVE: { pattern: RegExp; what: string }[] = [
  { pattern: /<script[\s>/]/i, what: "a <script> element" },
  // Matched without requiring the enclosing tag: a tag may span two chunks, and a stray
  // " onfoo=" in text content is a false positive we accept (fail closed).
  { pattern: /\son[a-z]+\s*=/i, what: "an on* event handler attribute" },
  { pattern: /(?:java|vb)script\s*:/i, what: "a javascript: URL" },
  { pattern: /data\s*:\s*text\/html/i, what: "a data:text/html URL" },
  { pattern: /<foreignobject[\s>/]/i, what: "a <foreignObject> element" },
  { pattern: /<!entity/i, what: "an <!ENTITY> declaration" },
];

export class TextContentCheck {
  readonly type: string;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true });
  private problem: string | null = null;
  private tail = "";
  private json: string[] | null;
  private jsonLength = 0;
  private sawSvgRoot = false;
  private offset = 0;

  constructor(declaredType: string) {
    this.type = canonicalType(declaredType) ?? declaredType;
    this.json = this.type === "application/json" ? [] : null;
  }

  push(chunk: Uint8Array): void {
    if (this.problem) return;
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
    if (this.type === "image/svg+xml" && !this.sawSvgRoot) return "no <svg> root element: not an SVG image";
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
    if (this.type === "image/svg+xml") {
      const window = this.tail + text;
      if (/<svg[\s>/]/i.test(window)) this.sawSvgRoot = true;
      for (const { pattern, what } of SVG_ACTIVE) {
        if (pattern.test(window)) return this.fail(`SVG with active content: ${what}`);
      }
      this.tail = window.slice(-CARRY);
    }
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
