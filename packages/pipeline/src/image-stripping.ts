import { createHash } from "node:crypto";
import { Readable, Transform, Writable, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { quarantine, type StrippedImageFormat, type Verdict } from "@intake/domain";
import type { Sharp, SharpOptions } from "sharp";
import type { Scanner } from "./deps.ts";

type SharpModule = (typeof import("sharp"))["default"];

/**
 * Image metadata stripping: a verified JPEG, PNG or WebP is re-encoded by libvips (through
 * sharp) with no EXIF, XMP or IPTC (GPS positions, camera serials, names), its EXIF
 * orientation applied to the pixels (the tag that said how to turn it goes with the rest)
 * and its ICC colour profile kept. libvips writes only what it is told to keep, so every
 * other carrier goes too: PNG tEXt/zTXt/iTXt/eXIf chunks, JPEG COM segments and APPn
 * segments (APP13 Photoshop/IPTC, APP2 FlashPix, ...), WebP EXIF and XMP chunks.
 *
 * A decoder failure is a finding, never a pass: bytes libvips cannot decode (truncated,
 * corrupt, a polyglot whose magic bytes promise an image) are image_undecodable; an image
 * over the pixel or byte limit is image_too_large (libvips checks the pixel count in the
 * header, before it decodes: a decompression bomb stops there).
 *
 * Memory: sharp's stream interface collects the compressed input and hands libvips one
 * buffer, and pushes the compressed output as one buffer (sharp 0.35, dist/input.mjs
 * _write, dist/output.mjs _pipeline): so the byte limit. libvips itself decodes in strips
 * (sequentialRead), except that a 90-degree orientation needs the whole decoded image
 * (width x height x channels bytes), hence the pixel limit. No libvips operation cache, one
 * libvips thread per image, and at most `concurrency` images per process: BENCHMARKS.md has
 * the peak RSS measured for an 8000x6000 photo.
 */
export interface ImageLimits {
  maxPixels: number;
  maxBytes: number;
  /** Images stripped at once by this process; the others wait their turn. */
  concurrency: number;
}

export type StripOutcome =
  /** Every input byte passed `inputSha256`; the stripped image went to the sink. */
  | { kind: "stripped"; inputSha256: string; servedSha256: string; servedSize: number }
  /** The library refused the image: a finding. inputSha256 is null when not every byte was read. */
  | { kind: "refused"; verdict: Verdict; inputSha256: string | null };

/**
 * Output settings, chosen so a re-encoding is not visibly worse than its source:
 * - JPEG quality 92 with 4:4:4 chroma: a second JPEG generation at 90+ shows no artefacts
 *   at 1:1, and 4:4:4 never halves the colour resolution of a source that had it full (a
 *   4:2:0 source, most cameras', loses nothing further; the file grows instead). Baseline,
 *   no optimised Huffman tables: both progressive output and optimise_coding make libjpeg
 *   hold every DCT coefficient of the image (measured: 380-650 MB peak RSS for 48 MP,
 *   against 101 MB without), for about 5% smaller files.
 * - PNG: lossless whatever the settings; zlib level 6 (libvips' default: level 9 costs
 *   several times the CPU for a few percent).
 * - WebP: lossless when the source is (its first image chunk is VP8L), else quality 90
 *   with full-quality alpha; every frame of an animated WebP is kept.
 */
const JPEG_OPTIONS = { quality: 92, chromaSubsampling: "4:4:4", optimiseCoding: false, progressive: false, mozjpeg: false } as const;
const PNG_OPTIONS = { compressionLevel: 6, adaptiveFiltering: false, palette: false } as const;
const lossyWebp = { quality: 90, alphaQuality: 100, effort: 4 } as const;

/** How much of the start is read before sharp is set up (the WebP encoding is named there). */
const HEAD_BYTES = 64 * 1024;

/** clamd, for the stripped copy (stripped-promotion.ts scanServed): @intake/scanner's MalwareScanner. */
export type ServedCopyScanner = Pick<Scanner, "scan">;

export class ImageStripper {
  private readonly limits: ImageLimits;
  private readonly sharp: SharpModule;
  /** Scans every stripped copy before it may be served; null: nothing stripped is promoted (fail closed). */
  readonly servedScanner: ServedCopyScanner | null;
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  /** Loads libvips only where images are stripped (the API imports this package too). */
  static async create(limits: ImageLimits, servedScanner: ServedCopyScanner | null = null): Promise<ImageStripper> {
    return new ImageStripper(limits, (await import("sharp")).default, servedScanner);
  }

  private constructor(limits: ImageLimits, sharp: SharpModule, servedScanner: ServedCopyScanner | null) {
    this.limits = limits;
    this.sharp = sharp;
    this.servedScanner = servedScanner;
    // Process-wide libvips settings: no cache of decoded images between jobs, one thread per
    // image (the worker runs clamd streams and other jobs on the same cores).
    sharp.cache(false);
    sharp.concurrency(1);
  }

  /** The byte limit, for callers that can refuse before reading anything. */
  get maxBytes(): number {
    return this.limits.maxBytes;
  }

  /**
   * Streams `source` (`size` bytes) through the decoder and re-encoder into `sink`, hashing
   * both sides. Throws for what is not the image's fault (the read or the sink failing, a
   * body that ended short): the caller retries those; the image's own faults are returned.
   */
  async strip(source: Readable, size: number, format: StrippedImageFormat, sink: Transform): Promise<StripOutcome> {
    if (size > this.limits.maxBytes) {
      source.destroy();
      return { kind: "refused", verdict: quarantine("image_too_large", `the image has ${size} bytes, over the ${this.limits.maxBytes} bytes metadata stripping allows (IMAGE_MAX_BYTES)`), inputSha256: null };
    }
    await this.turn();
    try {
      return await this.run(source, size, format, sink);
    } finally {
      this.release();
    }
  }

  private async run(source: Readable, size: number, format: StrippedImageFormat, sink: Transform): Promise<StripOutcome> {
    const { head, body } = await readHead(source, HEAD_BYTES);
    const input = new Tally();
    const output = new Tally();
    const encoder = this.encoder(format, head);
    // Who failed first decides: the decoder's own error is a finding, anything else (the
    // GET, the staging upload) is retried. pipeline() destroys the others with that error.
    let first: "decoder" | "other" | null = null;
    encoder.once("error", () => (first ??= "decoder"));
    for (const s of [body, input, output, sink]) s.once("error", () => (first ??= "other"));
    try {
      await pipeline(body, input, encoder, output, sink, drain());
    } catch (err) {
      if (first !== "decoder") throw err;
      const whole = input.bytes === size;
      return { kind: "refused", verdict: decoderFinding(err as Error, this.limits.maxPixels), inputSha256: whole ? input.digest() : null };
    }
    if (input.bytes !== size) throw new Error(`the image's body ended after ${input.bytes} of ${size} bytes`);
    return { kind: "stripped", inputSha256: input.digest(), servedSha256: output.digest(), servedSize: output.bytes };
  }

  private encoder(format: StrippedImageFormat, head: Buffer): Sharp {
    const options: SharpOptions = {
      sequentialRead: true,
      limitInputPixels: this.limits.maxPixels,
      // "warning", the strictest: libjpeg reports a scan cut short and patched with an end
      // marker ("premature end of data segment") only as a warning, and at "error" libvips
      // fills the rest grey and passes it. The price: a camera file with a stray-bytes
      // warning is quarantined too (a decoder's complaint is a finding, not a pass).
      failOn: "warning",
      // Every frame of an animated WebP (sharp reads only the first by default).
      animated: format === "webp",
    };
    const decoder = this.sharp(options)
      .autoOrient()
      .keepIccProfile();
    if (format === "jpeg") return decoder.jpeg(JPEG_OPTIONS);
    if (format === "png") return decoder.png(PNG_OPTIONS);
    return decoder.webp(webpIsLossless(head) ? { lossless: true, effort: 4 } : lossyWebp);
  }

  private async turn(): Promise<void> {
    if (this.running < this.limits.concurrency) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next(); // the turn passes on: running stays the same
    else this.running--;
  }
}

/** libvips' messages, as sharp passes them on: the pixel limit is checked in the header, before decoding. */
function decoderFinding(err: Error, maxPixels: number): Verdict {
  const message = err.message.split("\n")[0]!.slice(0, 300);
  if (/exceeds pixel limit/i.test(message)) return quarantine("image_too_large", `the image has more pixels than metadata stripping allows (${maxPixels}, IMAGE_MAX_PIXELS): ${message}`);
  return quarantine("image_undecodable", `the image library could not decode the image: ${message}`);
}

/**
 * Whether a WebP's image data is lossless: its first image chunk (after VP8X and its
 * ICCP/ANIM chunks, inside the first ANMF frame for an animation) is VP8L. Not found in the
 * head read: lossy (quality 90).
 */
export function webpIsLossless(head: Buffer): boolean {
  if (head.length < 12 || head.toString("latin1", 0, 4) !== "RIFF" || head.toString("latin1", 8, 12) !== "WEBP") return false;
  let at = 12;
  while (at + 8 <= head.length) {
    const fourcc = head.toString("latin1", at, at + 4);
    if (fourcc === "VP8L") return true;
    if (fourcc === "VP8 ") return false;
    // An animation frame: 16 bytes of frame header, then its own chunks (ALPH, VP8, VP8L).
    if (fourcc === "ANMF") {
      at += 8 + 16;
      continue;
    }
    const size = head.readUInt32LE(at + 4);
    at += 8 + size + (size & 1);
  }
  return false;
}

/** The first `n` bytes (fewer if the stream is shorter), and a stream of all of it from the start. */
async function readHead(source: Readable, n: number): Promise<{ head: Buffer; body: Readable }> {
  const chunks = source[Symbol.asyncIterator]();
  const seen: Buffer[] = [];
  let length = 0;
  let ended = false;
  while (length < n) {
    const next = await chunks.next();
    if (next.done) {
      ended = true;
      break;
    }
    seen.push(next.value as Buffer);
    length += (next.value as Buffer).length;
  }
  async function* all(): AsyncGenerator<Buffer> {
    yield* seen;
    if (ended) return;
    for (;;) {
      const next = await chunks.next();
      if (next.done) return;
      yield next.value as Buffer;
    }
  }
  return { head: Buffer.concat(seen).subarray(0, n), body: Readable.from(all(), { objectMode: false }) };
}

/** Counts and hashes what passes. */
class Tally extends Transform {
  bytes = 0;
  private readonly hash = createHash("sha256");
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
  digest(): string {
    return this.hash.digest("hex");
  }
}

/** The end of the line: the sink (a StagedCopy) passes its chunks on, nobody needs them. */
function drain(): Writable {
  return new Writable({ write: (_chunk, _enc, done) => done() });
}
