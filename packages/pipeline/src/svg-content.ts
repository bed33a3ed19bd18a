import { SaxesParser, type SaxesAttributeNS, type SaxesTagNS } from "saxes";
import {
  CSS_TEXT_ELEMENTS,
  IMAGE_ELEMENTS,
  INERT_ATTRIBUTE_PREFIX,
  INERT_NAMESPACES,
  SVG_ATTRIBUTES,
  SVG_ELEMENTS,
  SVG_NS,
  XLINK_ATTRIBUTES,
  XLINK_NS,
  XML_ATTRIBUTES,
  XML_NS,
  XMLNS_NS,
} from "./svg-allowlist.ts";
import { cssProblem } from "./svg-css.ts";
import { hrefProblem, scriptUrlIn } from "./svg-references.ts";

/**
 * An SVG, checked as a browser would read it: parsed as namespace-aware XML (saxes, fed the
 * decoded text chunk by chunk as the scan stage streams it) and held to an allowlist of
 * elements, attributes and reference targets (svg-allowlist.ts, svg-references.ts,
 * svg-css.ts). Refused outright: any DOCTYPE (internal subsets declare entities, the bombs
 * and external entities; external ones are fetches), entity references beyond the five
 * XML ones (saxes knows no others once there is no DTD), processing instructions other
 * than the XML declaration (<?xml-stylesheet?> runs XSLT, which can script), an XML
 * declaration naming another encoding than the UTF-8 we decoded, or XML 1.1 (which admits
 * control characters through character references), and anything not well-formed.
 *
 * Memory stays bounded whatever the file's size: element depth, attributes per element and
 * the length of any one token saxes buffers (open tag, text run, comment, CDATA, DOCTYPE)
 * are capped, as is the CSS of one <style> element; the file's total length is capped too,
 * for the CPU time.
 */
export interface SvgLimits {
  maxDepth: number;
  maxAttributes: number;
  maxTokenChars: number;
  maxStyleChars: number;
  /** The whole file, in characters: parsing is CPU-bound (saxes, a few MiB/s on one core). */
  maxTotalChars: number;
}

export const SVG_LIMITS: Readonly<SvgLimits> = {
  maxDepth: 256,
  maxAttributes: 256,
  /** Large enough for an embedded base64 raster of ~12 MB, as Inkscape writes them. */
  maxTokenChars: 16 * 1024 * 1024,
  maxStyleChars: 1024 * 1024,
  // No drawing is this large; a file that is would hold a worker for a minute or more and,
  // near MAX_UPLOAD_BYTES, run into CLAMD_TIMEOUT_MS: refused with a reason instead.
  maxTotalChars: 256 * 1024 * 1024,
};

/** Thrown inside saxes handlers to stop the parse at the first finding. */
class SvgRefusal extends Error {}

type Where = { line: number; column: number };

export class SvgContentCheck {
  private readonly parser = new SaxesParser({ xmlns: true, position: true });
  private problem: string | null = null;
  private depth = 0;
  private attributeCount = 0;
  private tagAt: Where = { line: 1, column: 1 };
  /** Characters written to saxes so far. */
  private fed = 0;
  /** Where the last event left saxes (its position, in characters): what it read since is buffered in it. */
  private eventAt = 0;
  /** The CSS text of the <style> element being read, when inside one. */
  private style: { parts: string[]; length: number; at: Where } | null = null;

  private readonly limits: SvgLimits;

  constructor(limits: SvgLimits = SVG_LIMITS) {
    this.limits = limits;
    const p = this.parser;
    p.on("error", (err) => this.malformed(err.message));
    p.on("xmldecl", (decl) => this.xmlDeclaration(decl.version, decl.encoding));
    p.on("doctype", () => this.refuse(`SVG with a DOCTYPE declaration${this.here()}: DTDs (entity declarations, external subsets) are refused`));
    p.on("processinginstruction", (pi) => this.refuse(`SVG with the processing instruction <?${pi.target}?>${this.here()}: only the XML declaration is allowed`));
    p.on("comment", () => this.sawEvent());
    p.on("opentagstart", () => this.tagStart());
    p.on("attribute", () => this.attribute());
    p.on("opentag", (tag) => this.openTag(tag));
    p.on("text", (text) => this.text(text));
    p.on("cdata", (text) => this.text(text));
    p.on("closetag", (tag) => this.closeTag(tag));
  }

  /** The first problem found so far (the answer cannot change once there is one). */
  get finding(): string | null {
    return this.problem;
  }

  /** Feeds decoded text; returns at once when a problem was already found. */
  push(text: string): void {
    if (this.problem !== null || text.length === 0) return;
    this.run(() => {
      if (this.fed + text.length > this.limits.maxTotalChars) this.refuse(`SVG larger than ${this.limits.maxTotalChars} characters: not parsed`);
      this.parser.write(text);
      // Measured with our own count: saxes' position getter is only right inside its handlers.
      this.fed += text.length;
      if (this.fed - this.eventAt > this.limits.maxTokenChars) {
        this.refuse(`SVG with a single tag, text run, comment or CDATA section longer than ${this.limits.maxTokenChars} characters${this.here()}`);
      }
    });
  }

  /** The problem found, or null when the SVG passed. Call once, after the last chunk. */
  finish(): string | null {
    if (this.problem === null) this.run(() => void this.parser.close());
    return this.problem;
  }

  private run(step: () => void): void {
    try {
      step();
    } catch (err) {
      // Anything saxes throws on its own is input it could not handle: refused, not a crash.
      this.problem ??= err instanceof SvgRefusal ? err.message : `SVG could not be parsed: ${(err as Error).message}`;
    }
  }

  private refuse(problem: string): never {
    throw new SvgRefusal(problem);
  }

  private here(at: Where = { line: this.parser.line, column: this.parser.column + 1 }): string {
    return ` at line ${at.line}, column ${at.column}`;
  }

  private malformed(message: string): never {
    // saxes resolves only the five XML entities once there is no DTD (and a DTD is refused
    // before any reference to it could be read): any other name ends here.
    if (message.endsWith("undefined entity.")) {
      this.refuse(`SVG with an entity reference other than &lt; &gt; &amp; &quot; &apos; (${message}): entities are refused`);
    }
    this.refuse(`SVG is not well-formed XML: ${message}`);
  }

  private sawEvent(): void {
    this.eventAt = this.parser.position;
  }

  private xmlDeclaration(version: string | undefined, encoding: string | undefined): void {
    this.sawEvent();
    if (version !== "1.0") this.refuse(`SVG declared as XML ${version ?? "(no version)"}: only XML 1.0 is accepted`);
    if (encoding !== undefined && !/^utf-?8$/i.test(encoding)) {
      this.refuse(`SVG declared in the encoding ${JSON.stringify(encoding)}: only UTF-8 is accepted (the bytes were read as UTF-8)`);
    }
  }

  private tagStart(): void {
    this.sawEvent();
    this.tagAt = { line: this.parser.line, column: this.parser.column + 1 };
    this.attributeCount = 0;
    if (this.depth >= this.limits.maxDepth) this.refuse(`SVG nested deeper than ${this.limits.maxDepth} elements${this.here(this.tagAt)}`);
    // <style> holds text only; an element inside it would also split what is checked
    // from what the browser applies (the stylesheet is all of its text children).
    if (this.style !== null) this.refuse(`SVG with an element inside <style>${this.here(this.tagAt)}`);
  }

  private attribute(): void {
    // Not an event that empties saxes' buffers: it keeps every attribute of the tag until
    // the tag ends, so the whole open tag counts as one token against maxTokenChars.
    if (++this.attributeCount > this.limits.maxAttributes) this.refuse(`SVG element with more than ${this.limits.maxAttributes} attributes${this.here(this.tagAt)}`);
  }

  private openTag(tag: SaxesTagNS): void {
    this.sawEvent();
    const element = () => `<${tag.name}>${this.here(this.tagAt)}`; // only built for a refusal
    const attributes = Object.values(tag.attributes);
    for (const a of attributes) {
      const scheme = scriptUrlIn(a.value);
      if (scheme) this.refuse(`SVG attribute ${a.name} on ${element()}: a ${scheme} URL (after decoding character references)`);
      if (/^on/i.test(a.local)) this.refuse(`SVG event-handler attribute ${a.name} on ${element()}`);
    }
    if (this.depth === 0 && (tag.uri !== SVG_NS || tag.local !== "svg")) {
      this.refuse(`no <svg> root element in the SVG namespace: the root is <${tag.name}> (namespace ${tag.uri || "none"})`);
    }
    const isSvg = tag.uri === SVG_NS;
    if (isSvg && !SVG_ELEMENTS.has(tag.local)) this.refuse(`SVG element ${element()} is not on the allowlist of SVG elements (script, foreignObject, animation and links are refused)`);
    if (!isSvg && !INERT_NAMESPACES.has(tag.uri)) {
      this.refuse(`SVG with the element ${element()} in the namespace ${tag.uri || "none"}: only SVG elements (and editors' inert metadata) are allowed`);
    }
    for (const a of attributes) {
      const problem = attributeProblem(a, isSvg ? tag.local : null);
      if (problem) this.refuse(`SVG attribute ${a.name} on ${element()}: ${problem}`);
    }
    this.depth++;
    if (isSvg && CSS_TEXT_ELEMENTS.has(tag.local)) this.style = { parts: [], length: 0, at: this.tagAt };
  }

  private text(text: string): void {
    this.sawEvent();
    const style = this.style;
    if (style === null) return;
    style.length += text.length;
    if (style.length > this.limits.maxStyleChars) this.refuse(`SVG <style>${this.here(style.at)} longer than ${this.limits.maxStyleChars} characters`);
    style.parts.push(text);
  }

  private closeTag(tag: SaxesTagNS): void {
    this.sawEvent();
    this.depth--;
    const style = this.style;
    if (style !== null && tag.uri === SVG_NS && CSS_TEXT_ELEMENTS.has(tag.local)) {
      this.style = null;
      const problem = cssProblem(style.parts.join(""));
      if (problem) this.refuse(`SVG <style>${this.here(style.at)} with ${problem}`);
    }
  }
}

/**
 * Why this attribute may not stand on this element, or null. `svgElement` is the local
 * name of an allowed SVG element, or null for an element in an editor's inert namespace
 * (whose own attributes mean nothing to a browser and are accepted).
 */
function attributeProblem(a: SaxesAttributeNS, svgElement: string | null): string | null {
  switch (a.uri) {
    case XMLNS_NS:
      return null; // a namespace declaration: it binds a prefix, what it binds is checked where used
    case "":
      // href means nothing on an editor's element either; it is held to the same rule anyway.
      if (a.local === "href") return hrefProblem(a.value, svgElement !== null && IMAGE_ELEMENTS.has(svgElement));
      if (svgElement === null) return null;
      if (a.local === "style" || SVG_ATTRIBUTES.has(a.local)) return cssProblem(a.value);
      if (INERT_ATTRIBUTE_PREFIX.test(a.local)) return null;
      return "not on the allowlist of SVG attributes";
    case XLINK_NS:
      if (a.local === "href") return hrefProblem(a.value, svgElement !== null && IMAGE_ELEMENTS.has(svgElement));
      return XLINK_ATTRIBUTES.has(a.local) ? null : "not an allowed XLink attribute";
    case XML_NS:
      return XML_ATTRIBUTES.has(a.local) ? null : "not an allowed xml: attribute (xml:base would re-root every reference)";
    default:
      return INERT_NAMESPACES.has(a.uri) ? null : `an attribute in the foreign namespace ${a.uri}`;
  }
}
