import { Inflate } from "fflate";

/**
 * Incremental, bounded DEFLATE decoding for content checks that must read inside
 * compressed data (PDF object streams, an OOXML package's [Content_Types].xml).
 *
 * Bounded three ways, so a decompression bomb costs at most what clamd itself would spend:
 * - input is fed to fflate in SLICE-byte pieces: DEFLATE expands at most 1032:1, so one
 *   callback never holds more than about 1 MiB of output whatever the chunk size;
 * - the output is counted per stream and against a budget shared by the whole object
 *   (clamd's MaxScanSize): past either, decoding stops and `problem` says why;
 * - fflate keeps input it has not consumed, and after the final block it consumes nothing
 *   more, appending every further push to that buffer. A stream that yields no output for
 *   STALL_BYTES of input is therefore given up on, as not established.
 * Whatever cannot be decoded to its end (corrupt data, truncated data, a limit) is a
 * problem, never a pass.
 */
export interface InflateBudget {
  /** Inflated bytes still allowed for the whole object (all streams together). */
  remaining: number;
}

export interface BoundedInflateOptions {
  /** zlib framing (RFC 1950: 2-byte header, Adler-32 trailer) rather than raw DEFLATE. */
  zlib: boolean;
  maxBytes: number;
  budget: InflateBudget;
  onData(data: Uint8Array): void;
}

const SLICE = 1024;
const STALL_BYTES = 256 * 1024;

export class BoundedInflate {
  private readonly opts: BoundedInflateOptions;
  private readonly inflate: Inflate;
  private readonly header: number[] = [];
  private produced = 0;
  private sinceOutput = 0;
  private failure: string | null = null;
  private ended = false;

  constructor(opts: BoundedInflateOptions) {
    this.opts = opts;
    this.inflate = new Inflate((data) => this.take(data));
  }

  get problem(): string | null {
    return this.failure;
  }

  /** Inflated bytes produced so far. */
  get bytes(): number {
    return this.produced;
  }

  push(bytes: Uint8Array): void {
    let data = bytes;
    if (this.opts.zlib && this.header.length < 2) {
      const need = 2 - this.header.length;
      this.header.push(...data.subarray(0, need));
      data = data.subarray(need);
      if (this.header.length === 2) this.checkZlibHeader();
    }
    for (let i = 0; i < data.length && !this.failure; i += SLICE) {
      const slice = data.subarray(i, i + SLICE);
      this.sinceOutput += slice.length;
      try {
        this.inflate.push(slice, false);
      } catch (err) {
        this.fail(`corrupt compressed data (${(err as Error).message})`);
      }
      if (!this.failure && this.sinceOutput > STALL_BYTES) this.fail(`${STALL_BYTES} compressed bytes yielded no output (data past the end of the compressed stream, or empty blocks)`);
    }
  }

  /** Ends the stream: the problem, or null when it decoded completely within its limits. */
  end(): string | null {
    if (this.ended) return this.failure;
    this.ended = true;
    if (this.failure) return this.failure;
    if (this.opts.zlib && this.header.length < 2) return this.fail("compressed stream ends inside its zlib header");
    try {
      // final: fflate throws "unexpected EOF" unless the last DEFLATE block was complete.
      this.inflate.push(new Uint8Array(0), true);
    } catch (err) {
      this.fail(`compressed data ends before its last block (${(err as Error).message})`);
    }
    return this.failure;
  }

  private take(data: Uint8Array): void {
    if (this.failure || data.length === 0) return;
    this.sinceOutput = 0;
    this.produced += data.length;
    this.opts.budget.remaining -= data.length;
    if (this.produced > this.opts.maxBytes) return void this.fail(`inflates past ${this.opts.maxBytes} bytes, more than can be examined`);
    if (this.opts.budget.remaining < 0) return void this.fail("the object's compressed streams inflate past what can be examined in total (clamd's MaxScanSize)");
    this.opts.onData(data);
  }

  private checkZlibHeader(): void {
    const [cmf, flg] = this.header as [number, number];
    // RFC 1950: CM 8 (deflate), CINFO <= 7, FCHECK makes the pair a multiple of 31; a preset
    // dictionary (FDICT) would be needed to decode and PDF defines none.
    if ((cmf & 0x0f) !== 8 || cmf >> 4 > 7 || ((cmf << 8) | flg) % 31 !== 0) this.fail("not a zlib stream (bad header)");
    else if (flg & 0x20) this.fail("zlib stream needs a preset dictionary");
  }

  private fail(problem: string): string {
    this.failure ??= problem;
    return this.failure;
  }
}
