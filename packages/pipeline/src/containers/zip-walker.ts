import type { ZipBudget } from "./zip-budget.ts";
import { Ascii85Member, HexMember } from "./pdf-filters.ts";
import { BothMember, DeflatedMember, GzipMember, StoredMember, type ByteSink, type MemberSink } from "./zip-members.ts";
import { DECODED_ELSEWHERE, UNDECODED, plausibleLocalHeader } from "./zip-headers.ts";
import { INCOMPLETE, MAX_GZIP_HEADER, NONE, STREAM, gzipHeader, partialTail, pdfZlibStream } from "./zip-streams.ts";

/**
 * Finds ZIP structures anywhere in a byte stream, the way clamd does (its file-type scan
 * finds "PK\x03\x04" at any offset and extracts from there, ZIPSFX), and follows every
 * member it can: stored bytes are counted and walked one level deeper, deflated bytes are
 * inflated and their output walked one level deeper, so a ZIP inside a ZIP (stored or
 * compressed) after a PNG or a PDF is seen at every depth.
 *
 * Work stays proportional to the input: the raw search is Buffer.indexOf for "PK"; only
 * deflate is inflated; a header is parsed once its bytes are in (it may straddle chunks).
 * Memory stays bounded: a partial header at most (30 + 2 x 65535 bytes), and the inflaters
 * the budget admits.
 *
 * A finding needs evidence random bytes cannot fake: content that really inflates past a
 * limit, or a header field that is implausible by chance (a ZIP64 size of all ones), or a
 * central directory entry that names a doubtful member.
 */

const PK = Buffer.from("PK", "latin1");
const LOCAL = 0x0403, CENTRAL = 0x0201, DESCRIPTOR = 0x0807;
const U32 = 0xffffffff;
const F_ENCRYPTED = 0x1, F_DATA_DESCRIPTOR = 0x8;
const TAILS = [PK, STREAM];
/** clamd copies at most 255 bytes of a name (unzip.c, `char name[256]`). */
const NAME_KEY_BYTES = 255;
const MAX_OPEN_MEMBERS = 256;
const MAX_EXPECTED = 1024;
/** clamd's MaxFiles: members of one ZIP awaiting the central directory entry that reaches them. */
const MAX_UNREACHED = 10_000;

/** What a header states about a member's data; `dd`: sizes follow in a data descriptor. */
type Stated = { method: number; csize: number; dd: boolean };
/** Headers remembered per kind for the comparison (clamd's MaxFiles). */
const MAX_STATED = 10_000;
type LocalHeader = { flags: number; method: number; csize: number; usize: number; name: string; key: string };
/** `counted`: a stored member a data descriptor ends, measured by offsets alone (its bytes are searched here). */
type Active = { member: MemberSink; start: number; end: number; fed: number; counted: StoredMember | null };

export class ZipWalker implements ByteSink {
  /** Bytes of a structure still being read, from pendingAt; searched again once `pendingNeed` bytes are in. */
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private pendingAt = 0;
  private pendingNeed = 0;
  /** Set by a parser returning INCOMPLETE: how many bytes from its signature it needs. */
  private needed = 0;
  /** Absolute offset of the next byte pushed. */
  private pos = 0;
  /** Raw search skips [skipFrom, skipTo): a stored member's bytes, which its nested walker searches. */
  private skipFrom = 0;
  private skipTo = 0;
  private active: Active[] = [];
  /** Names the central directory entries in this chunk list, checked once the chunk's member data was fed. */
  private listed: string[] = [];
  /** Where members of stated size end: a ZIP structure found there, or the stream ending there, corroborates a doubtful one. */
  private expected: { at: number; key: string }[] = [];
  /**
   * In a stream that starts with a ZIP, clamd reaches members only through the central
   * directory (entry offsets from the stream's start): a member no entry points at (in a
   * second ZIP appended to the first, or left out of the directory) is never extracted.
   * Local header offset -> name, until an entry points there.
   */
  private unreached = new Map<number, { key: string; name: string }>();
  /**
   * What local headers and central directory entries state, by name, so that the two can be
   * compared (clamd reads a ZIP at offset 0 through its central directory, using its method
   * and sizes; unzip, Python and 7-Zip each pick one or the other): see `agree`.
   */
  private readonly locals = new Map<string, Stated[]>();
  private readonly centrals = new Map<string, Stated[]>();
  /** The first bytes of this level's stream: clamd reads a central directory only for a ZIP that starts it. */
  private head = "";
  /** Whether this level's first bytes were examined for a gzip header. */
  private headChecked = false;
  private finished = false;
  /** The length of the chunk being pushed (its bytes end at `pos`). */
  private lastChunk: number | null = null;

  private readonly budget: ZipBudget;
  private readonly depth: number;

  constructor(budget: ZipBudget, depth = 0) {
    this.budget = budget;
    this.depth = depth;
  }

  push(chunk: Uint8Array): void {
    if (this.finished || this.budget.problem || chunk.length === 0) return;
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const at = this.pos;
    if (this.head.length < 4) this.head += buf.toString("latin1", 0, 4 - this.head.length);
    this.pos += buf.length;
    this.lastChunk = buf.length;
    this.search(buf, at);
    this.feed(buf, at);
    // After feeding: a member whose data fails in this very chunk is a suspect only now.
    for (const name of this.listed) this.budget.corroborate(name);
    this.listed = [];
  }

  finish(): void {
    if (this.finished) return;
    if (this.pendingLen && !this.budget.problem) {
      // A header asked for more bytes than it turned out to need (a gzip name is gathered by
      // doubling) and the stream ended first: what is held is examined once more.
      this.pendingNeed = 0;
      this.lastChunk = 0;
      this.search(Buffer.alloc(0), this.pos);
      for (const name of this.listed) this.budget.corroborate(name);
      this.listed = [];
    }
    this.finished = true;
    for (const a of this.active) {
      if (a.counted) a.counted.count(Math.max(0, Math.min(a.end, this.pos) - a.fed));
      a.member.end();
    }
    for (const e of this.expected) if (e.at === this.pos) this.budget.corroborate(e.key);
    for (const { key, name } of this.unreached.values()) {
      this.budget.noteSuspect(key, `ZIP member ${name} follows a ZIP that starts the file but no central directory entry points at it: clamd never extracts it`);
    }
    this.unreached.clear();
    this.active = [];
    this.pending = [];
    this.pendingLen = 0;
  }

  private search(chunk: Buffer, chunkAt: number): void {
    let buf = chunk, base = chunkAt;
    if (this.pendingLen) {
      // Gather a long header's bytes without searching them again on every small chunk.
      if (this.pendingLen + chunk.length < this.pendingNeed) {
        this.pending.push(Buffer.from(chunk));
        this.pendingLen += chunk.length;
        return;
      }
      buf = Buffer.concat([...this.pending, chunk]);
      base = this.pendingAt;
      this.pending = [];
      this.pendingLen = 0;
    }
    let i = 0;
    if (!this.headChecked && base === 0) {
      // A gzip starting this level's stream: clamd unpacks it and scans its content as a file.
      const g = gzipHeader(buf, 0);
      if (g.at === INCOMPLETE) {
        if (g.need > MAX_GZIP_HEADER) return this.budget.fail(`a gzip header longer than ${MAX_GZIP_HEADER} bytes: its content cannot be followed`);
        return this.keep(buf, base, 0, g.need);
      }
      this.headChecked = true;
      // Refused whether or not the whole header came in one chunk: the answer may not depend on chunking.
      if (g.at > MAX_GZIP_HEADER) return this.budget.fail(`a gzip header longer than ${MAX_GZIP_HEADER} bytes: its content cannot be followed`);
      if (g.at !== NONE) this.startStream("gzip content", g.at, buf, base, "gzip");
    }
    // The next "PK" and "stream" at or after i, each searched again only once passed.
    let pk = -2, st = -2;
    while (i < buf.length && !this.budget.problem) {
      if (base + i >= this.skipFrom && base + i < this.skipTo) i = this.skipTo - base;
      if (i >= buf.length) return;
      if (pk !== -1 && pk < i) pk = buf.indexOf(PK, i);
      if (st !== -1 && st < i) st = buf.indexOf(STREAM, i);
      const k = pk < 0 ? st : st < 0 ? pk : Math.min(pk, st);
      if (k < 0) {
        const from = partialTail(buf, TAILS);
        if (from < buf.length) this.keep(buf, base, from, 10);
        return;
      }
      if (base + k >= this.skipFrom && base + k < this.skipTo) {
        i = this.skipTo - base;
        continue;
      }
      const next = buf[k] === 0x73 ? this.pdfStream(buf, k, base) : this.structureAt(buf, k, base);
      if (next === INCOMPLETE) {
        this.keep(buf, base, k, this.needed);
        return;
      }
      i = next;
    }
  }

  /** A zlib stream after a PDF "stream" keyword: inflated and walked one level deeper. */
  private pdfStream(buf: Buffer, k: number, base: number): number {
    const z = pdfZlibStream(buf, k);
    if (z.at === INCOMPLETE) return this.incomplete(z.need);
    if (z.at !== NONE) this.startStream(`PDF stream at offset ${base + k}`, base + z.at, buf, base, z.text ?? "zlib");
    return k + STREAM.length;
  }

  /**
   * Deflate data clamd inflates and scans as a file (a gzip's, a PDF stream's) from `dataAt`
   * to its own end. Corrupt data just ends it: clamd scans what such a stream yielded.
   */
  private startStream(what: string, dataAt: number, buf: Buffer, base: number, kind: "gzip" | "zlib" | "hex" | "a85"): void {
    const level = this.depth + 1;
    if (level >= this.budget.maxRecursion) {
      return this.budget.fail(`${what} is nested ${level} levels deep, at or past the scanner's MaxRecursion (${this.budget.maxRecursion})`);
    }
    const name = `(${what}, level ${level})`, nested = new ZipWalker(this.budget, level);
    const deflated = () => new DeflatedMember(this.budget, name, null, nested);
    const member = kind === "gzip" ? new GzipMember(this.budget, name, nested)
      : kind === "hex" ? new HexMember(deflated(), 2) : kind === "a85" ? new Ascii85Member(deflated(), 2) : deflated();
    // A header gathered from earlier chunks (a long gzip name) may be complete only past its
    // end: its data bytes held in `buf` before this chunk are fed now, the rest by feed().
    const chunkAt = this.pos - (this.lastChunk ?? 0);
    if (dataAt < chunkAt) member.feed(buf.subarray(dataAt - base, chunkAt - base));
    this.track(member, Math.max(dataAt, chunkAt), Infinity, null);
  }

  /** Reads the structure whose signature starts at buf[k]; where the search goes on, or INCOMPLETE. */
  private structureAt(buf: Buffer, k: number, base: number): number {
    if (k + 4 > buf.length) return this.incomplete(4);
    const type = buf.readUInt16LE(k + 2);
    if (this.expected.length && (type === LOCAL || type === CENTRAL || type === DESCRIPTOR)) this.reached(base + k);
    if (type === LOCAL) return this.localHeader(buf, k, base);
    if (type === CENTRAL) return this.centralHeader(buf, k);
    if (type === DESCRIPTOR) return this.descriptor(buf, k, base);
    return k + 2;
  }

  /** A structure begins at `at`: members that end there are corroborated (checked after the chunk's feed). */
  private reached(at: number): void {
    for (const e of this.expected) if (e.at === at) this.listed.push(e.key);
    this.expected = this.expected.filter((e) => e.at > at);
  }

  private keep(buf: Buffer, base: number, from: number, need: number): void {
    this.pending = [Buffer.from(buf.subarray(from))];
    this.pendingLen = buf.length - from;
    this.pendingAt = base + from;
    this.pendingNeed = need;
  }

  private incomplete(need: number): number {
    this.needed = need;
    return INCOMPLETE;
  }

  private localHeader(buf: Buffer, k: number, base: number): number {
    if (k + 30 > buf.length) return this.incomplete(30);
    const n = buf.readUInt16LE(k + 26), e = buf.readUInt16LE(k + 28);
    const dataAt = k + 30 + n + e;
    if (dataAt > buf.length) return this.incomplete(30 + n + e);
    const h: LocalHeader = {
      flags: buf.readUInt16LE(k + 6),
      method: buf.readUInt16LE(k + 8),
      csize: buf.readUInt32LE(k + 18),
      usize: buf.readUInt32LE(k + 22),
      name: display(buf.toString("utf8", k + 30, k + 30 + Math.min(n, 200))),
      key: buf.toString("latin1", k + 30, k + 30 + Math.min(n, NAME_KEY_BYTES)),
    };
    this.agree(h.key, h.name, { method: h.method, csize: h.csize, dd: (h.flags & F_DATA_DESCRIPTOR) !== 0 }, this.locals, this.centrals);
    // A header a zip tool would write is evidence by itself (checked after this chunk's feed,
    // like a central directory entry): without it, a member could dodge every other kind
    // (no directory entry, junk where its size ends) while Java's ZipInputStream, which reads
    // local headers in sequence, still extracts it.
    if (plausibleLocalHeader(buf, k, n, e, h.flags, h.method)) this.listed.push(h.key);
    this.startMember(h, base + dataAt, base + k);
    // The header's own name and extra bytes are searched too: clamd's raw search would.
    return k + 4;
  }

  private centralHeader(buf: Buffer, k: number): number {
    if (k + 46 > buf.length) return this.incomplete(46);
    const n = buf.readUInt16LE(k + 28);
    if (k + 46 + Math.min(n, NAME_KEY_BYTES) > buf.length) return this.incomplete(46 + Math.min(n, NAME_KEY_BYTES));
    const method = buf.readUInt16LE(k + 10);
    const csize = buf.readUInt32LE(k + 20), usize = buf.readUInt32LE(k + 24);
    const name = display(buf.toString("utf8", k + 46, k + 46 + Math.min(n, 200)));
    const key = buf.toString("latin1", k + 46, k + 46 + Math.min(n, NAME_KEY_BYTES));
    if ((method === 0 || method === 8) && (csize === U32 || usize === U32)) this.zip64(name);
    this.agree(key, name, { method, csize, dd: (buf.readUInt16LE(k + 8) & F_DATA_DESCRIPTOR) !== 0 }, this.centrals, this.locals);
    this.listed.push(key);
    this.unreached.delete(buf.readUInt32LE(k + 42));
    return k + 4;
  }

  /**
   * A central directory entry and a local header of the same name must state the same
   * method and (without a data descriptor) the same compressed size. Otherwise what is
   * walked here (the local header's view) is not what clamd extracts from a ZIP at offset 0
   * (the central directory's: measured, a local header saying "stored" or method 99 over a
   * deflate bomb the central directory calls deflate is inflated by clamd, cut at
   * MaxFileSize, "OK"), nor what every extractor reads. Both headers at once are structure
   * random bytes do not give, so the disagreement is refused outright.
   */
  private agree(key: string, name: string, mine: Stated, own: Map<string, Stated[]>, other: Map<string, Stated[]>): void {
    const theirs = other.get(key);
    if (theirs && !theirs.some((t) => t.method === mine.method && (t.dd || mine.dd || t.csize === mine.csize))) {
      const [local, central] = own === this.locals ? [mine, theirs[0]!] : [theirs[0]!, mine];
      const says = (h: Stated) => `method ${h.method}, ${h.dd ? "sizes in a data descriptor" : `${h.csize} compressed bytes`}`;
      return this.budget.fail(`ZIP member ${name}: its local header (${says(local)}) and its central directory entry (${says(central)}) disagree: extractors and the scanner would read different content`);
    }
    const list = own.get(key);
    if (list) {
      if (list.length < 16) list.push(mine);
    } else if (own.size < MAX_STATED) own.set(key, [mine]);
  }

  /** A data descriptor ends the open stored member whose byte count it states (bit 3: sizes follow the data). */
  private descriptor(buf: Buffer, k: number, base: number): number {
    if (k + 16 > buf.length) return this.incomplete(16);
    const stated = buf.readUInt32LE(k + 8);
    for (const a of this.active) {
      if (a.counted && a.end === Infinity && base + k - a.start === stated) a.end = base + k;
    }
    return k + 4;
  }

  private startMember(h: LocalHeader, dataAt: number, headerAt: number): void {
    const dd = (h.flags & F_DATA_DESCRIPTOR) !== 0;
    const end = dd ? Infinity : dataAt + h.csize;
    if (!dd && this.expected.length < MAX_EXPECTED) this.expected.push({ at: end, key: h.key });
    const zipAtStart = this.head.startsWith("PK\x03\x04");
    if (zipAtStart && (dd || h.csize > 0)) {
      if (this.unreached.size >= MAX_UNREACHED) return this.budget.fail(`more than ${MAX_UNREACHED} ZIP members before their central directory`);
      this.unreached.set(headerAt, { key: h.key, name: h.name });
    }
    if (h.flags & F_ENCRYPTED) {
      // At offset 0 clamd raises Heuristics.Encrypted.Zip itself (AlertEncryptedArchive yes);
      // measured on 1.4.6: the same member after a 4-byte prefix gets "stream: OK".
      if (!zipAtStart) this.budget.noteSuspect(h.key, `ZIP member ${h.name} is encrypted in a ZIP that does not start the file: clamd neither reads it nor flags it`);
      return;
    }
    if (!dd && (h.csize === U32 || h.usize === U32)) return this.zip64(h.name);
    if (!dd && h.csize === 0) {
      // parse_local_file_header: "skipping empty file"; unzip would use the central directory's size.
      if (h.usize > 0 && (h.method === 0 || h.method === 8)) this.budget.fail(`ZIP member ${h.name} states 0 compressed bytes but ${h.usize} uncompressed: clamd skips it as empty`);
      return;
    }
    if (dd && !zipAtStart) {
      // Measured on 1.4.6: such a member after a 4-byte prefix gets "stream: OK" (unzip extracts it).
      this.budget.noteSuspect(h.key, `ZIP member ${h.name} has a data descriptor in a ZIP that does not start the file: clamd extracts it only through a central directory it reads at offset 0, so it would go unscanned`);
    }
    if (h.method === 0 && dd) {
      const stored = new StoredMember(this.budget, h.name, null);
      return this.track(stored, dataAt, end, stored);
    }
    if (h.method !== 0 && h.method !== 8) return this.undecodable(h);
    const level = this.depth + 1;
    if (level >= this.budget.maxRecursion) {
      return this.budget.fail(`ZIP member ${h.name} is nested ${level} levels deep, at or past the scanner's MaxRecursion (${this.budget.maxRecursion})`);
    }
    if (h.method === 8) return this.track(new DeflatedMember(this.budget, h.name, h.key, new ZipWalker(this.budget, level)), dataAt, end, null);
    let member: MemberSink = new StoredMember(this.budget, h.name, new ZipWalker(this.budget, level));
    // unz(): a stored member stating fewer bytes than its uncompressed size is also inflated.
    if (h.csize < h.usize) member = new BothMember([member, new DeflatedMember(this.budget, h.name, h.key, new ZipWalker(this.budget, level))]);
    // Its bytes are searched by its nested walker, not again here.
    this.skipFrom = dataAt;
    this.skipTo = end;
    this.track(member, dataAt, end, null);
  }

  private undecodable(h: LocalHeader): void {
    const kind = DECODED_ELSEWHERE[h.method];
    if (!kind && !UNDECODED.has(h.method)) return;
    const problem = kind
      ? `ZIP member ${h.name} uses ${kind} (method ${h.method}), which clamd decodes but whose size cannot be established here`
      : `ZIP member ${h.name} uses compression method ${h.method}, which clamd cannot decode: its content would go unscanned`;
    this.budget.noteSuspect(h.key, problem);
  }

  private zip64(name: string): void {
    // Measured on clamd 1.4.6: a ZIP64 member is not extracted at all ("stream: OK" for EICAR in `zip -fz`).
    this.budget.fail(`ZIP member ${name} has ZIP64 sizes, which the scanner does not extract`);
  }

  private track(member: MemberSink, start: number, end: number, counted: StoredMember | null): void {
    // The cap on open members applies after the chunk's feed (feed()): members that begin
    // and end inside one chunk (300 small files in 40 KB) were never open at once.
    if (!this.budget.follow()) return member.end();
    this.active.push({ member, start, end, fed: start, counted });
  }

  /** Gives each open member the part of this chunk that is its data. */
  private feed(chunk: Buffer, chunkAt: number): void {
    if (this.active.length === 0) return;
    const chunkEnd = chunkAt + chunk.length;
    // A member that a data descriptor ends gets only the bytes the search has passed: a
    // descriptor still being read (pending) may end it before them, and it must not be overcounted.
    const searched = this.pendingLen ? this.pendingAt : chunkEnd;
    for (const a of this.active) {
      if (this.budget.problem) return;
      if (a.counted) {
        const to = Math.min(a.end, searched);
        if (to > a.fed) a.counted.count(to - a.fed);
        a.fed = Math.max(a.fed, to);
      } else {
        const from = Math.max(a.fed, chunkAt), to = Math.min(a.end, chunkEnd);
        if (to > from) a.member.feed(chunk.subarray(from - chunkAt, to - chunkAt));
        a.fed = Math.max(a.fed, to);
      }
      if (a.fed >= a.end) a.member.end();
    }
    this.active = this.active.filter((a) => !a.member.done);
    // Headers 30 bytes apart could otherwise open members without end and make every chunk cost more.
    if (this.active.length > MAX_OPEN_MEMBERS) {
      this.budget.fail(`more than ${MAX_OPEN_MEMBERS} ZIP members open at once at one level: cannot be established within bounded work`);
    }
  }
}

function display(name: string): string {
  return JSON.stringify(name);
}
