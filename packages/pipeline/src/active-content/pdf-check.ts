import { BoundedInflate, type InflateBudget } from "./bounded-inflate.ts";
import { Findings, type Finding } from "./findings.ts";
import { isNumberThenObj, isRegular, NameCollector, NameSniffer, WHITESPACE } from "./pdf-names.ts";
import { DUPLICATE_KEY, KEY_FIRSTS, KEY_LENGTHS, MAX_WORD, objectStreamRefusal, STREAM_KEYS } from "./pdf-stream-dict.ts";

/**
 * Active content in a PDF, found on the scan stage's single pass (ISO 32000-1).
 *
 * Two readers run over the same bytes:
 * - a NameSniffer finds the active names (/JavaScript, /Launch, /EmbeddedFile...) in every
 *   byte, hex escapes decoded, whatever string, comment or stream it seems to sit in;
 * - a tokenizer follows the file's structure (dictionaries, strings, comments, streams) to
 *   find the streams that hold objects. Objects may live in object streams (7.5.7), whose
 *   names are compressed: those are inflated here, bounded, and sniffed in turn.
 *
 * An object stream is any stream a reader could parse as one: /Type /ObjStm, or a /First
 * entry (readers that ignore /Type still need /First to find the objects). Other streams
 * (images, fonts, page content) hold no objects, so they are not inflated: inflating them
 * would cost as much as clamd's own pass and turn up short names in pixel data by chance.
 *
 * Not established, so refused as unscannable: an object stream with any filter but
 * FlateDecode (ASCIIHex, ASCII85, LZW, RunLength or a chain: decoders we would have to
 * write and trust, for streams no common writer produces), with /DecodeParms (a predictor
 * rearranges the bytes so names no longer appear), with a /Filter given by reference; an
 * object stream that does not decode to its end or inflates past the limits; a "stream"
 * keyword or an object header ("9 0 obj") the tokenizer did not see as one (inside a
 * string, a comment or another stream's data, where the xref can still point: short names
 * there would go unseen); an encrypted PDF (/Encrypt).
 * /OpenAction and /AA are not refused in themselves: what they trigger is (a /URI action is
 * fine, a JavaScript or Launch action is found by its own name).
 */
export interface PdfCheckLimits {
  /** Inflated bytes allowed for one object stream (clamd's MaxFileSize). */
  maxStreamBytes: number;
  /** Inflated bytes allowed for all object streams together (clamd's MaxScanSize). */
  maxTotalBytes: number;
}

const TOP = 0, COMMENT = 1, STRING = 2, STRING_ESCAPE = 3, HEX = 4, NAME = 5, WORD = 6, LT = 7, GT = 8, STREAM_LINE = 9, STREAM_CR = 10, DATA = 11;

const END = Buffer.from("endstream", "latin1");
const STREAM = Buffer.from("stream", "latin1");
const OBJ = Buffer.from("obj", "latin1");
const DICT_END = Buffer.from(">>", "latin1");
/** KMP failure table of "endstream", so a partial match never hides a byte from the inflater. */
const FAIL = (() => {
  const f = new Array<number>(END.length).fill(0);
  for (let i = 1, k = 0; i < END.length; i++) {
    while (k > 0 && END[i] !== END[k]) k = f[k - 1]!;
    if (END[i] === END[k]) k++;
    f[i] = k;
  }
  return f;
})();
const KEYWORDS = ["stream", "obj", "endobj", "endstream"].map((k) => Buffer.from(k, "latin1"));
const MAX_VALUE_TOKENS = 8;

/** Where an object stream's data goes: straight to a sniffer, or through an inflater first. */
interface ObjectStreamReader {
  sniffer: NameSniffer;
  inflate: BoundedInflate | null;
}

export class PdfActiveContentCheck {
  private readonly findings = new Findings();
  private readonly sniffer: NameSniffer;
  private readonly limits: PdfCheckLimits;
  private readonly budget: InflateBudget;
  private state = TOP;
  private stringDepth = 0;
  private readonly name = new NameCollector();
  private readonly word = new Uint8Array(MAX_WORD + 1);
  private wordLength = 0;
  // Dictionary tracking: the entries that matter (STREAM_KEYS) of the outermost dictionary
  // being read, its current key and how many value tokens it has had, and the last one
  // completed (a stream's dictionary when "stream" follows it directly). Strings are made
  // only for those entries: most tokens of a PDF are never turned into one.
  private depth = 0;
  private arrayDepth = 0;
  private entries: Map<string, string[]> | null = null;
  private key: string | null = null;
  private valueCount = 0;
  private lastDict: Map<string, string[]> | null = null;
  private streams = 0;
  private objects = 0;
  private matched = 0;
  private reader: ObjectStreamReader | null = null;
  private readonly pending = new Uint8Array(16 * 1024);
  private pendingLength = 0;

  constructor(limits: PdfCheckLimits) {
    this.limits = limits;
    this.budget = { remaining: limits.maxTotalBytes };
    this.sniffer = new NameSniffer(this.findings, "");
  }

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.state === DATA && !this.reader) {
        i = this.skipData(chunk, i);
        continue;
      }
      const b = chunk[i++]!;
      this.sniffer.setShortNames(this.state < STREAM_LINE);
      this.sniffer.byte(b);
      this.step(b);
    }
    this.flush();
  }

  /**
   * Data of a stream that holds no objects (most of a PDF's bytes: images, fonts) is only
   * sniffed for long names and searched for "endstream". Native searches find the next
   * "/", "stream", ">>" and "endstream"; the sniffer reads the bytes around each, and bytes that
   * can start none of them are skipped, so this runs at memory speed on binary data.
   */
  private skipData(chunk: Uint8Array, from: number): number {
    const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    this.sniffer.setShortNames(false);
    let i = from;
    // A partial "endstream" carried over from the previous chunk is finished byte by byte.
    while (this.matched > 0 && i < buf.length) if (this.dataStep(buf[i++]!)) return i;
    const end = buf.indexOf(END, i);
    // Without an "endstream" here, its first bytes may sit in the last 8: those go byte by byte.
    const bulkEnd = end === -1 ? Math.max(i, buf.length - (END.length - 1)) : end;
    i = this.sniffRange(buf, i, bulkEnd);
    if (end !== -1) {
      for (; i < end + END.length; i++) this.sniffer.byte(buf[i]!);
      this.endStream();
      this.state = TOP;
      return i;
    }
    while (i < buf.length) if (this.dataStep(buf[i++]!)) return i;
    return i;
  }

  /** Sniffs buf[from, to), reading byte by byte only where a name or "stream" may be. */
  private sniffRange(buf: Buffer, from: number, to: number): number {
    const sniffer = this.sniffer;
    const next = (what: number | Buffer, at: number) => {
      const p = buf.indexOf(what, at);
      return p === -1 || p >= to ? to : p;
    };
    let slash = next(0x2f, from);
    let keyword = next(STREAM, from);
    let dictEnd = next(DICT_END, from);
    let obj = next(OBJ, from);
    let i = from;
    while (i < to) {
      if (!sniffer.busy) {
        const p = Math.min(slash, keyword, dictEnd, obj);
        const start = Math.max(i, p - 1); // the byte before tells whether "stream" starts a word
        if (start > i) sniffer.skipped(buf[start - 1]!);
        i = start;
        if (i >= to) break;
      }
      sniffer.byte(buf[i++]!);
      if (slash < i) slash = next(0x2f, i);
      if (keyword < i) keyword = next(STREAM, i);
      if (dictEnd < i) dictEnd = next(DICT_END, i);
      if (obj < i) obj = next(OBJ, i);
    }
    return to;
  }

  /** One byte of stream data without a reader; true when it ended the stream. */
  private dataStep(b: number): boolean {
    this.sniffer.byte(b);
    let k = this.matched;
    while (k > 0 && END[k] !== b) k = FAIL[k - 1]!;
    if (END[k] === b) k++;
    this.matched = k;
    if (k < END.length) return false;
    this.endStream();
    this.state = TOP;
    return true;
  }

  /** Every finding, once the whole file has been pushed. */
  finish(): Finding[] {
    if (this.state === DATA) this.endStream(); // the file ends inside stream data
    this.sniffer.finish();
    if (this.sniffer.objKeywords > this.objects) {
      this.findings.add("unscannable", "PDF with an object header inside a string, a comment or stream data (a reader reaches it through the cross-reference table): its structure cannot be established");
    }
    if (this.sniffer.streamKeywords > this.streams) {
      this.findings.add("unscannable", 'PDF with a "stream" keyword inside a string, a comment or other stream data: its structure cannot be established');
    }
    return this.findings.list();
  }

  private step(b: number): void {
    switch (this.state) {
      case DATA:
        return this.dataByte(b);
      case COMMENT:
        if (b === 0x0a || b === 0x0d) this.state = TOP;
        return;
      case STRING:
        if (b === 0x5c) this.state = STRING_ESCAPE;
        else if (b === 0x28) this.stringDepth++;
        else if (b === 0x29 && --this.stringDepth === 0) this.endString();
        return;
      case STRING_ESCAPE:
        this.state = STRING;
        return;
      case HEX:
        if (b === 0x3e) this.endString();
        return;
      case NAME:
        if (isRegular(b)) return this.name.push(b);
        this.state = TOP;
        this.endName();
        return this.step(b);
      case WORD:
        if (isRegular(b)) {
          if (this.wordLength <= MAX_WORD) this.word[this.wordLength++] = b;
          return;
        }
        this.state = TOP;
        this.endWord();
        return this.step(b);
      case LT:
        this.state = TOP;
        if (b === 0x3c) return this.openDict();
        this.state = HEX;
        return this.step(b);
      case GT:
        this.state = TOP;
        if (b === 0x3e) return this.closeDict();
        return this.step(b);
      case STREAM_LINE:
        // After "stream" readers skip to the end of the line (pdf.js: skipToNextLine).
        if (b === 0x0a) this.state = DATA;
        else if (b === 0x0d) this.state = STREAM_CR;
        return;
      case STREAM_CR:
        this.state = DATA;
        if (b !== 0x0a) this.dataByte(b);
        return;
      default:
        return this.topByte(b);
    }
  }

  private topByte(b: number): void {
    if (WHITESPACE[b]) return;
    switch (b) {
      case 0x25: // %
        this.state = COMMENT;
        return;
      case 0x28: // (
        this.state = STRING;
        this.stringDepth = 1;
        return;
      case 0x3c: // <
        this.state = LT;
        return;
      case 0x3e: // >
        this.state = GT;
        return;
      case 0x2f: // /
        this.state = NAME;
        this.name.reset();
        return;
      case 0x5b: // [
      case 0x5d: // ]
        return this.token(String.fromCharCode(b), false);
      case 0x7b: // { } only in PostScript calculator functions
      case 0x7d:
        return;
      default:
        this.state = WORD;
        this.word[0] = b;
        this.wordLength = 1;
    }
  }

  private endName(): void {
    if (this.depth !== 1) return this.token("?", false);
    const isKey = this.arrayDepth === 0 && (this.key === null || this.valueCount > 0);
    const wanted = isKey ? this.name.couldBe(KEY_LENGTHS, KEY_FIRSTS) : this.key !== null && STREAM_KEYS.has(this.key);
    this.token(wanted ? `/${this.name.value() ?? "?"}` : "/?", true);
  }

  private endWord(): void {
    const n = this.wordLength;
    const keyword = KEYWORDS.find((k) => k.length === n && k.every((c, i) => this.word[i] === c));
    if (keyword) return this.token(keyword.toString("latin1"), false);
    // "0obj" is the number 0 and the keyword obj to pdf.js's lexer (a number ends at a letter).
    if (n <= MAX_WORD && isNumberThenObj(this.word.subarray(0, n))) return this.token("obj", false);
    // Other words (numbers, R, true...) matter only as values of STREAM_KEYS.
    const wanted = n <= MAX_WORD && this.depth === 1 && this.key !== null && STREAM_KEYS.has(this.key);
    this.token(wanted ? Buffer.from(this.word.subarray(0, n)).toString("latin1") : "?", false);
  }

  private endString(): void {
    this.state = TOP;
    this.token("(string)", false);
  }

  private openDict(): void {
    if (this.depth === 0) {
      this.entries = new Map();
      this.key = null;
      this.arrayDepth = 0;
    } else this.value("<<");
    this.depth++;
  }

  private closeDict(): void {
    if (this.depth === 0) return;
    this.depth--;
    if (this.depth === 0) this.lastDict = this.entries;
  }

  /** A complete token outside stream data ("?" where its text does not matter). */
  private token(t: string, isName: boolean): void {
    if (t === "stream") return this.startStream();
    if (t === "obj") this.objects++;
    if (t === "obj" || t === "endobj" || t === "endstream") {
      // Object boundaries: an unclosed dictionary before them is malformed; start afresh.
      this.depth = 0;
      this.lastDict = null;
      return;
    }
    if (this.depth === 0) {
      this.lastDict = null;
      return;
    }
    if (this.depth > 1) return;
    if (isName && this.arrayDepth === 0 && (this.key === null || this.valueCount > 0)) {
      this.key = t.slice(1);
      this.valueCount = 0;
      if (STREAM_KEYS.has(this.key)) {
        if (this.entries!.has(this.key)) this.entries!.set(DUPLICATE_KEY, [this.key]); // pdf.js takes the last, others may take the first
        this.entries!.set(this.key, []);
      }
      return;
    }
    this.value(t);
  }

  private value(t: string): void {
    if (this.key === null || this.depth !== 1) return;
    this.valueCount++;
    const values = this.entries!.get(this.key);
    if (values && values.length < MAX_VALUE_TOKENS) values.push(t);
    if (t === "[") this.arrayDepth++;
    else if (t === "]" && this.arrayDepth > 0) this.arrayDepth--;
  }

  private startStream(): void {
    this.streams++;
    const dict = this.depth === 0 ? this.lastDict : null;
    this.depth = 0;
    this.lastDict = null;
    this.state = STREAM_LINE;
    this.matched = 0;
    this.reader = null;
    if (!dict) return this.findings.add("unscannable", "PDF with a stream that follows no dictionary: its structure cannot be established");
    if (dict.get("type")?.[0] !== "/objstm" && !dict.has("first")) return; // holds no objects
    const refused = objectStreamRefusal(dict);
    if (refused) return this.findings.add("unscannable", `PDF with an object stream ${refused}: its objects cannot be read`);
    const sniffer = new NameSniffer(this.findings, "inside an object stream");
    const flate = dict.has("filter");
    const inflate = flate
      ? new BoundedInflate({ zlib: true, maxBytes: this.limits.maxStreamBytes, budget: this.budget, onData: (d) => sniffer.push(d) })
      : null;
    this.reader = { sniffer, inflate };
  }

  private dataByte(b: number): void {
    const before = this.matched;
    let k = before;
    while (k > 0 && END[k] !== b) k = FAIL[k - 1]!;
    if (END[k] === b) k++;
    this.matched = k;
    if (this.reader) {
      // The bytes that dropped out of the partial "endstream" match are stream data.
      const released = before + 1 - k;
      for (let i = 0; i < released; i++) this.emit(i < before ? END[i]! : b);
    }
    if (k === END.length) {
      this.endStream();
      this.state = TOP;
    }
  }

  private emit(b: number): void {
    this.pending[this.pendingLength++] = b;
    if (this.pendingLength === this.pending.length) this.flush();
  }

  private flush(): void {
    if (this.pendingLength === 0 || !this.reader) return;
    const data = this.pending.subarray(0, this.pendingLength);
    if (this.reader.inflate) this.reader.inflate.push(data);
    else this.reader.sniffer.push(data);
    this.pendingLength = 0;
  }

  private endStream(): void {
    this.matched = 0;
    const reader = this.reader;
    if (!reader) return;
    this.flush();
    this.reader = null;
    const problem = reader.inflate?.end();
    if (problem) this.findings.add("unscannable", `PDF with an object stream that cannot be examined: ${problem}`);
    reader.sniffer.finish();
    if (reader.sniffer.streamKeywords > 0) this.findings.add("unscannable", 'PDF with a "stream" keyword inside an object stream: its structure cannot be established');
  }
}
