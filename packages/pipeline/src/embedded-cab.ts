/**
 * Microsoft Cabinets anywhere in the object. clamd cuts a CAB folder at MaxFileSize or
 * MaxScanSize without an alert, and recognises a CAB only when the four bytes after "MSCF"
 * are zero, while cabextract and gcab extract one whatever they hold (measured,
 * infra/clamd/README.md). The Intake.Unscannable.CAB signature names the CABs clamd opens,
 * at every depth; this check finds, in the object's own bytes, every CAB the common tools
 * would extract, and the pipeline refuses it as unscannable.
 *
 * "MSCF" alone is four bytes (random data holds it once in 4 GiB), so each candidate is
 * checked against what an extractor needs (MS-CAB, the CFHEADER, CFFOLDER and CFDATA
 * structures), using only rules without which nothing can be extracted: at least one folder
 * and one file, a known compression type, and a first data block, where the folder says,
 * of at most 32 KiB uncompressed (MSZIP blocks begin with "CK"). Memory per candidate is
 * its header window and a few bytes; at most MAX_OPEN are examined at once.
 */
const SIGNATURE = Buffer.from("MSCF", "latin1");
/** The header, its reserve (up to 65 535 bytes), two cabinet names and the first folder. */
const HEAD_WINDOW = 36 + 4 + 65_535 + 2 * 257 + 8 + 255;
const MAX_NAME = 256;
const BLOCK_MAX = 32_768;
const MAX_OPEN = 64;

interface Candidate {
  offset: number;
  head: Buffer[];
  headLength: number;
  /** Set once the header parsed: where the first CFDATA block starts and how much of it to read. */
  data?: { at: number; need: number; parts: Buffer[]; length: number; type: number; reserve: number };
}

type HeadResult = { kind: "not_cab" } | { kind: "need_more" } | { kind: "data"; at: number; need: number; type: number; reserve: number };

/** Reads the CFHEADER and first CFFOLDER (offsets relative to the cabinet's start). */
function parseHead(h: Buffer, whole: boolean): HeadResult {
  const more = (): HeadResult => (whole ? { kind: "not_cab" } : { kind: "need_more" });
  if (h.length < 36) return more();
  const cbCabinet = h.readUInt32LE(8);
  const coffFiles = h.readUInt32LE(16);
  const cFolders = h.readUInt16LE(26);
  const cFiles = h.readUInt16LE(28);
  const flags = h.readUInt16LE(30);
  if (cFolders === 0 || cFiles === 0 || coffFiles < 36 || cbCabinet < 36) return { kind: "not_cab" };
  let at = 36;
  let folderReserve = 0;
  let dataReserve = 0;
  if (flags & 0x0004) {
    if (h.length < at + 4) return more();
    const headerReserve = h.readUInt16LE(at);
    folderReserve = h[at + 2]!;
    dataReserve = h[at + 3]!;
    at += 4 + headerReserve;
  }
  for (const bit of [0x0001, 0x0002]) {
    if (!(flags & bit)) continue;
    for (let s = 0; s < 2; s++) {
      // szCabinetPrev/szDiskPrev, szCabinetNext/szDiskNext: zero-terminated, at most 255 bytes.
      const end = h.indexOf(0, at);
      if (end === -1) return h.length - at > MAX_NAME ? { kind: "not_cab" } : more();
      if (end - at > MAX_NAME) return { kind: "not_cab" };
      at = end + 1;
    }
  }
  if (h.length < at + 8 + folderReserve) return more();
  const coffCabStart = h.readUInt32LE(at);
  const type = h.readUInt16LE(at + 6) & 0x000f; // 0 none, 1 MSZIP, 2 Quantum, 3 LZX
  if (type > 3 || h.readUInt16LE(at + 4) === 0 || coffCabStart < 36) return { kind: "not_cab" };
  return { kind: "data", at: coffCabStart, need: 8 + dataReserve + 2, type, reserve: dataReserve };
}

/** The first CFDATA block: csum, cbData, cbUncomp, reserve, then the data. */
function plausibleBlock(b: Buffer, type: number, reserve: number): boolean {
  const cbData = b.readUInt16LE(4);
  const cbUncomp = b.readUInt16LE(6);
  if (cbData === 0 || cbUncomp > BLOCK_MAX) return false;
  if (type === 1) return b[8 + reserve] === 0x43 && b[9 + reserve] === 0x4b; // "CK"
  return cbData <= BLOCK_MAX + 6144; // stored, Quantum and LZX blocks
}

export class EmbeddedCabCheck {
  /** Bytes of the object seen so far. */
  private position = 0;
  /** The object's last three bytes before this chunk, so a signature split across chunks is seen. */
  private carry: Buffer = Buffer.alloc(0);
  private open: Candidate[] = [];
  private problem: string | null = null;

  push(chunk: Buffer): void {
    if (this.problem) return;
    const start = this.position;
    for (const c of this.open) this.feed(c, chunk, start);
    const boundary = Buffer.concat([this.carry, chunk.subarray(0, SIGNATURE.length - 1)]);
    for (let at = boundary.indexOf(SIGNATURE); at !== -1 && at < this.carry.length; at = boundary.indexOf(SIGNATURE, at + 1)) {
      this.candidate(start - this.carry.length + at, [boundary.subarray(at), chunk.subarray(SIGNATURE.length - 1)]);
    }
    for (let at = chunk.indexOf(SIGNATURE); at !== -1; at = chunk.indexOf(SIGNATURE, at + 1)) this.candidate(start + at, [chunk.subarray(at)]);
    this.position += chunk.length;
    const tail = Buffer.concat([this.carry, chunk.subarray(Math.max(0, chunk.length - (SIGNATURE.length - 1)))]);
    this.carry = Buffer.from(tail.subarray(Math.max(0, tail.length - (SIGNATURE.length - 1))));
    this.settle(false);
  }

  /** Null when no cabinet an extractor would open was found. */
  finish(): string | null {
    if (!this.problem) this.settle(true);
    this.open = [];
    return this.problem;
  }

  private candidate(offset: number, bytes: Buffer[]): void {
    if (this.problem) return;
    if (this.open.length >= MAX_OPEN) {
      this.problem = `more than ${MAX_OPEN} cabinet headers open at once near offset ${offset}: the object cannot be examined`;
      return;
    }
    const c: Candidate = { offset, head: [], headLength: 0 };
    for (const b of bytes) this.keepHead(c, b);
    this.open.push(c);
  }

  private keepHead(c: Candidate, bytes: Buffer): void {
    const take = Math.min(HEAD_WINDOW - c.headLength, bytes.length);
    if (take <= 0) return;
    c.head.push(Buffer.from(bytes.subarray(0, take)));
    c.headLength += take;
  }

  /** Feeds a chunk that starts at absolute offset `chunkStart` to one candidate. */
  private feed(c: Candidate, chunk: Buffer, chunkStart: number): void {
    if (!c.data) {
      this.keepHead(c, chunk);
      return;
    }
    const d = c.data;
    const from = Math.max(d.at + d.length, chunkStart);
    const to = Math.min(d.at + d.need, chunkStart + chunk.length);
    if (to > from) {
      d.parts.push(Buffer.from(chunk.subarray(from - chunkStart, to - chunkStart)));
      d.length += to - from;
    }
  }

  /** Decides every candidate that has what it needs; `whole`: the object has ended. */
  private settle(whole: boolean): void {
    const still: Candidate[] = [];
    for (const c of this.open) {
      if (this.problem) break;
      if (!c.data && !this.parse(c, whole)) continue;
      if (this.problem) break;
      if (!c.data) {
        still.push(c);
        continue;
      }
      const d = c.data;
      if (d.length >= d.need) {
        if (plausibleBlock(Buffer.concat(d.parts, d.length), d.type, d.reserve)) this.found(c);
        continue;
      }
      if (!whole) still.push(c); // else the object ended before the block: nothing to extract
    }
    this.open = still;
  }

  /** False when the candidate is no cabinet; true while it still may be one. */
  private parse(c: Candidate, whole: boolean): boolean {
    const head = Buffer.concat(c.head, c.headLength);
    const r = parseHead(head, whole || c.headLength >= HEAD_WINDOW);
    if (r.kind === "not_cab") return false;
    if (r.kind === "need_more") return true;
    const at = c.offset + r.at;
    const d = { at, need: r.need, parts: [] as Buffer[], length: 0, type: r.type, reserve: r.reserve };
    c.data = d;
    c.head = [];
    if (r.at < head.length) {
      const have = head.subarray(r.at, Math.min(head.length, r.at + r.need));
      d.parts.push(Buffer.from(have));
      d.length = have.length;
    }
    // The rest of the block lies in bytes already gone by (past the header window): it
    // cannot be read back, so the cabinet cannot be ruled out.
    if (d.length < d.need && d.at + d.length < this.position) this.found(c);
    return true;
  }

  private found(c: Candidate): void {
    this.problem = `a Microsoft Cabinet at offset ${c.offset}: clamd cuts CAB folders short without an alert (or does not open the cabinet at all), so its content was not all scanned`;
  }
}
