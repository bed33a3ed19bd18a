import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { crc32, deflateRawSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { docx, jpeg, plainText, png, zip } from "../../../test/pipeline/fixtures.ts";
import { ZipLimitCheck, type ZipLimitOptions } from "./archive-limits.ts";

const MiB = 1024 * 1024;
const LIMITS: ZipLimitOptions = { maxMemberBytes: MiB, maxTotalBytes: 4 * MiB };

/** Runs the check over `data` fed in chunks of `chunk` bytes (default: one chunk). */
function check(data: Buffer, options: ZipLimitOptions = LIMITS, chunk = data.length || 1): string | null {
  const c = new ZipLimitCheck(options);
  for (let i = 0; i < data.length; i += chunk) c.push(data.subarray(i, i + chunk));
  return c.finish(data.length);
}

/** Little-endian record from [width, value] pairs (width 2, 4 or 8). */
function rec(...fields: [2 | 4 | 8, number][]): Buffer {
  const b = Buffer.alloc(fields.reduce((n, [w]) => n + w, 0));
  let at = 0;
  for (const [w, v] of fields) {
    if (w === 8) b.writeBigUInt64LE(BigInt(v), at);
    else if (w === 4) b.writeUInt32LE(v, at);
    else b.writeUInt16LE(v, at);
    at += w;
  }
  return b;
}

type Member = { name: string; data?: Buffer | string; store?: boolean; claimSize?: number };

/**
 * A ZIP built by hand: members deflated unless `store`; `claimSize` writes a ZIP64 extra
 * field declaring that uncompressed size (the data is not really that large); `zip64End`
 * closes with ZIP64 end record + locator and all-ones fields in the classic end record.
 */
function buildZip(members: Member[], opts: { comment?: Buffer | string; zip64End?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const m of members) {
    const raw = Buffer.from(m.data ?? "");
    const body = m.store ? raw : deflateRawSync(raw);
    const name = Buffer.from(m.name, "utf8");
    const big = m.claimSize !== undefined;
    const usize = m.claimSize ?? raw.length;
    const method = m.store ? 0 : 8;
    const localExtra = big ? Buffer.concat([rec([2, 1], [2, 16]), rec([8, usize], [8, body.length])]) : Buffer.alloc(0);
    const centralExtra = big ? rec([2, 1], [2, 8], [8, usize]) : Buffer.alloc(0);
    parts.push(
      rec([4, 0x04034b50], [2, big ? 45 : 20], [2, 0x0800], [2, method], [4, 0], [4, crc32(raw)],
        [4, big ? 0xffffffff : body.length], [4, big ? 0xffffffff : usize], [2, name.length], [2, localExtra.length]),
      name, localExtra, body,
    );
    centrals.push(
      rec([4, 0x02014b50], [2, 20], [2, big ? 45 : 20], [2, 0x0800], [2, method], [4, 0], [4, crc32(raw)],
        [4, body.length], [4, big ? 0xffffffff : usize], [2, name.length], [2, centralExtra.length], [2, 0], [2, 0], [2, 0], [4, 0], [4, offset]),
      name, centralExtra,
    );
    offset += 30 + name.length + localExtra.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const n = members.length;
  const comment = Buffer.from(opts.comment ?? "");
  const tail: Buffer[] = [];
  if (opts.zip64End) {
    const recordAt = offset + cd.length;
    tail.push(rec([4, 0x06064b50], [8, 44], [2, 45], [2, 45], [4, 0], [4, 0], [8, n], [8, n], [8, cd.length], [8, offset]));
    tail.push(rec([4, 0x07064b50], [4, 0], [8, recordAt], [4, 1]));
    tail.push(rec([4, 0x06054b50], [2, 0], [2, 0], [2, 0xffff], [2, 0xffff], [4, 0xffffffff], [4, 0xffffffff], [2, comment.length]));
  } else {
    tail.push(rec([4, 0x06054b50], [2, 0], [2, 0], [2, n], [2, n], [4, cd.length], [4, offset], [2, comment.length]));
  }
  return Buffer.concat([...parts, cd, ...tail, comment]);
}

const zeros = (n: number) => Buffer.alloc(n);
const bomb = () => buildZip([{ name: "readme.txt", data: "hello" }, { name: "zeros.bin", data: zeros(3 * MiB) }]);

describe("ZipLimitCheck", () => {
  it("passes small normal ZIPs (stored, deflated, a .docx)", () => {
    expect(check(zip([{ name: "a.txt", data: "alpha" }, { name: "b/c.txt", data: "gamma" }]))).toBeNull();
    expect(check(docx())).toBeNull();
    expect(check(buildZip([{ name: "a.txt", data: "x".repeat(10_000) }, { name: "b.bin", data: zeros(MiB) }]))).toBeNull();
    expect(check(buildZip([]))).toBeNull(); // empty archive: starts with PK\x05\x06
  });

  it("refuses a small archive whose deflated member unpacks above maxMemberBytes, naming it", () => {
    const z = bomb();
    expect(z.length).toBeLessThan(10_000);
    expect(check(z)).toBe(`ZIP member "zeros.bin" unpacks to ${3 * MiB} bytes, above the ${MiB}-byte limit the scanner reads whole`);
  });

  it("refuses members that are each allowed but together exceed maxTotalBytes", () => {
    const z = buildZip([1, 2, 3].map((i) => ({ name: `part${i}.bin`, data: zeros(600 * 1024) })));
    expect(check(z, { maxMemberBytes: MiB, maxTotalBytes: MiB })).toBe(`ZIP members unpack to ${3 * 600 * 1024} bytes in all, above the ${MiB}-byte limit`);
    expect(check(z, { maxMemberBytes: MiB, maxTotalBytes: 2 * MiB })).toBeNull();
  });

  it("ignores data that is not a ZIP", () => {
    for (const data of [png(), jpeg(), plainText(), Buffer.from("PKZIP is a name, not a header"), Buffer.from("PK"), Buffer.alloc(0)]) expect(check(data)).toBeNull();
  });

  it("refuses a PK\\x03\\x04 file without a readable end record", () => {
    const z = bomb();
    expect(check(z.subarray(0, z.length - 30))).toMatch(/^not a readable ZIP archive/);
    expect(check(z.subarray(0, z.length >> 1))).toMatch(/^not a readable ZIP archive/);
    expect(check(Buffer.from("PK\x03\x04"))).toMatch(/^not a readable ZIP archive/);
    expect(check(Buffer.concat([z, Buffer.from("trailing")]))).toMatch(/^not a readable ZIP archive/);
  });

  it("finds the end record behind the longest comment", () => {
    const comment = Buffer.alloc(65535, "c");
    expect(check(buildZip([{ name: "a.txt", data: "alpha" }], { comment }))).toBeNull();
    expect(check(buildZip([{ name: "zeros.bin", data: zeros(3 * MiB) }], { comment }))).toMatch(/"zeros\.bin" unpacks to 3145728 bytes/);
  });

  it("fails closed when the central directory does not fit in tailBytes", () => {
    const many = buildZip(Array.from({ length: 300 }, (_, i) => ({ name: `file-${i}.txt`, data: `n${i}` })));
    expect(check(many, { ...LIMITS, tailBytes: 4096 })).toMatch(/^central directory too large to verify/);
    expect(check(many, { ...LIMITS, tailBytes: 64 * 1024 })).toBeNull();
  });

  it("reads ZIP64 sizes from the extra field and ZIP64 end records", () => {
    const huge = 5 * 1024 * MiB; // beyond 32 bits; only declared, not stored
    expect(check(buildZip([{ name: "a.txt", data: "alpha" }, { name: "big.iso", data: "x", claimSize: huge }]))).toBe(
      `ZIP member "big.iso" unpacks to ${huge} bytes, above the ${MiB}-byte limit the scanner reads whole`);
    expect(check(buildZip([{ name: "small.txt", data: "x", claimSize: 1 }], { zip64End: true }))).toBeNull();
    expect(check(buildZip([{ name: "big.iso", data: "x", claimSize: huge }], { zip64End: true }))).toMatch(/"big\.iso" unpacks to 5368709120 bytes/);
  });

  it("refuses local headers that the central directory hides but clamd would still extract", () => {
    const full = buildZip([{ name: "zeros.bin", data: zeros(3 * MiB) }]);
    const hidden = full.subarray(0, full.indexOf(Buffer.from("PK\x01\x02"))); // local header + data only
    expect(check(buildZip([{ name: "a.txt", data: "alpha" }], { comment: hidden }))).toMatch(/local file header inside or after the central directory/);
    const emptyCd = Buffer.concat([hidden, rec([4, 0x06054b50], [2, 0], [2, 0], [2, 0], [2, 0], [4, 0], [4, 0], [2, 0])]);
    expect(check(emptyCd)).toMatch(/^not a readable ZIP archive/);
  });

  it("refuses when fewer bytes were checked than the object holds", () => {
    const z = bomb();
    const c = new ZipLimitCheck(LIMITS);
    c.push(z);
    expect(c.finish(z.length + 1)).toMatch(/^not a readable ZIP archive/);
  });

  it("gives the same answer whatever the chunking, also when the kept tail wraps", () => {
    const many = buildZip(Array.from({ length: 40 }, (_, i) => ({ name: `f${i}.bin`, data: zeros(20_000 + i) })));
    const cases: [Buffer, ZipLimitOptions][] = [
      [bomb(), LIMITS],
      [many, { ...LIMITS, tailBytes: 3000 }],
      [many, { ...LIMITS, tailBytes: 1000 }],
      [many, { maxMemberBytes: 20_030, maxTotalBytes: 4 * MiB, tailBytes: 3000 }],
      [buildZip([{ name: "a.txt", data: "alpha" }], { comment: "note" }), LIMITS],
      [png(), LIMITS],
    ];
    for (const [data, options] of cases) {
      const whole = check(data, options);
      for (const chunk of [1, 3, 997, 4096]) expect(check(data, options, chunk)).toBe(whole);
    }
    expect(cases.map(([d, o]) => check(d, o) === null)).toEqual([false, true, false, false, true, true]);
  });

  const hasZip = (() => {
    try {
      execFileSync("zip", ["-v"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!hasZip)("agrees with archives written by Info-ZIP's zip, including streamed ZIP64 ones", () => {
    const dir = mkdtempSync(join(tmpdir(), "zip-limits-"));
    try {
      writeFileSync(join(dir, "a.txt"), "alpha\n");
      writeFileSync(join(dir, "zeros.bin"), zeros(3 * MiB));
      const zipOf = (args: string[], input?: Buffer) => execFileSync("zip", ["-q", "-X", ...args], { cwd: dir, input, maxBuffer: 64 * MiB });
      zipOf(["small.zip", "a.txt"]);
      zipOf(["bomb.zip", "a.txt", "zeros.bin"]);
      zipOf(["-fz", "forced64.zip", "a.txt"]);
      const streamed = zipOf(["-", "-"], zeros(3 * MiB)); // stdin member "-", data descriptor, ZIP64 records
      expect(check(readFileSync(join(dir, "small.zip")))).toBeNull();
      expect(check(readFileSync(join(dir, "forced64.zip")))).toBeNull();
      expect(check(readFileSync(join(dir, "bomb.zip")), LIMITS, 1)).toMatch(/^ZIP member "zeros\.bin" unpacks to 3145728 bytes/);
      expect(check(streamed)).toMatch(/^ZIP member "-" unpacks to 3145728 bytes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
