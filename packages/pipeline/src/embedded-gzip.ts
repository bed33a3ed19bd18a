import { constants, crc32, inflateRawSync } from "node:zlib";

/**
 * clamd unpacks a gzip stream only where a file starts with one: a gzip appended to a PDF,
 * a text or an image, or sitting anywhere but at offset 0, is never opened (measured on
 * 1.4.6: "stream: OK" with EICAR inside; infra/clamd/README.md). bzip2 and xz have
 * magic numbers long enough for clamd body signatures (infra/clamd/up.sh); gzip's header
 * is three fixed bytes (decoders ignore the rest), which random data matches once in ~16 MiB, so
 * here each candidate is decoded to tell a real gzip from chance:
 *
 * - a complete member whose CRC-32 and length check out is a gzip, and so is one that
 *   decoded MIN_PROOF_BYTES whatever its trailer says;
 * - so is a stream that decodes without error through the whole window (a member longer
 *   than the window, a bomb: decoding stops at MAX_TRIAL_OUTPUT, or a payload behind
 *   padding), or to the object's end with some output (a truncated member);
 * - anything else is chance and dismissed: random bytes fail a deflate decode within a
 *   few hundred bytes (reserved block types, invalid codes, distances before the start).
 *
 * Memory stays bounded: WINDOW bytes per candidate under examination, at most MAX_OPEN at
 * once; past that the object is refused (only crafted input gets there).
 */
// 128 KiB: room for the largest FEXTRA field (65 535 bytes) and the data after it.
const WINDOW = 128 * 1024;
const MIN_PROOF_BYTES = 4 * 1024;
const MAX_TRIAL_OUTPUT = 1024 * 1024;
const MAX_OPEN = 64;
const HEADER = Buffer.from([0x1f, 0x8b, 0x08]);

interface Candidate {
  offset: number;
  parts: Buffer[];
  length: number;
}

export class EmbeddedGzipCheck {
  private position = 0;
  /** The object's last two bytes before this chunk, so a header split across chunks is seen. */
  private carry: Buffer = Buffer.alloc(0);
  private open: Candidate[] = [];
  private problem: string | null = null;

  push(chunk: Buffer): void {
    if (this.problem) return;
    for (const c of this.open) this.feed(c, chunk);
    this.open = this.open.filter((c) => !this.settledIfFull(c));

    // Headers that start in the carried tail and end in this chunk (no copy of the chunk
    // itself: only its first bytes join the tail), then headers wholly inside the chunk.
    const boundary = Buffer.concat([this.carry, chunk.subarray(0, HEADER.length - 1)]);
    for (let at = boundary.indexOf(HEADER); at !== -1 && at < this.carry.length; at = boundary.indexOf(HEADER, at + 1)) {
      this.open_(this.position - this.carry.length + at, [boundary.subarray(at), chunk.subarray(HEADER.length - 1)]);
    }
    for (let at = chunk.indexOf(HEADER); at !== -1; at = chunk.indexOf(HEADER, at + 1)) this.open_(this.position + at, [chunk.subarray(at)]);
    this.position += chunk.length;
    const tail = Buffer.concat([this.carry, chunk.subarray(Math.max(0, chunk.length - (HEADER.length - 1)))]);
    this.carry = Buffer.from(tail.subarray(Math.max(0, tail.length - (HEADER.length - 1))));
  }

  /** Starts examining a candidate header at `offset`, with its bytes so far. */
  private open_(offset: number, bytes: Buffer[]): void {
    if (this.problem || offset === 0) return; // offset 0 is clamd's to unpack
    if (this.open.length >= MAX_OPEN) {
      this.problem = `more than ${MAX_OPEN} gzip headers open at once near offset ${offset}: the object cannot be examined`;
      return;
    }
    const c: Candidate = { offset, parts: [], length: 0 };
    for (const b of bytes) this.feed(c, b);
    if (!this.settledIfFull(c)) this.open.push(c);
  }

  /** Null when no gzip stream was found anywhere past offset 0. */
  finish(): string | null {
    for (const c of this.open) {
      if (this.problem) break;
      this.examine(c, true);
    }
    this.open = [];
    return this.problem;
  }

  private feed(c: Candidate, bytes: Buffer): void {
    const take = Math.min(WINDOW - c.length, bytes.length);
    if (take <= 0) return;
    c.parts.push(Buffer.from(bytes.subarray(0, take)));
    c.length += take;
  }

  private settledIfFull(c: Candidate): boolean {
    if (c.length < WINDOW) return false;
    this.examine(c, false);
    return true;
  }

  private examine(c: Candidate, whole: boolean): void {
    if (looksLikeGzip(Buffer.concat(c.parts, c.length), whole)) {
      this.problem = `a gzip stream at offset ${c.offset}: clamd unpacks gzip only at the start of a file, so its content was never scanned`;
    }
  }
}

/** Where the deflate data of a gzip member begins (RFC 1952 2.3), or why it cannot be told. */
function deflateStart(w: Buffer): number | "truncated" | "invalid" {
  if (w.length < 10) return "truncated";
  const flags = w[3]!;
  if (flags & 0xe0) return "invalid";
  let at = 10;
  if (flags & 0x04) {
    if (w.length < at + 2) return "truncated";
    at += 2 + w.readUInt16LE(at); // FEXTRA: XLEN bytes
  }
  for (const bit of [0x08, 0x10]) {
    if (!(flags & bit)) continue; // FNAME, FCOMMENT: zero-terminated
    const end = w.indexOf(0, at);
    if (end === -1) return "truncated";
    at = end + 1;
  }
  if (flags & 0x02) at += 2; // FHCRC
  return at <= w.length ? at : "truncated";
}

/**
 * True when `window` (from a gzip header on) decodes as gzip; see the rules above.
 * `whole`: the window holds everything up to the object's end (it was not cut at WINDOW).
 */
export function looksLikeGzip(window: Buffer, whole: boolean): boolean {
  const start = deflateStart(window);
  // A header longer than the window (a name of 64 KiB, say) would hide the data behind it:
  // refused. Random data never gets here: it holds a zero byte every few hundred bytes.
  if (start === "truncated") return !whole;
  if (start === "invalid") return false;
  const data = window.subarray(start);
  try {
    const { buffer, engine } = inflateRawSync(data, { info: true, maxOutputLength: MAX_TRIAL_OUTPUT }) as unknown as { buffer: Buffer; engine: { bytesWritten: number } };
    // A complete deflate stream. Random bytes end one with a few bytes of output in ~0.5% of
    // tries (measured: 2 101 of 400 000 random windows, 42 of them with 256 bytes or more),
    // so it counts when its CRC-32 and length agree, or when it decoded MIN_PROOF_BYTES
    // (zcat prints a member whose trailer is wrong or missing all the same).
    const end = engine.bytesWritten;
    // No room left for the trailer: cut by the window (cannot be checked) or by the object
    // (a member without its trailer, which zcat prints).
    if (data.length < end + 8) return !whole || buffer.length > 0;
    const trailerOk = data.readUInt32LE(end) === crc32(buffer) >>> 0 && data.readUInt32LE(end + 4) === buffer.length % 2 ** 32;
    return trailerOk || buffer.length >= MIN_PROOF_BYTES;
  } catch (err) {
    if (err instanceof RangeError) return true; // decodes past MAX_TRIAL_OUTPUT
    if ((err as NodeJS.ErrnoException).code !== "Z_BUF_ERROR") return false; // invalid data
  }
  // The input ended inside the stream without an error. At the window's end: random data
  // never decodes that far (1 in 400 000 ran through 4 KiB), while a crafted stream can put
  // its payload behind any amount of empty stored blocks, so it counts whatever it produced.
  // At the object's end: a truncated member still hands its data to zcat.
  if (!whole) return true;
  try {
    return inflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: MAX_TRIAL_OUTPUT }).length > 0;
  } catch (err) {
    return err instanceof RangeError;
  }
}
