/**
 * Size limits for ZIP archives, checked on the pass that streams the object to clamd.
 *
 * clamd (1.4) inflates a ZIP member only up to MaxFileSize: it logs "cli_unzip: trimming
 * output size to maxfilesize", scans the truncated prefix and answers OK. A small ZIP holding
 * more than MaxFileSize of zeros followed by malware therefore scans clean. clamd gives no
 * sign of the cut, so the archive's own central directory is read here and an archive with a
 * member (or a total) above what clamd reads whole is refused as unscannable: fail closed.
 *
 * Only the tail of the object is kept (the central directory sits at the end), in a fixed
 * ring buffer: memory stays flat whatever the chunk sizes, and no upstream buffer is pinned.
 * Anything that cannot be verified from that tail is a problem, never a pass.
 */
export type ZipLimitOptions = { maxMemberBytes: number; maxTotalBytes: number; tailBytes?: number };

/** A central directory of ~1 MiB (some 10,000 typical entries), plus the largest EOCD comment and the ZIP64 records. */
export const DEFAULT_TAIL_BYTES = 1024 * 1024 + 22 + 65535 + 20 + 56;

const LOCAL = 0x04034b50, EOCD = 0x06054b50, LOCATOR = 0x07064b50, EOCD64 = 0x06064b50, CENTRAL = 0x02014b50;
const U16 = 0xffff, U32 = 0xffffffff;
const UNREADABLE = "not a readable ZIP archive";

export class ZipLimitCheck {
  private readonly maxMemberBytes: number;
  private readonly maxTotalBytes: number;
  private readonly tailBytes: number;
  private state: "sniffing" | "zip" | "other" = "sniffing";
  private readonly head: number[] = [];
  private ring: Buffer | null = null;
  private seen = 0;

  constructor(options: ZipLimitOptions) {
    this.maxMemberBytes = options.maxMemberBytes;
    this.maxTotalBytes = options.maxTotalBytes;
    this.tailBytes = Math.max(22, Math.floor(options.tailBytes ?? DEFAULT_TAIL_BYTES));
  }

  push(chunk: Buffer): void {
    if (this.state === "other") return;
    if (this.state === "sniffing") {
      for (let i = 0; i < chunk.length && this.head.length < 4; i++) this.head.push(chunk[i]!);
      if (this.head.length === 4) {
        const sig = Buffer.from(this.head).readUInt32LE(0);
        this.state = sig === LOCAL || sig === EOCD ? "zip" : "other";
        if (this.state === "other") {
          this.ring = null;
          return;
        }
      }
    }
    this.remember(chunk);
  }

  /** null when the archive is within the limits (or is not a ZIP), else why it cannot be passed. */
  finish(totalBytes: number): string | null {
    if (this.state !== "zip") return null;
    if (this.seen !== totalBytes) return `${UNREADABLE}: ${this.seen} bytes were checked but the object has ${totalBytes}`;
    return this.inspect(this.tail(), totalBytes - Math.min(this.seen, this.tailBytes), totalBytes);
  }

  private remember(chunk: Buffer): void {
    const cap = this.tailBytes;
    this.ring ??= Buffer.allocUnsafe(cap);
    const src = chunk.length > cap ? chunk.subarray(chunk.length - cap) : chunk;
    const at = (this.seen + chunk.length - src.length) % cap;
    const first = Math.min(src.length, cap - at);
    src.copy(this.ring, at, 0, first);
    src.copy(this.ring, 0, first);
    this.seen += chunk.length;
  }

  private tail(): Buffer {
    const ring = this.ring ?? Buffer.alloc(0);
    if (this.seen <= this.tailBytes) return ring.subarray(0, this.seen);
    const at = this.seen % this.tailBytes;
    return Buffer.concat([ring.subarray(at), ring.subarray(0, at)]);
  }

  /** `tail` holds bytes [base, totalBytes) of the object; ZIP offsets are absolute. */
  private inspect(tail: Buffer, base: number, totalBytes: number): string | null {
    const u16 = (at: number) => tail.readUInt16LE(at);
    const u32 = (at: number) => tail.readUInt32LE(at);
    const u64 = (at: number) => Number(tail.readBigUInt64LE(at));

    // The last signature, as clamd picks it; anything that then fails to add up is refused.
    const e = tail.length < 22 ? -1 : tail.lastIndexOf(sig(EOCD), tail.length - 22);
    if (e < 0) return `${UNREADABLE}: no end of central directory record`;
    if (e + 22 + u16(e + 20) !== tail.length) return `${UNREADABLE}: the end of central directory record does not end the file`;
    let disk = u16(e + 4), cdDisk = u16(e + 6), onDisk = u16(e + 8), entries = u16(e + 10);
    let cdSize = u32(e + 12), cdOffset = u32(e + 16), cdEnd = base + e;
    const loc = e - 20;
    if (loc >= 0 && u32(loc) === LOCATOR) {
      if (u32(loc + 4) !== 0 || u32(loc + 16) !== 1) return "multi-disk ZIP archives are not supported";
      const r = u64(loc + 8) - base;
      if (r < 0 || r + 56 > loc || u32(r) !== EOCD64 || r + 12 + u64(r + 4) !== loc) return `${UNREADABLE}: bad ZIP64 end of central directory record`;
      [disk, cdDisk, onDisk, entries] = [u32(r + 16), u32(r + 20), u64(r + 24), u64(r + 32)];
      [cdSize, cdOffset, cdEnd] = [u64(r + 40), u64(r + 48), base + r];
    } else if ([onDisk, entries].includes(U16) || [cdSize, cdOffset].includes(U32)) {
      return `${UNREADABLE}: ZIP64 sizes without a ZIP64 locator`;
    }
    if (disk !== 0 || cdDisk !== 0) return "multi-disk ZIP archives are not supported";
    if (onDisk !== entries) return `${UNREADABLE}: the end record counts ${onDisk} entries on this disk but ${entries} in all`;
    if (cdOffset + cdSize !== cdEnd) return `${UNREADABLE}: the central directory does not end where the end record begins`;
    // clamd also extracts local entries the central directory does not list; none may hide before it.
    if (entries === 0 && cdOffset !== 0) return `${UNREADABLE}: local entries but an empty central directory`;
    if (cdOffset < base) return `central directory too large to verify (${cdSize} bytes; only the last ${tail.length} bytes are kept)`;
    // clamd also searches the bytes after the last listed entry for local headers (e.g. in a comment).
    if (tail.indexOf(sig(LOCAL), cdOffset - base) >= 0) return `${UNREADABLE}: a local file header inside or after the central directory`;

    const end = cdEnd - base;
    let p = cdOffset - base, count = 0, total = 0, lowest = Infinity;
    while (p < end) {
      count++;
      if (p + 46 > end || u32(p) !== CENTRAL) return `${UNREADABLE}: central directory entry ${count} is malformed`;
      const nameEnd = p + 46 + u16(p + 28), extraEnd = nameEnd + u16(p + 30), next = extraEnd + u16(p + 32);
      if (next > end) return `${UNREADABLE}: central directory entry ${count} is truncated`;
      const name = display(tail.toString("utf8", p + 46, nameEnd));
      // ZIP64 extra (0x0001): 8-byte values for exactly the fields set to all ones, in this order.
      const fields = [u32(p + 24), u32(p + 20), u32(p + 42)];
      if (fields.includes(U32)) {
        const extra = zip64Extra(tail.subarray(nameEnd, extraEnd));
        let q = 0;
        for (let i = 0; i < 3; i++) {
          if (fields[i] !== U32) continue;
          if (!extra || q + 8 > extra.length) return `${UNREADABLE}: ${name} has no ZIP64 sizes`;
          fields[i] = Number(extra.readBigUInt64LE(q));
          q += 8;
        }
      }
      const [size, , offset] = fields as [number, number, number];
      if (size > this.maxMemberBytes) return `ZIP member ${name} unpacks to ${size} bytes, above the ${this.maxMemberBytes}-byte limit the scanner reads whole`;
      if (offset >= cdOffset) return `${UNREADABLE}: ${name} starts inside the central directory`;
      total += size;
      lowest = Math.min(lowest, offset);
      p = next;
    }
    if (count !== entries) return `${UNREADABLE}: the end record counts ${entries} entries but the central directory holds ${count}`;
    if (count > 0 && lowest !== 0) return `${UNREADABLE}: data before the first listed entry`;
    if (total > this.maxTotalBytes) return `ZIP members unpack to ${total} bytes in all, above the ${this.maxTotalBytes}-byte limit`;
    return null;
  }
}

function sig(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function zip64Extra(extra: Buffer): Buffer | null {
  for (let p = 0; p + 4 <= extra.length; p += 4 + extra.readUInt16LE(p + 2)) {
    const end = p + 4 + extra.readUInt16LE(p + 2);
    if (end > extra.length) return null;
    if (extra.readUInt16LE(p) === 0x0001) return extra.subarray(p + 4, end);
  }
  return null;
}

function display(name: string): string {
  return JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name);
}
