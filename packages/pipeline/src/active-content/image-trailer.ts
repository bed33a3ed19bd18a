import type { Finding } from "./findings.ts";

/**
 * Data after an image's end: a PNG past its IEND chunk, a JPEG past the EOI of its primary
 * image, a GIF past its 0x3B trailer, a WebP past its RIFF size. Viewers stop at the end
 * marker, so bytes after it are invisible to anyone looking at the picture, which makes
 * them the usual place for a polyglot's payload (a ZIP, a script, an archive of malware).
 *
 * Each format is walked by its own structure, not searched for its end marker: a JPEG's
 * APP1 segment may hold an EXIF thumbnail with its own EOI, and PNG chunk data or GIF
 * sub-blocks may contain marker bytes. Segments and chunks are skipped by their lengths,
 * so memory stays constant; a file that ends before its end marker, or whose structure
 * breaks, is invalid_content (not the image it claims to be), never a pass.
 */
export type ImageFormat = "png" | "jpeg" | "gif" | "webp";

/** By sniffed type; file-type names a PNG with an acTL chunk image/apng (the same chunk structure). */
export const IMAGE_FORMATS: Record<string, ImageFormat> = { "image/png": "png", "image/apng": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp" };

const END_MARKER: Record<ImageFormat, string> = { png: "PNG's IEND chunk", jpeg: "JPEG's end of image (EOI)", gif: "GIF's trailer", webp: "WebP's RIFF size" };

export class ImageTrailerCheck {
  private readonly format: ImageFormat;
  private ended = false;
  private trailing = 0;
  private problem: string | null = null;
  private skip = 0;
  private want = 0;
  private got: number[] = [];
  private next: ((bytes: number[]) => void) | null = null;
  /** JPEG entropy-coded data: bytes are scanned for the next marker. */
  private entropy = false;
  private sawFF = false;

  constructor(format: ImageFormat) {
    this.format = format;
    ({ png: () => this.png(), jpeg: () => this.jpeg(), gif: () => this.gif(), webp: () => this.webp() })[format]();
  }

  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length && !this.problem) {
      if (this.ended) {
        this.trailing += chunk.length - i;
        return;
      }
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - i);
        this.skip -= n;
        i += n;
        if (this.skip === 0) this.continue([]);
      } else if (this.entropy) {
        if (!this.sawFF) {
          // Only 0xFF matters in entropy-coded data: jump to the next one.
          const p = chunk.indexOf(0xff, i);
          if (p === -1) return;
          i = p;
        }
        this.entropyByte(chunk[i++]!);
      } else {
        this.got.push(chunk[i++]!);
        if (this.got.length === this.want) this.continue(this.got.splice(0));
      }
    }
  }

  finish(): Finding | null {
    const name = this.format.toUpperCase();
    if (this.problem) return { reason: "invalid_content", detail: `not a valid ${name}: ${this.problem}` };
    if (!this.ended) return { reason: "invalid_content", detail: `not a valid ${name}: the file ends before the ${END_MARKER[this.format]}` };
    if (this.trailing > 0) return { reason: "trailing_data", detail: `${this.trailing} bytes after the ${END_MARKER[this.format]}` };
    return null;
  }

  private read(n: number, then: (bytes: number[]) => void): void {
    this.want = n;
    this.next = then;
  }

  private skipThen(n: number, then: () => void): void {
    if (n === 0) return then();
    this.skip = n;
    this.next = then;
  }

  private continue(bytes: number[]): void {
    const next = this.next!;
    this.next = null;
    next(bytes);
  }

  private fail(problem: string): void {
    this.problem ??= problem;
  }

  private end(): void {
    this.ended = true;
  }

  // PNG (ISO/IEC 15948): signature, then chunks of length, type, data, CRC up to IEND.
  private png(): void {
    this.read(8, (sig) => (Buffer.from(sig).equals(PNG_SIGNATURE) ? this.pngChunk() : this.fail("bad signature")));
  }

  private pngChunk(): void {
    this.read(8, (h) => {
      const length = ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
      if (length > 0x7fffffff) return this.fail("chunk length above 2^31-1");
      const type = String.fromCharCode(...h.slice(4));
      // IEND is empty by definition; data in it is as invisible as data after it.
      if (type === "IEND" && length !== 0) return this.fail(`IEND chunk carrying ${length} bytes`);
      this.skipThen(length + 4, () => (type === "IEND" ? this.end() : this.pngChunk()));
    });
  }

  // JPEG (ITU T.81 Annex B): SOI, marker segments skipped by their length, entropy-coded
  // data after each SOS scanned for the next marker (0xFF00 is a stuffed byte, RSTn and
  // fill bytes belong to the scan), up to the EOI outside any segment.
  private jpeg(): void {
    this.read(2, (soi) => (soi[0] === 0xff && soi[1] === 0xd8 ? this.jpegMarker() : this.fail("no start of image")));
  }

  private jpegMarker(): void {
    this.read(1, (b) => (b[0] === 0xff ? this.jpegFill() : this.fail(`0x${b[0]!.toString(16)} where a marker should start`)));
  }

  private jpegFill(): void {
    this.read(1, (b) => (b[0] === 0xff ? this.jpegFill() : this.jpegCode(b[0]!)));
  }

  private jpegCode(m: number): void {
    if (m === 0xd9) return this.end();
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) return this.jpegMarker(); // no length
    if (m === 0xd8 || m === 0x00) return this.fail(`unexpected marker 0x${m.toString(16)}`);
    this.read(2, (l) => {
      const length = (l[0]! << 8) | l[1]!;
      if (length < 2) return this.fail("segment length below 2");
      this.skipThen(length - 2, () => (m === 0xda ? this.startEntropy() : this.jpegMarker()));
    });
  }

  private startEntropy(): void {
    this.entropy = true;
    this.sawFF = false;
  }

  private entropyByte(b: number): void {
    if (!this.sawFF) {
      this.sawFF = b === 0xff;
      return;
    }
    if (b === 0xff) return; // fill byte before a marker
    this.sawFF = false;
    if (b === 0x00 || (b >= 0xd0 && b <= 0xd7)) return; // stuffed byte, restart marker
    this.entropy = false;
    this.jpegCode(b);
  }

  // GIF (89a): header, logical screen descriptor, optional global colour table, then
  // image descriptors and extensions made of sub-blocks, up to the 0x3B trailer.
  private gif(): void {
    this.read(13, (h) => {
      const sig = String.fromCharCode(...h.slice(0, 6));
      if (sig !== "GIF87a" && sig !== "GIF89a") return this.fail("bad signature");
      this.skipThen(colourTable(h[10]!), () => this.gifBlock());
    });
  }

  private gifBlock(): void {
    this.read(1, ([b]) => {
      if (b === 0x3b) return this.end();
      if (b === 0x21) return this.read(1, () => this.gifSubBlocks());
      if (b === 0x2c) return this.read(9, (d) => this.skipThen(colourTable(d[8]!), () => this.read(1, () => this.gifSubBlocks())));
      this.fail(`unknown block 0x${b!.toString(16)}`);
    });
  }

  private gifSubBlocks(): void {
    this.read(1, ([n]) => (n === 0 ? this.gifBlock() : this.skipThen(n!, () => this.gifSubBlocks())));
  }

  // WebP: a RIFF container; its size field counts every byte after the first eight.
  private webp(): void {
    this.read(12, (h) => {
      const b = Buffer.from(h);
      if (b.toString("latin1", 0, 4) !== "RIFF" || b.toString("latin1", 8, 12) !== "WEBP") return this.fail("not a RIFF WEBP file");
      const size = b.readUInt32LE(4);
      if (size < 4) return this.fail("RIFF size below 4");
      this.skipThen(size - 4, () => this.end());
    });
  }
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Bytes of the colour table a GIF packed field announces (0 without one). */
function colourTable(packed: number): number {
  return packed & 0x80 ? 3 * 2 ** ((packed & 0x07) + 1) : 0;
}
