import { BoundedInflate, type InflateBudget } from "./bounded-inflate.ts";
import { Findings, type Finding } from "./findings.ts";
import { contentTypesFindings, decodeXmlPart, relationshipFindings, type XmlPartKind } from "./ooxml-xml-parts.ts";

/**
 * Macros and embedded objects in an OOXML package (.docx, .xlsx, .pptx: ECMA-376 part 2,
 * a ZIP of parts), found on the scan stage's single pass.
 *
 * Part names sit uncompressed in every ZIP local file header and again in the central
 * directory, so both are read: every "PK\3\4" and "PK\1\2" signature anywhere in the
 * object starts a header read, whatever the headers before it said about sizes (a header
 * hidden in another entry's data is read too; Office opens parts through the central
 * directory, which may disagree with the local headers). Names are compared without case
 * and with "\" read as "/", as OPC part names are.
 *
 * [Content_Types].xml and every .rels part are usually deflated, so their data is
 * inflated (bounded) and read after XML character references are decoded
 * (ooxml-xml-parts.ts): the relationship type, not the part's name, is what makes Office
 * load a part as a VBA project or an OLE object, or fetch one from elsewhere. Refused as
 * unscannable: such a part that is encrypted, uses another compression method, is stored
 * without its size, does not inflate to its end, is larger than CONTENT_TYPES_LIMIT, declares a DTD or an encoding
 * other than UTF-8/UTF-16; and a central directory entry naming such a part whose local
 * header was not read as one (Office opens parts by the central directory's names).
 */
const CONTENT_TYPES_LIMIT = 4 * 1024 * 1024;
/** Header reads in flight at once: legitimate packages never overlap two headers. */
const MAX_OPEN_HEADERS = 64;

const LOCAL = 0x04034b50;
const CENTRAL = 0x02014b50;
const DESCRIPTOR = 0x08074b50;
const CONTENT_TYPES = "[content_types].xml";

interface HeaderRead {
  kind: "local" | "central";
  offset: number; // absolute offset of the signature
  fixed: number[]; // header bytes after the signature
  nameLength: number;
  name: number[];
}

interface ContentTypesRead {
  kind: XmlPartKind;
  name: string;
  inflate: BoundedInflate | null; // null: stored
  /** Compressed bytes still to come, or -1 when unknown (the data descriptor follows). */
  remaining: number;
  text: Uint8Array[];
  length: number;
  /** Data bytes not yet handed to the inflater (batched: fflate copies its window per push). */
  batch: number[];
  problem: string | null;
}

export class OoxmlActiveContentCheck {
  private readonly findings = new Findings();
  private readonly budget: InflateBudget;
  private offset = 0;
  private window = 0; // the last four bytes, little-endian as a ZIP signature reads
  private headers: HeaderRead[] = [];
  private contentTypes: ContentTypesRead | null = null;
  private skipExtra = 0; // extra-field bytes between a [Content_Types].xml header and its data
  private pendingContentTypes: ContentTypesRead | null = null;
  /** Offsets of the local headers whose XML part was read. */
  private readonly contentTypesAt = new Set<number>();
  /** XML parts the central directory names, by the local header offset it gives. */
  private readonly centralContentTypesAt: { at: number; name: string }[] = [];

  constructor(limits: { maxTotalBytes: number }) {
    this.budget = { remaining: limits.maxTotalBytes };
  }

  push(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) {
      if (this.idle()) i = this.skipToSignature(chunk, i);
      if (i >= chunk.length) break;
      const b = chunk[i]!;
      this.window = ((this.window >>> 8) | (b << 24)) >>> 0;
      this.contentTypesByte(b);
      if (this.headers.length === 1) this.headerByte(this.headers[0]!, b);
      else if (this.headers.length > 1) for (const h of this.headers.slice()) this.headerByte(h, b);
      this.offset++;
      if (this.window === LOCAL || this.window === CENTRAL) this.openHeader(this.window === LOCAL ? "local" : "central");
      else if (this.window === DESCRIPTOR && this.contentTypes?.remaining === -1) this.endContentTypes();
    }
    if (this.contentTypes) this.flushContentTypes(this.contentTypes);
  }

  /** Nothing in progress but the search for the next signature. */
  private idle(): boolean {
    return this.headers.length === 0 && this.contentTypes === null && this.pendingContentTypes === null;
  }

  /**
   * Bytes that hold no "P" cannot start a signature: jump to the next "P" (a native
   * search), unless one of the last three bytes was a "P" whose signature may go on here.
   */
  private skipToSignature(chunk: Uint8Array, from: number): number {
    const w = this.window;
    if ((w >>> 24) === 0x50 || ((w >>> 16) & 0xff) === 0x50 || ((w >>> 8) & 0xff) === 0x50) return from;
    const p = chunk.indexOf(0x50, from);
    const to = p === -1 ? chunk.length : p;
    if (to - from < 4) return from;
    this.window = (chunk[to - 4]! | (chunk[to - 3]! << 8) | (chunk[to - 2]! << 16) | (chunk[to - 1]! << 24)) >>> 0;
    this.offset += to - from;
    return to;
  }

  finish(): Finding[] {
    if (this.contentTypes) this.endContentTypes();
    for (const { at, name } of this.centralContentTypesAt) {
      if (!this.contentTypesAt.has(at)) this.findings.add("unscannable", `OOXML package whose central directory names ${name} for an entry whose local header does not: what it declares cannot be read`);
    }
    return this.findings.list();
  }

  private openHeader(kind: HeaderRead["kind"]): void {
    if (this.headers.length >= MAX_OPEN_HEADERS) return this.findings.add("unscannable", "OOXML package with overlapping ZIP headers: its parts cannot be listed");
    this.headers.push({ kind, offset: this.offset - 4, fixed: [], nameLength: -1, name: [] });
    // A new header ends a [Content_Types].xml of unknown size (written with a data descriptor).
    if (kind === "local" && this.contentTypes?.remaining === -1) this.endContentTypes();
  }

  private headerByte(h: HeaderRead, b: number): void {
    const fixedLength = h.kind === "local" ? 26 : 42;
    if (h.fixed.length < fixedLength) {
      h.fixed.push(b);
      if (h.fixed.length === fixedLength) h.nameLength = u16(h.fixed, h.kind === "local" ? 22 : 24);
      if (h.nameLength !== 0) return;
    } else h.name.push(b);
    if (h.name.length < h.nameLength) return;
    this.headers.splice(this.headers.indexOf(h), 1);
    this.examine(h);
  }

  private examine(h: HeaderRead): void {
    const name = Buffer.from(h.name).toString("latin1").toLowerCase().replace(/\\/g, "/");
    this.checkPartName(name);
    const partName = name.replace(/^\//, "");
    const kind: XmlPartKind | null = partName === CONTENT_TYPES ? "content types" : partName.endsWith(".rels") ? "relationships" : null;
    if (kind === null) return;
    if (h.kind === "central") {
      const localOffset = u32(h.fixed, 38);
      this.centralContentTypesAt.push({ at: localOffset, name: partName });
      return;
    }
    this.contentTypesAt.add(h.offset);
    const flags = u16(h.fixed, 2);
    const method = u16(h.fixed, 4);
    const size = u32(h.fixed, 14);
    const read: ContentTypesRead = { kind, name: partName, inflate: null, remaining: flags & 0x08 || size === 0xffffffff ? -1 : size, text: [], length: 0, batch: [], problem: null };
    if (flags & 0x01) read.problem = "is encrypted";
    else if (method === 8) read.inflate = new BoundedInflate({ zlib: false, maxBytes: CONTENT_TYPES_LIMIT, budget: this.budget, onData: (d) => this.keepText(read, d) });
    else if (method !== 0) read.problem = `uses compression method ${method}`;
    // Stored data of unknown length ends here at the next signature, which its own text may
    // hold ("PK\x07\x08" is two valid characters in UTF-16): Office reads the central sizes.
    else if (read.remaining === -1) read.problem = "is stored without its size (a data descriptor follows): where it ends cannot be told";
    if (read.problem) return this.contentTypesProblem(read, read.problem);
    // A header inside an XML part's data: ending that read here would hide the rest of it.
    if (this.contentTypes || this.pendingContentTypes) return this.contentTypesProblem(read, "starts inside another XML part's data (overlapping entries)");
    this.skipExtra = u16(h.fixed, 24);
    this.pendingContentTypes = read;
    if (this.skipExtra === 0) this.startContentTypes();
  }

  private checkPartName(name: string): void {
    const base = name.slice(name.lastIndexOf("/") + 1);
    const inEmbeddings = /(^|\/)embeddings\//.test(name);
    if (name.includes("vbaproject") || base === "vbadata.xml") this.findings.add("office_macros", `OOXML document with a VBA project (${name})`);
    else if (/(^|\/)macrosheets\//.test(name)) this.findings.add("office_macros", `OOXML document with an Excel 4.0 macro sheet (${name})`);
    else if (inEmbeddings && /\.(docm|dotm|xlsm|xltm|xlsb|xlam|pptm|potm|ppsm|ppam|sldm)$/.test(base)) this.findings.add("office_macros", `OOXML document embedding a macro-enabled document (${name})`);
    if (/(^|\/)activex/.test(name)) this.findings.add("office_ole_object", `OOXML document with an ActiveX control (${name})`);
    // Legacy binary documents (.doc, .xls, .ppt...) are OLE compound files and may carry VBA.
    else if (base.startsWith("oleobject") || (inEmbeddings && /\.(bin|doc|dot|xls|xla|xlt|ppt|pps|pot)$/.test(base))) this.findings.add("office_ole_object", `OOXML document with an embedded OLE object (${name})`);
  }

  private startContentTypes(): void {
    this.contentTypes = this.pendingContentTypes;
    this.pendingContentTypes = null;
    if (this.contentTypes?.remaining === 0) this.endContentTypes();
  }

  private contentTypesByte(b: number): void {
    if (this.pendingContentTypes) {
      // The extra field between the header's name and its data.
      if (this.skipExtra > 0 && --this.skipExtra === 0) this.startContentTypes();
      return;
    }
    const read = this.contentTypes;
    if (!read) return;
    read.batch.push(b);
    if (read.batch.length >= 16 * 1024) this.flushContentTypes(read);
    if (read.remaining > 0 && --read.remaining === 0) this.endContentTypes();
  }

  private flushContentTypes(read: ContentTypesRead): void {
    if (read.batch.length === 0) return;
    const data = Uint8Array.from(read.batch);
    read.batch.length = 0;
    if (read.inflate) read.inflate.push(data);
    else this.keepText(read, data);
  }

  private keepText(read: ContentTypesRead, data: Uint8Array): void {
    read.length += data.length;
    if (read.length > CONTENT_TYPES_LIMIT) read.problem ??= `is larger than ${CONTENT_TYPES_LIMIT} bytes`;
    else read.text.push(data.slice());
  }

  private endContentTypes(): void {
    const read = this.contentTypes;
    this.contentTypes = null;
    if (!read) return;
    this.flushContentTypes(read);
    const problem = read.problem ?? read.inflate?.end() ?? null;
    if (problem) return this.contentTypesProblem(read, problem);
    const decoded = decodeXmlPart(Buffer.concat(read.text));
    if ("problem" in decoded) return this.contentTypesProblem(read, decoded.problem);
    const found = read.kind === "content types" ? contentTypesFindings(decoded.text) : relationshipFindings(decoded.text, read.name);
    for (const f of found) this.findings.add(f.reason, f.detail);
  }

  private contentTypesProblem(read: Pick<ContentTypesRead, "kind" | "name">, problem: string): void {
    const part = read.kind === "content types" ? "[Content_Types].xml" : `relationships part ${read.name}`;
    this.findings.add("unscannable", `OOXML package whose ${part} ${problem}: what it declares cannot be read`);
  }
}

const u16 = (b: number[], at: number) => b[at]! | (b[at + 1]! << 8);
const u32 = (b: number[], at: number) => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
