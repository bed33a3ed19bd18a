/** What the ZIP walk knows about local header fields (APPNOTE.TXT 6.3.x). */

/** Methods clamd decodes besides stored and deflate: implode, deflate64, bzip2 (unzip.c unz()). */
export const DECODED_ELSEWHERE: Record<number, string> = { 6: "implode", 9: "deflate64", 12: "bzip2" };
/** Registered methods (APPNOTE 4.4.5) clamd does not decode; any other number is noise, which no tool decodes either. */
export const UNDECODED = new Set([1, 2, 3, 4, 5, 10, 14, 16, 18, 19, 20, 93, 94, 95, 96, 97, 98]);
/** General purpose flag bits APPNOTE 4.4.4 leaves unused or reserved: 7-10, 12, 14, 15. */
const RESERVED_FLAGS = 0xd780;

/**
 * Every field random bytes could hold but a zip tool writes within narrow ranges: version
 * needed 1.0-6.3 (any host byte below 20), no reserved flag bit, a registered method, a
 * name of printable bytes, an extra field made of whole (id, size) records. Random bytes
 * after "PK\x03\x04" pass all of it about once in 10^12 (the product of the fields' odds;
 * and that signature itself comes once in 4 GiB of random bytes).
 */
export function plausibleLocalHeader(buf: Buffer, k: number, n: number, e: number, flags: number, method: number): boolean {
  const version = buf[k + 4]!, host = buf[k + 5]!;
  if (version < 10 || version > 63 || host >= 20 || (flags & RESERVED_FLAGS) !== 0) return false;
  if (method !== 0 && method !== 8 && !DECODED_ELSEWHERE[method] && !UNDECODED.has(method)) return false;
  if (n === 0 || n > 1024 || e > 4096) return false;
  for (let i = k + 30; i < k + 30 + n; i++) if (buf[i]! < 0x20 || buf[i] === 0x7f) return false;
  let x = k + 30 + n;
  const end = x + e;
  while (x + 4 <= end) x += 4 + buf.readUInt16LE(x + 2);
  return x === end;
}
