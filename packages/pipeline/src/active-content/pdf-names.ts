import type { Findings, FindingReason } from "./findings.ts";

/**
 * PDF name tokens (ISO 32000-1 7.3.5), read byte by byte across chunk boundaries.
 *
 * A name runs from "/" to the next white-space or delimiter character; "#" followed by
 * two hex digits stands for that byte, so /J#61vaScript is /JavaScript to every reader.
 * Names are compared without case: readers are case-sensitive, but refusing /javascript
 * costs nothing and a lenient reader may not be.
 */
export const WHITESPACE = new Uint8Array(256);
for (const b of [0x00, 0x09, 0x0a, 0x0c, 0x0d, 0x20]) WHITESPACE[b] = 1;
export const DELIMITER = new Uint8Array(256);
for (const c of "()<>[]{}/%") DELIMITER[c.charCodeAt(0)] = 1;
export const REGULAR = new Uint8Array(256).map((_, b) => (WHITESPACE[b] || DELIMITER[b] ? 0 : 1));
export const isRegular = (b: number) => REGULAR[b] === 1;

const MAX_NAME = 16; // longer than any name we look for; longer names are not compared

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  const l = b | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/** Collects one name's decoded bytes (after the "/"); `value()` is the lower-cased name. */
export class NameCollector {
  private readonly bytes = new Uint8Array(MAX_NAME);
  private length = 0;
  private hex = 0; // 0: none, 1: after "#", 2: after "#" and one hex digit
  private hi = 0;
  private overflow = false;

  reset(): void {
    this.length = 0;
    this.hex = 0;
    this.overflow = false;
  }

  /** A regular byte of the name. */
  push(b: number): void {
    if (this.overflow) return; // too long to be a name we look for: nothing left to decode
    if (this.hex === 1) {
      const v = hexValue(b);
      if (v >= 0) return void ((this.hi = v), (this.hex = 2));
      this.hex = 0;
      this.add(0x23); // "#" not followed by hex is kept literally (as pdf.js does)
    } else if (this.hex === 2) {
      const v = hexValue(b);
      this.hex = 0;
      if (v >= 0) return this.add((this.hi << 4) | v);
      this.add(0x23);
      this.add(this.hi < 10 ? 0x30 + this.hi : 0x61 + this.hi - 10);
    }
    if (b === 0x23) this.hex = 1;
    else this.add(b);
  }

  /** Whether the decoded bytes so far can still be one of `names` (cheap, before value()). */
  couldBe(lengths: Uint8Array, firsts: Uint8Array): boolean {
    return !this.overflow && this.hex === 0 && lengths[this.length] === 1 && firsts[this.bytes[0]! | 0x20] === 1;
  }

  value(): string | null {
    if (this.hex === 1) this.add(0x23);
    if (this.hex === 2) this.add(0x23), this.add(0x30);
    this.hex = 0;
    if (this.overflow) return null;
    return String.fromCharCode(...this.bytes.subarray(0, this.length)).toLowerCase();
  }

  private add(b: number): void {
    if (this.length >= MAX_NAME) this.overflow = true;
    else this.bytes[this.length++] = b;
  }
}

/**
 * The names that make a PDF active. `everywhere` names are long enough that finding them
 * in binary stream data by chance is negligible (at least 5 bytes, and /XFA), so they are looked for
 * in every byte of the file: an object can be placed inside another stream's data and still
 * be reached through the cross-reference table. Short names (/JS, /EF) would turn up
 * by chance in megabytes of image data, so they count only outside stream data and in
 * decoded object streams; a JavaScript action needs /S /JavaScript anyway, and an embedded
 * file is reachable only through /EmbeddedFiles, /FileAttachment, /GoToE or a Launch.
 */
const ACTIVE_NAMES = new Map<string, { reason: FindingReason; what: string; everywhere: boolean }>(Object.entries({
  javascript: { reason: "pdf_javascript", what: "JavaScript (/JavaScript)", everywhere: true },
  js: { reason: "pdf_javascript", what: "JavaScript (/JS)", everywhere: false },
  xfa: { reason: "pdf_javascript", what: "an XFA form (/XFA), which can carry scripts", everywhere: true },
  launch: { reason: "pdf_launch_action", what: "a Launch action (/Launch)", everywhere: true },
  embeddedfile: { reason: "pdf_embedded_file", what: "an embedded file (/EmbeddedFile)", everywhere: true },
  embeddedfiles: { reason: "pdf_embedded_file", what: "embedded files (/EmbeddedFiles)", everywhere: true },
  fileattachment: { reason: "pdf_embedded_file", what: "a file attachment (/FileAttachment)", everywhere: true },
  gotoe: { reason: "pdf_embedded_file", what: "a go-to-embedded action (/GoToE)", everywhere: true },
  richmedia: { reason: "pdf_embedded_file", what: "embedded rich media (/RichMedia)", everywhere: true },
  // A Rendition action runs the script in its /JS entry (ISO 32000-1 12.6.4.13), and an
  // object hidden in other stream data is reached through the xref where short names do
  // not count: the action's own long name is what is looked for. A 3D stream runs its
  // /OnInstantiate script (13.6.3). /XFA is short, but "/XFA" plus a delimiter turns up in
  // random data about once in 8 GiB (2^-33 a byte), so it is looked for everywhere too:
  // an AcroForm dictionary hidden in stream data would otherwise carry an XFA form past it.
  rendition: { reason: "pdf_javascript", what: "a Rendition action (/Rendition), which can run JavaScript (/JS)", everywhere: true },
  oninstantiate: { reason: "pdf_javascript", what: "a 3D stream's JavaScript (/OnInstantiate)", everywhere: true },
  ef: { reason: "pdf_embedded_file", what: "an embedded file stream (/EF)", everywhere: false },
  encrypt: { reason: "unscannable", what: "encryption (/Encrypt): names inside encrypted strings and streams cannot be read", everywhere: true },
} satisfies Record<string, { reason: FindingReason; what: string; everywhere: boolean }>));

/** Lengths and first letters of the active names: most names are ruled out without a string. */
const ACTIVE_LENGTHS = new Uint8Array(MAX_NAME + 1);
const ACTIVE_FIRSTS = new Uint8Array(256);
for (const n of ACTIVE_NAMES.keys()) {
  ACTIVE_LENGTHS[n.length] = 1;
  ACTIVE_FIRSTS[n.charCodeAt(0)] = 1;
}

const STREAM = [0x73, 0x74, 0x72, 0x65, 0x61, 0x6d]; // "stream"
const OBJ = [0x6f, 0x62, 0x6a]; // "obj"
/** Characters pdf.js's lexer reads as part of a number, ending it at the first other one. */
const NUMBER_CHAR = new Uint8Array(256);
for (const c of "0123456789+-.") NUMBER_CHAR[c.charCodeAt(0)] = 1;

/** Whether a regular run is number characters then "obj": the keyword obj after a number, to pdf.js ("0obj"). */
export function isNumberThenObj(word: Uint8Array): boolean {
  const n = word.length;
  if (n < 4 || word[n - 3] !== OBJ[0] || word[n - 2] !== OBJ[1] || word[n - 1] !== OBJ[2]) return false;
  return word.subarray(0, n - 3).every((c) => NUMBER_CHAR[c] === 1);
}
/** Nothing; one ">"; ">>" then only white space; inside a comment after ">>". */
const DICT_NONE = 0, DICT_GT = 1, DICT_AFTER = 2, DICT_COMMENT = 3;

/**
 * Context-free: finds active names wherever they sit, without trusting the string, comment
 * or stream boundaries a tokenizer would draw (a reader that jumps to an object through the
 * cross-reference table never sees those boundaries). It also counts "stream" keywords, so
 * the caller can tell when a stream starts where its own tokenizer did not see one (inside
 * a string, a comment or other stream data): a "stream" ending its line, and any "stream"
 * after ">>" with only white space and comments between, whatever follows it on its line
 * (pdf.js's Parser takes the command after a dictionary as the keyword and then skips to
 * the next line, so "stream x" or "stream%c" starts a stream too).
 */
export class NameSniffer {
  private readonly findings: Findings;
  private readonly where: string;
  private readonly name = new NameCollector();
  private inName = false;
  private shortNames = true;
  /** Position in "stream" of the current regular run (-1: not a candidate). */
  private word = 0;
  private afterStream = false; // "stream" seen, only blanks since
  /** What precedes, for a "stream" keyword after a dictionary (DICT_NONE...DICT_COMMENT). */
  private dict = DICT_NONE;
  private wordAfterDict = false; // the current regular run started right after ">>"
  /** Position in "obj" of the current regular run (-1: not a candidate). */
  private objWord = 0;
  streamKeywords = 0;
  /** "obj" keywords: a run "obj", alone or after a number's characters ("0obj" is "0" "obj" to pdf.js's lexer). */
  objKeywords = 0;

  constructor(findings: Findings, where: string) {
    this.findings = findings;
    this.where = where;
  }

  /** Whether skipping bytes could change what is found (a name or a "stream" keyword in progress). */
  get busy(): boolean {
    return this.inName || this.afterStream || this.word > 0 || this.objWord > 0 || this.dict !== DICT_NONE;
  }

  /** The caller skipped bytes holding no "/", "stream", "obj" or ">>" (and was not busy); `last` is the last of them. */
  skipped(last: number): void {
    this.word = REGULAR[last] === 1 ? -1 : 0;
    this.objWord = REGULAR[last] === 1 && NUMBER_CHAR[last] !== 1 ? -1 : 0;
    this.dict = last === 0x3e ? DICT_GT : DICT_NONE;
  }

  /** Whether short names count for the bytes that follow (false inside stream data). */
  setShortNames(on: boolean): void {
    this.shortNames = on;
  }

  push(chunk: Uint8Array, from = 0, to = chunk.length): void {
    for (let i = from; i < to; i++) this.byte(chunk[i]!);
  }

  finish(): void {
    if (this.inName) this.endName();
  }

  byte(b: number): void {
    if (REGULAR[b] === 1) {
      // The hot path (most bytes of stream data): kept small so it stays cheap.
      if (this.inName) this.name.push(b);
      else if (this.word >= 0) {
        if (this.word === 0) this.wordAfterDict = this.dict === DICT_AFTER;
        this.word = this.word < STREAM.length && STREAM[this.word] === b ? this.word + 1 : -1;
      }
      if (this.objWord >= 0 && !this.inName) this.objWord = NUMBER_CHAR[b] === 1 ? 0 : this.objWord < OBJ.length && OBJ[this.objWord] === b ? this.objWord + 1 : -1;
      if (this.dict !== DICT_NONE && this.dict !== DICT_COMMENT) this.dict = DICT_NONE;
      this.afterStream = false;
      return;
    }
    if (this.inName) this.endName();
    if (this.objWord === OBJ.length) this.objKeywords++;
    this.objWord = b === 0x2f ? -1 : 0;
    if (this.word === STREAM.length) {
      if (this.wordAfterDict) this.streamKeywords++;
      else this.afterStream = true;
    }
    if (this.afterStream && (b === 0x0a || b === 0x0d)) {
      this.streamKeywords++;
      this.afterStream = false;
    } else if (b !== 0x20 && b !== 0x09 && b !== 0x00 && b !== 0x0c) this.afterStream = false;
    if (this.dict !== DICT_NONE || b === 0x3e) this.dictByte(b);
    this.word = 0;
    if (b === 0x2f) {
      this.inName = true;
      this.name.reset();
      this.word = -1; // a name /stream is no keyword
    }
  }

  /** Follows ">>", white space and comments, for the "stream" keyword that may come next. */
  private dictByte(b: number): void {
    const d = this.dict;
    if (d === DICT_COMMENT) {
      if (b === 0x0a || b === 0x0d) this.dict = DICT_AFTER;
    } else if (b === 0x3e) {
      this.dict = d === DICT_NONE ? DICT_GT : DICT_AFTER; // ">>>" is a hex string's end and a dictionary's
    } else if (d === DICT_AFTER) {
      if (b === 0x25) this.dict = DICT_COMMENT;
      else if (WHITESPACE[b] !== 1) this.dict = DICT_NONE;
    } else this.dict = DICT_NONE;
  }

  private endName(): void {
    this.inName = false;
    // Cheap exclusion first (length, first letter; a name ending inside a "#" escape holds a
    // literal "#", which no active name has).
    if (!this.name.couldBe(ACTIVE_LENGTHS, ACTIVE_FIRSTS)) return;
    const value = this.name.value();
    const active = value === null ? undefined : ACTIVE_NAMES.get(value);
    if (active && (active.everywhere || this.shortNames)) this.findings.add(active.reason, `PDF with ${active.what}${this.where ? ` ${this.where}` : ""}`);
  }
}
