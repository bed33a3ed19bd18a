/**
 * Compressed streams clamd unpacks and then scans as files of their own, so a ZIP inside
 * one is extracted (and cut at MaxFileSize without an alert) like any other: measured on
 * 1.4.6, a deflate bomb in a ZIP inside a gzip inside a ZIP member, or inside a PDF
 * FlateDecode stream, answers "stream: OK" for EICAR. The walk follows them one level
 * deeper, as it follows ZIP members:
 *
 * - a gzip that starts a level's stream (the object, a member's content, a stream's
 *   output): clamd's file typing opens gzip only there;
 * - a zlib stream after a PDF "stream" keyword and white space, wherever it sits (over-approximating
 *   where clamd's PDF parser looks: following one it would not costs work, never a pass).
 *
 * Each parser returns the offset in `buf` where the deflate data starts, NONE, or
 * INCOMPLETE with the bytes it needs from `k` in `need`.
 */

export const NONE = -2;
export const INCOMPLETE = -1;
/** A gzip header longer than this (FEXTRA, name, comment) is refused rather than buffered. */
export const MAX_GZIP_HEADER = 64 * 1024;

const FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16;

/** `text`: the data is ASCIIHex- or ASCII85-encoded over FlateDecode, `at` its first digit. */
export type Parse = { at: number; need: number; text?: "hex" | "a85" };

/** A gzip header (RFC 1952) at buf[k]: where its deflate data starts. */
export function gzipHeader(buf: Buffer, k: number): Parse {
  const avail = buf.length - k;
  if (avail < 3) return { at: isPrefix(buf, k, GZIP_MAGIC) ? INCOMPLETE : NONE, need: 10 };
  if (!isPrefix(buf, k, GZIP_MAGIC)) return { at: NONE, need: 0 };
  if (avail < 10) return { at: INCOMPLETE, need: 10 };
  const flags = buf[k + 3]!;
  let p = k + 10;
  if (flags & FEXTRA) {
    if (p + 2 > buf.length) return { at: INCOMPLETE, need: p + 2 - k };
    p += 2 + buf.readUInt16LE(p);
    if (p > buf.length) return { at: INCOMPLETE, need: p - k };
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (!(flags & flag)) continue;
    const nul = buf.indexOf(0, p);
    // Doubling what is asked for keeps a long name read in small chunks from costing n^2.
    if (nul < 0) return { at: INCOMPLETE, need: buf.length - k >= MAX_GZIP_HEADER ? MAX_GZIP_HEADER + 1 : Math.min(2 * (buf.length - k), MAX_GZIP_HEADER + 1) };
    p = nul + 1;
  }
  if (flags & FHCRC) p += 2;
  if (p > buf.length) return { at: INCOMPLETE, need: p - k };
  return { at: p, need: 0 };
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b, 0x08]);
export const STREAM = Buffer.from("stream", "latin1");

/** Bytes clamd's PDF parser skips between "stream" and the data (measured: none, " \n", "\t\n", "\r\n\r\n" all decode). */
const PDF_SPACE = new Set([0x20, 0x09, 0x0d, 0x0a, 0x0c, 0x00]);
const MAX_PDF_SPACE = 32;

/** "stream", white space, and a zlib header (RFC 1950, no preset dictionary) at buf[k]. */
export function pdfZlibStream(buf: Buffer, k: number): Parse {
  let p = k + STREAM.length;
  while (p < buf.length && p - k - STREAM.length < MAX_PDF_SPACE && PDF_SPACE.has(buf[p]!)) p++;
  if (p + 5 > buf.length) return { at: INCOMPLETE, need: p + 5 - k };
  if (isZlibHeader(buf[p]!, buf[p + 1]!)) return { at: p + 2, need: 0 };
  // The same stream text-encoded first (clamd decodes such chains: EICAR in a ZIP there is found).
  const h = [p, p + 1, p + 2, p + 3].map((i) => hexDigit(buf[i]!));
  if (h.every((d) => d >= 0) && isZlibHeader(h[0]! * 16 + h[1]!, h[2]! * 16 + h[3]!)) return { at: p, need: 0, text: "hex" };
  const a = [0, 1, 2, 3, 4].map((i) => buf[p + i]! - 0x21);
  if (a.every((d) => d >= 0 && d < 85)) {
    const v = a.reduce((n, d) => n * 85 + d, 0);
    if (v < 2 ** 32 && isZlibHeader(Math.floor(v / 2 ** 24), (v >>> 16) & 0xff)) return { at: p, need: 0, text: "a85" };
  }
  return { at: NONE, need: 0 };
}

function isZlibHeader(cmf: number, flg: number): boolean {
  return (cmf & 0x0f) === 8 && cmf >> 4 <= 7 && ((cmf << 8) | flg) % 31 === 0 && (flg & 0x20) === 0;
}

/** 0-15 for an ASCII hex digit, -1 otherwise. */
export function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/** Where in buf's last bytes a signature may begin that the next chunk completes (or buf.length). */
export function partialTail(buf: Buffer, signatures: readonly Buffer[]): number {
  let from = buf.length;
  for (const sig of signatures) {
    for (let j = Math.min(sig.length - 1, buf.length); j > 0; j--) {
      if (buf.length - j < from && isPrefix(buf, buf.length - j, sig.subarray(0, j))) from = buf.length - j;
    }
  }
  return from;
}

function isPrefix(buf: Buffer, k: number, sig: Buffer): boolean {
  const n = Math.min(sig.length, buf.length - k);
  return buf.subarray(k, k + n).equals(sig.subarray(0, n));
}
