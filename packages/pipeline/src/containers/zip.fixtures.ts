import { constants, crc32, deflateRawSync, deflateSync } from "node:zlib";

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

/**
 * A final stored block holding `content` whose NLEN is not the one's complement of LEN:
 * fflate never checks NLEN and yields `content`; zlib answers "invalid stored block lengths".
 */
export function storedBlockBadNlen(content: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header[0] = 0x01; // BFINAL 1, BTYPE 00, then padding to the byte boundary
  header.writeUInt16LE(content.length, 1);
  header.writeUInt16LE(0, 3); // NLEN should be ~LEN
  return Buffer.concat([header, content]);
}

/**
 * A final dynamic-Huffman block yielding "AA" whose literal/length code is incomplete
 * ('A' 1 bit, end-of-block 2 bits: 3/4 of the code space): fflate decodes it, zlib answers
 * "invalid literal/lengths set".
 */
export function incompleteHuffmanBlock(): Buffer {
  const out: number[] = [];
  let cur = 0, n = 0;
  const put = (v: number, bits: number) => {
    for (let i = 0; i < bits; i++) {
      cur |= ((v >> i) & 1) << n;
      if (++n === 8) { out.push(cur); cur = 0; n = 0; }
    }
  };
  // Huffman codes go most significant bit first.
  const code = (c: string) => { for (const ch of c) put(ch === "1" ? 1 : 0, 1); };
  put(1, 1); put(2, 2); // BFINAL, BTYPE 10 (dynamic)
  put(0, 5); put(0, 5); put(14, 4); // HLIT 257, HDIST 1, HCLEN 18
  // Code-length code: symbols 0, 1, 2, 18 at 2 bits each (complete): 00, 01, 10, 11.
  const lengths: Record<number, number> = { 18: 2, 0: 2, 1: 2, 2: 2 };
  for (const s of [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1]) put(lengths[s] ?? 0, 3);
  code("11"); put(65 - 11, 7); // symbols 0..64 unused
  code("01"); // 'A' (65): length 1
  code("11"); put(138 - 11, 7); // 66..203 unused
  code("11"); put(52 - 11, 7); // 204..255 unused
  code("10"); // end of block (256): length 2
  code("01"); // one distance code of length 1 (zlib allows that one)
  code("0"); code("0"); code("10"); // "AA", end of block
  if (n) out.push(cur);
  return Buffer.from(out);
}

/** A gzip member of `content` with a comment (FCOMMENT) of `comment` (node's gzipSync writes none). */
export function gzipWithComment(content: Buffer, comment: string): Buffer {
  const header = Buffer.from([0x1f, 0x8b, 0x08, 0x10, 0, 0, 0, 0, 0, 0xff]);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc32(content), 0);
  trailer.writeUInt32LE(content.length >>> 0, 4);
  return Buffer.concat([header, Buffer.from(comment, "latin1"), Buffer.from([0]), deflateRawSync(content), trailer]);
}

/** A one-page-less PDF whose only object is a FlateDecode stream of `content`, text-encoded on top if asked (in lines of 64 characters). */
export function pdfWithFlateStream(content: Buffer, eol = "\n", encoding: "binary" | "hex" | "a85" = "binary"): Buffer {
  const flate = deflateSync(content);
  const lines = (text: string) => text.replace(/.{64}/g, "$&\n");
  const data = encoding === "hex" ? Buffer.from(`${lines(flate.toString("hex"))}>`, "latin1")
    : encoding === "a85" ? Buffer.from(`${lines(ascii85(flate))}~>`, "latin1") : flate;
  const filter = { binary: "/FlateDecode", hex: "[/ASCIIHexDecode /FlateDecode]", a85: "[/ASCII85Decode /FlateDecode]" }[encoding];
  return Buffer.concat([
    Buffer.from(`%PDF-1.4\n1 0 obj\n<< /Length ${data.length} /Filter ${filter} >>\nstream${eol}`, "latin1"),
    data,
    Buffer.from("\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n", "latin1"),
  ]);
}

/** Adobe ASCII85 ("z" for a group of four zero bytes), without the "~>" end. */
function ascii85(b: Buffer): string {
  let out = "";
  for (let i = 0; i < b.length; i += 4) {
    const n = Math.min(4, b.length - i);
    const group = Buffer.alloc(4);
    b.copy(group, 0, i, i + n);
    let v = group.readUInt32BE(0);
    if (v === 0 && n === 4) {
      out += "z";
      continue;
    }
    const digits: string[] = [];
    for (let j = 0; j < 5; j++, v = Math.floor(v / 85)) digits.unshift(String.fromCharCode(33 + (v % 85)));
    out += digits.join("").slice(0, n + 1);
  }
  return out;
}
