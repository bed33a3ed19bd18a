import { constants, crc32, deflateRawSync } from "node:zlib";

/**
 * ZIP archives built by hand for the tests, including the malformed and hostile shapes a
 * real zip tool will not write: sizes that lie, data descriptors with zeros in the local
 * header, ZIP64 fields, odd methods, no central directory.
 */

export type MemberSpec = {
  name: string;
  /** The member's content (crc and true usize come from it). */
  data?: Buffer | string;
  /** The bytes stored in the archive instead of compressing `data` (e.g. a prebuilt deflate stream). */
  body?: Buffer;
  /** 0 stored, 8 deflate (default), or any other method number written as is. */
  method?: number;
  /** Uncompressed size stated in the headers (default: the truth, or 0 with `descriptor`). */
  statedSize?: number;
  /** Bit 3: zeros in the local header, sizes in a data descriptor after the data. */
  descriptor?: boolean;
  /** ZIP64: all-ones sizes in the headers, real ones in a ZIP64 extra field. */
  zip64?: boolean;
  /** Left out of the central directory (clamd still finds its local header). */
  unlisted?: boolean;
};

function rec(...fields: [2 | 4 | 8, number][]): Buffer {
  const b = Buffer.alloc(fields.reduce((n, [w]) => n + w, 0));
  let at = 0;
  for (const [w, v] of fields) {
    if (w === 8) b.writeBigUInt64LE(BigInt(v), at);
    else if (w === 4) b.writeUInt32LE(v >>> 0, at);
    else b.writeUInt16LE(v, at);
    at += w;
  }
  return b;
}

export function zipOf(members: MemberSpec[], opts: { centralDirectory?: boolean; comment?: string } = {}): Buffer {
  const parts: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const data = Buffer.from(m.data ?? "");
    const method = m.method ?? 8;
    const body = m.body ?? (method === 8 ? deflateRawSync(data) : data);
    const name = Buffer.from(m.name, "utf8");
    const crc = m.body ? 0 : crc32(data);
    const usize = m.statedSize ?? data.length;
    const flags = 0x0800 | (m.descriptor ? 0x8 : 0);
    const version = m.zip64 ? 45 : 20;
    const big = (n: number) => (m.zip64 ? 0xffffffff : n);
    const extra = m.zip64 ? rec([2, 1], [2, 16], [8, usize], [8, body.length]) : Buffer.alloc(0);
    const [lc, ls, lu] = m.descriptor ? [0, 0, 0] : [crc, big(body.length), big(usize)];
    const first = parts.length;
    parts.push(rec([4, 0x04034b50], [2, version], [2, flags], [2, method], [4, 0], [4, lc], [4, ls], [4, lu], [2, name.length], [2, extra.length]), name, extra, body);
    if (m.descriptor) parts.push(rec([4, 0x08074b50], [4, crc], [4, big(body.length)], [4, big(usize)]));
    if (!m.unlisted) {
      centrals.push(
        rec([4, 0x02014b50], [2, version], [2, version], [2, flags], [2, method], [4, 0], [4, crc], [4, big(body.length)], [4, big(usize)],
          [2, name.length], [2, extra.length], [2, 0], [2, 0], [2, 0], [4, 0], [4, offset]),
        name, extra);
    }
    offset += parts.slice(first).reduce((n, b) => n + b.length, 0);
  }
  if (opts.centralDirectory === false) return Buffer.concat(parts);
  const cd = Buffer.concat(centrals);
  const comment = Buffer.from(opts.comment ?? "");
  const n = members.filter((m) => !m.unlisted).length;
  const end = rec([4, 0x06054b50], [2, 0], [2, 0], [2, n], [2, n], [4, cd.length], [4, offset], [2, comment.length]);
  return Buffer.concat([...parts, cd, end, comment]);
}

/**
 * A raw deflate stream of `zeros` zero bytes followed by `tail`, small whatever `zeros` is:
 * one byte-aligned, non-final block of 4 MiB zeros (sync flush) repeated, a shorter one for
 * the rest, then `tail` as the final block. About 1 KiB per MiB, so 2 GiB costs 2 MiB.
 */
export function deflatedZerosThen(zeros: number, tail: Buffer = Buffer.alloc(0)): Buffer {
  const BLOCK = 4 * 1024 * 1024;
  const flushed = (n: number) => deflateRawSync(Buffer.alloc(n), { finishFlush: constants.Z_SYNC_FLUSH, level: 9 });
  const full = flushed(BLOCK);
  const parts: Buffer[] = [];
  for (let i = 0; i < Math.floor(zeros / BLOCK); i++) parts.push(full);
  if (zeros % BLOCK) parts.push(flushed(zeros % BLOCK));
  parts.push(deflateRawSync(tail));
  return Buffer.concat(parts);
}
