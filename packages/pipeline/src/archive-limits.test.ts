import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { constants, deflateRawSync, inflateRawSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { docx, jpeg, pdf, plainText, png, zip } from "../../../test/pipeline/fixtures.ts";
import { ZipLimitCheck, type ZipLimitOptions } from "./archive-limits.ts";
import { deflatedZerosThen, gzipWithComment, incompleteHuffmanBlock, pdfWithFlateStream, storedBlockBadNlen, zipOf, type MemberSpec } from "./containers/zip.fixtures.ts";

const MiB = 1024 * 1024;
const LIMITS: ZipLimitOptions = { maxFileSize: MiB, maxTotalBytes: 4 * MiB, maxRecursion: 5 };

/** Runs the check over `data` in chunks of `chunk` bytes (default: one chunk). */
function check(data: Buffer, options: ZipLimitOptions = LIMITS, chunk = data.length || 1): string | null {
  const c = new ZipLimitCheck(options);
  for (let i = 0; i < data.length; i += chunk) c.push(data.subarray(i, i + chunk));
  return c.finish(data.length);
}

/** The same answer whatever the chunking (1-byte chunks split every structure). */
function checkAllChunkings(data: Buffer, options: ZipLimitOptions = LIMITS, chunks = [1, 7, 4093]): string | null {
  const whole = check(data, options);
  for (const chunk of chunks) expect(check(data, options, chunk), `chunks of ${chunk}`).toBe(whole);
  return whole;
}

/** A member whose header says 100 bytes while its deflate stream yields 3 MiB of zeros. */
const lying = (name = "zeros.bin"): MemberSpec => ({ name, body: deflatedZerosThen(3 * MiB, Buffer.from("payload")), statedSize: 100 });
const bomb = () => zipOf([{ name: "readme.txt", data: "hello" }, lying()]);
const TOO_BIG = /^ZIP member "zeros\.bin" unpacks to more than 1048576 bytes/;

/**
 * The same bytes with every local header's "version needed" set to 0xffff, which no zip tool
 * writes: such a header looks as a "PK\x03\x04" in random bytes does, and is evidence of nothing.
 */
function implausible(z: Buffer): Buffer {
  const out = Buffer.from(z);
  for (let i = out.indexOf("PK\x03\x04"); i >= 0; i = out.indexOf("PK\x03\x04", i + 4)) out.writeUInt16LE(0xffff, i + 4);
  return out;
}

/** Deterministic pseudo-random bytes (xorshift32). */
function randomBytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 255;
  }
  return b;
}

describe("ZipLimitCheck: clean files pass", () => {
  it("passes ordinary archives and non-archives", () => {
    const cases = [
      zip([{ name: "a.txt", data: "alpha" }, { name: "b/c.txt", data: "gamma" }]),
      zip([{ name: "notes.txt", data: "nothing to see\n".repeat(20_000) }], { deflate: true }),
      docx(),
      zipOf([{ name: "a.txt", data: "x".repeat(10_000) }, { name: "b.bin", data: Buffer.alloc(MiB) }]),
      zipOf([]),
      png(), jpeg(), pdf(), plainText(), Buffer.from("PKZIP is a name, not a header"), Buffer.from("PK"),
    ];
    for (const data of cases) expect(checkAllChunkings(data)).toBeNull();
    expect(check(Buffer.alloc(0))).toBeNull();
  });

  it("passes many small members and many small PDF streams within one chunk (never open at once)", () => {
    // Before: every member found in a chunk held an inflater (or an open slot) until the
    // chunk's feed, so 33 small deflated files in 64 KiB were "more than 32 open at once".
    const files = (method: number) => zipOf(Array.from({ length: 300 }, (_, i) => ({ name: `f${i}.txt`, data: `file ${i} hello world\n`.repeat(3), method })));
    expect(checkAllChunkings(files(8), LIMITS, [65536, 4093])).toBeNull();
    expect(checkAllChunkings(files(0), LIMITS, [65536, 4093])).toBeNull();
    const streams = Array.from({ length: 300 }, (_, i) => pdfWithFlateStream(Buffer.from(`BT (${i}) Tj ET`)));
    expect(checkAllChunkings(Buffer.concat(streams), LIMITS, [65536, 4093])).toBeNull();
  });

  it("passes a member of exactly MaxFileSize and refuses one byte more", () => {
    expect(check(zipOf([{ name: "zeros.bin", body: deflatedZerosThen(MiB) }]))).toBeNull();
    expect(check(zipOf([{ name: "zeros.bin", body: deflatedZerosThen(MiB + 1) }]))).toMatch(TOO_BIG);
    expect(check(zipOf([{ name: "zeros.bin", data: Buffer.alloc(MiB), method: 0 }]))).toBeNull();
    expect(check(zipOf([{ name: "zeros.bin", data: Buffer.alloc(MiB + 1), method: 0 }]))).toMatch(TOO_BIG);
  });

  it("never turns random bytes, with or without planted signatures, into a finding", () => {
    expect(checkAllChunkings(randomBytes(MiB, 7))).toBeNull();
    // Every 64 KiB a planted local header (half of them claiming deflate, so their random
    // "data" is inflated until it fails), central directory header or data descriptor.
    const data = randomBytes(8 * MiB, 8);
    for (let i = 0, at = 1000; at + 64 < data.length; i++, at += 64 * 1024 + 17) {
      data.writeUInt32LE([0x04034b50, 0x02014b50, 0x08074b50][i % 3]!, at);
      if (i % 6 === 0) data.writeUInt16LE(8, at + 8);
    }
    expect(checkAllChunkings(data, LIMITS, [7, 4093, 65536])).toBeNull();
    expect(check(data.subarray(0, MiB), LIMITS, 1)).toBeNull();
  });
});

describe("ZipLimitCheck: members clamd would cut short are refused wherever the ZIP sits", () => {
  it("a member whose header states a small size but inflates past MaxFileSize, at offset 0", () => {
    expect(bomb().length).toBeLessThan(10_000);
    expect(checkAllChunkings(bomb())).toMatch(TOO_BIG);
  });

  it("the same ZIP after a 4-byte prefix, appended to a PNG, appended to a PDF", () => {
    for (const prefix of [Buffer.from("abcd"), png(), pdf()]) expect(checkAllChunkings(Buffer.concat([prefix, bomb()]))).toMatch(TOO_BIG);
  });

  it("a ZIP stored inside a ZIP, and one deflated inside a ZIP", () => {
    expect(checkAllChunkings(zipOf([{ name: "inner.zip", data: bomb(), method: 0 }]))).toMatch(TOO_BIG);
    expect(checkAllChunkings(zipOf([{ name: "inner.zip", data: bomb(), method: 8 }]))).toMatch(TOO_BIG);
    expect(checkAllChunkings(zipOf([{ name: "inner.zip", data: Buffer.concat([png(), bomb()]) }]))).toMatch(TOO_BIG);
  });

  it("a stored member whose stated size is below its length is inflated too (as clamd does)", () => {
    const body = deflatedZerosThen(3 * MiB);
    expect(check(zipOf([{ name: "zeros.bin", body, method: 0, statedSize: body.length + 1 }]))).toMatch(TOO_BIG);
    expect(check(zipOf([{ name: "zeros.bin", body, method: 0 }]))).toBeNull();
  });

  it("a ZIP inside a gzip (at the start of a member, of the object, of another gzip) and inside a PDF FlateDecode stream", () => {
    // Measured on clamd 1.4.6: it unpacks each of these and extracts the ZIP inside, cut at
    // MaxFileSize without an alert ("stream: OK" for EICAR behind the zeros).
    const gz = gzipWithComment(bomb(), "A".repeat(3000));
    expect(checkAllChunkings(zipOf([{ name: "x.gz", data: gz }]))).toMatch(TOO_BIG);
    expect(checkAllChunkings(zipOf([{ name: "x.gz", data: gz, method: 0 }]))).toMatch(TOO_BIG);
    expect(checkAllChunkings(gz)).toMatch(TOO_BIG);
    expect(checkAllChunkings(gzipWithComment(gz, ""))).toMatch(TOO_BIG);
    // clamd decodes a stream after any white space, or none (measured: "", " \n", "\t\n", "\r\n\r\n").
    for (const eol of ["\n", "\r\n", "\r", "", " \n", "\t\n", "\r\n\r\n"]) expect(checkAllChunkings(pdfWithFlateStream(bomb(), eol)), JSON.stringify(eol)).toMatch(TOO_BIG);
    // A [/ASCIIHexDecode /FlateDecode] chain (clamd decodes it: EICAR in a ZIP there is found).
    expect(checkAllChunkings(pdfWithFlateStream(bomb(), "\n", "hex"))).toMatch(TOO_BIG);
    expect(checkAllChunkings(pdfWithFlateStream(zipOf([{ name: "a.txt", data: "fine" }]), "\n", "hex"))).toBeNull();
    expect(checkAllChunkings(pdfWithFlateStream(bomb(), "\n", "a85"))).toMatch(TOO_BIG);
    expect(checkAllChunkings(pdfWithFlateStream(zipOf([{ name: "a.txt", data: "fine" }]), "\n", "a85"))).toBeNull();
    // A second gzip member after the first's trailer (clamd reads it: EICAR there is found).
    const twoMembers = Buffer.concat([gzipWithComment(Buffer.from("hello"), "A".repeat(2000)), gzipWithComment(bomb(), "A".repeat(2000))]);
    expect(checkAllChunkings(zipOf([{ name: "x.gz", data: twoMembers }]))).toMatch(TOO_BIG);
    expect(checkAllChunkings(Buffer.concat([gzipWithComment(Buffer.from("hello"), ""), gzipWithComment(Buffer.from("world"), ""), twoMembers]))).toMatch(TOO_BIG);
    expect(checkAllChunkings(zipOf([{ name: "doc.pdf", data: pdfWithFlateStream(bomb()) }]))).toMatch(TOO_BIG);
    expect(checkAllChunkings(Buffer.concat([png(), pdfWithFlateStream(bomb())]))).toMatch(TOO_BIG);
    // The same containers with nothing to hide pass, and so does a gzip that does not start its level.
    expect(checkAllChunkings(zipOf([{ name: "x.gz", data: gzipWithComment(Buffer.from("hello"), "c") }]))).toBeNull();
    expect(checkAllChunkings(pdfWithFlateStream(zipOf([{ name: "a.txt", data: "fine" }])))).toBeNull();
    expect(checkAllChunkings(Buffer.concat([Buffer.from("x"), gzipWithComment(Buffer.from("hello"), "")]))).toBeNull();
    expect(checkAllChunkings(gzipWithComment(Buffer.from("a"), "A".repeat(70_000)))).toMatch(/^a gzip header longer than 65536 bytes/);
  });

  it("data descriptors: zero sizes in the local header, deflated or stored", () => {
    expect(checkAllChunkings(zipOf([{ ...lying(), descriptor: true }]))).toMatch(TOO_BIG);
    expect(checkAllChunkings(zipOf([{ name: "zeros.bin", data: Buffer.alloc(MiB + 1), method: 0, descriptor: true }]))).toMatch(TOO_BIG);
    expect(checkAllChunkings(zipOf([{ name: "a.bin", data: Buffer.alloc(MiB), method: 0, descriptor: true }, { name: "b.txt", data: "b", descriptor: true }]))).toBeNull();
  });

  it("members that each fit but together pass MaxScanSize", () => {
    const parts = [1, 2, 3].map((i) => ({ name: `part${i}.bin`, body: deflatedZerosThen(600 * 1024) }));
    expect(check(zipOf(parts), { ...LIMITS, maxTotalBytes: MiB })).toMatch(/^ZIP members unpack to more than 1048576 bytes in all/);
    expect(check(zipOf(parts), { ...LIMITS, maxTotalBytes: 2 * MiB })).toBeNull();
  });

  it("a ZIP with no central directory (clamd extracts local entries all the same)", () => {
    expect(checkAllChunkings(zipOf([lying()], { centralDirectory: false }))).toMatch(TOO_BIG);
  });
});

describe("ZipLimitCheck: what cannot be established is refused", () => {
  const nest = (levels: number, method: 0 | 8): Buffer => {
    let z = zipOf([{ name: "leaf.txt", data: "leaf" }]);
    for (let i = 1; i < levels; i++) z = zipOf([{ name: `level${i}.zip`, data: z, method }]);
    return z;
  };

  it("nesting at or past MaxRecursion, stored or deflated", () => {
    for (const method of [0, 8] as const) {
      expect(checkAllChunkings(nest(4, method))).toBeNull(); // members at levels 1-4, MaxRecursion 5
      expect(checkAllChunkings(nest(5, method))).toMatch(/is nested 5 levels deep, at or past the scanner's MaxRecursion \(5\)/);
    }
  });

  it("more compressed members open at once than the inflater cap", () => {
    expect(check(nest(3, 8), { ...LIMITS, maxInflaters: 3 })).toBeNull();
    expect(check(nest(4, 8), { ...LIMITS, maxInflaters: 3 })).toMatch(/^more than 3 compressed ZIP members open at once/);
  });

  it("more members open at once at one level than the walk follows", () => {
    // Headers no tool writes: a real one that no central directory reaches is refused by itself.
    const header = implausible(zipOf([{ name: "d", data: "", method: 0, descriptor: true }], { centralDirectory: false }).subarray(0, 31));
    expect(check(Buffer.concat(Array.from({ length: 256 }, () => header)))).toBeNull();
    expect(check(Buffer.concat(Array.from({ length: 257 }, () => header)))).toMatch(/^more than 256 ZIP members open at once at one level/);
  });

  it("ZIP64 sizes, in the local header or only in the central directory (clamd 1.4.6 extracts neither)", () => {
    expect(checkAllChunkings(zipOf([{ name: "e.txt", data: "tiny", zip64: true }]))).toMatch(/^ZIP member "e\.txt" has ZIP64 sizes/);
    expect(check(zipOf([{ name: "e.txt", data: "tiny", zip64: true, descriptor: true }]))).toMatch(/^ZIP member "e\.txt" has ZIP64 sizes/);
  });

  it("a member stating 0 compressed bytes over real data (clamd skips it as empty)", () => {
    const z = zipOf([{ name: "e.txt", data: "hidden" }]);
    z.writeUInt32LE(0, 18); // local csize
    expect(check(z)).toMatch(/^ZIP member "e\.txt" states 0 compressed bytes but 6 uncompressed/);
  });

  it("corrupt deflate data in a member whose extent or header is confirmed; with nothing confirming it, it passes", () => {
    // A non-final block of content, then a block of the reserved type 3: zlib and fflate both refuse it.
    const corrupt = Buffer.concat([deflateRawSync(Buffer.from("payload ".repeat(500)), { finishFlush: constants.Z_SYNC_FLUSH }), Buffer.from([0x07, 0, 0, 0])]);
    expect(() => inflateRawSync(corrupt)).toThrow(/invalid block type/);
    const CORRUPT = /^ZIP member "c\.bin" has corrupt deflate data/;
    expect(checkAllChunkings(zipOf([{ name: "c.bin", body: corrupt }]))).toMatch(CORRUPT);
    // No central directory: the next member's header, or the end of the object, where the stated size ends.
    expect(checkAllChunkings(zipOf([{ name: "c.bin", body: corrupt }, { name: "n.txt", data: "next" }], { centralDirectory: false }))).toMatch(CORRUPT);
    expect(check(Buffer.concat([png(), zipOf([{ name: "c.bin", body: corrupt }], { centralDirectory: false })]))).toMatch(CORRUPT);
    // Nothing where it ends, and no directory (measured: clamd "OK" for EICAR before the fault):
    // the header a zip tool writes is evidence enough; one no tool writes, as random bytes give, is not.
    const alone = Buffer.concat([zipOf([{ name: "c.bin", body: corrupt }], { centralDirectory: false }), Buffer.from("no structure here")]);
    expect(checkAllChunkings(alone)).toMatch(CORRUPT);
    expect(checkAllChunkings(Buffer.concat([png(), alone]))).toMatch(CORRUPT);
    expect(check(implausible(alone))).toBeNull();
  });

  it("deflate data zlib refuses but a lenient decoder takes: a stored block's bad NLEN, an incomplete Huffman code", () => {
    // clamd inflates with zlib and discards the member on Z_DATA_ERROR; fflate (the decoder
    // before) took both and passed the member as measured (bypass: EICAR, then the bad block).
    const payload = deflateRawSync(Buffer.from("payload ".repeat(500)), { finishFlush: constants.Z_SYNC_FLUSH });
    const badNlen = Buffer.concat([payload, storedBlockBadNlen(Buffer.from("tail"))]);
    const incomplete = Buffer.concat([payload, incompleteHuffmanBlock()]);
    expect(() => inflateRawSync(badNlen)).toThrow(/invalid stored block lengths/);
    expect(() => inflateRawSync(incomplete)).toThrow(/invalid literal\/lengths set/);
    for (const body of [badNlen, incomplete]) {
      expect(checkAllChunkings(zipOf([{ name: "c.bin", body }]))).toMatch(/^ZIP member "c\.bin" has corrupt deflate data/);
      expect(checkAllChunkings(Buffer.concat([png(), zipOf([{ name: "c.bin", body }])]))).toMatch(/^ZIP member "c\.bin" has corrupt deflate data/);
    }
  });

  it("a local header and a central directory entry that disagree on method or compressed size", () => {
    // Measured on clamd 1.4.6: a ZIP at offset 0 is extracted with the central directory's
    // method and sizes; a local header saying stored (or method 99) over a deflate bomb made
    // the walk count stored bytes (or skip it) while clamd inflated and cut it: "OK".
    const DISAGREE = /^ZIP member "m\.bin": its local header \(method (\d+), (\d+) compressed bytes\) and its central directory entry \(method 8, \d+ compressed bytes\) disagree/;
    const patched = (field: number, value: number, prefix = Buffer.alloc(0)) => {
      const z = zipOf([lying("m.bin")]);
      z.writeUInt16LE(value, field === 18 ? 18 : field);
      if (field === 18) z.writeUInt32LE(value, 18);
      return Buffer.concat([prefix, z]);
    };
    expect(checkAllChunkings(patched(8, 0))).toMatch(DISAGREE);
    expect(checkAllChunkings(patched(8, 99))).toMatch(DISAGREE);
    expect(checkAllChunkings(patched(8, 99, Buffer.from("abcd")))).toMatch(DISAGREE);
    expect(checkAllChunkings(patched(18, 10))).toMatch(DISAGREE);
    // A stored member whose local header states fewer bytes than the central directory.
    const z = zipOf([{ name: "s.bin", data: "hello, and the rest", method: 0 }]);
    z.writeUInt32LE(5, 18);
    expect(check(z)).toMatch(/^ZIP member "s\.bin": its local header \(method 0, 5 compressed bytes\) and its central directory entry \(method 0, 19 compressed bytes\) disagree/);
    // In small chunks its 5 "compressed" bytes fail to inflate first (clamd inflates such a member too): refused either way.
    expect(check(z, LIMITS, 1)).toMatch(/^ZIP member "s\.bin"/);
    // A data descriptor in either header leaves the sizes to the descriptor: agreement.
    expect(checkAllChunkings(zipOf([{ name: "d.bin", data: "streamed", descriptor: true }]))).toBeNull();
  });

  it("a data-descriptor member in a ZIP that does not start the file (clamd skips it: measured 'stream: OK')", () => {
    const dd = zipOf([{ name: "d.bin", data: "hidden payload", descriptor: true }]);
    expect(checkAllChunkings(dd)).toBeNull();
    expect(checkAllChunkings(Buffer.concat([Buffer.from("abcd"), dd]))).toMatch(/^ZIP member "d\.bin" has a data descriptor in a ZIP that does not start the file/);
    expect(check(zipOf([{ name: "inner.zip", data: Buffer.concat([png(), dd]), method: 0 }]))).toMatch(/^ZIP member "d\.bin" has a data descriptor/);
    const noDirectory = Buffer.concat([Buffer.from("abcd"), zipOf([{ name: "d.bin", data: "x", descriptor: true }], { centralDirectory: false })]);
    expect(checkAllChunkings(noDirectory)).toMatch(/^ZIP member "d\.bin" has a data descriptor/);
    expect(check(implausible(noDirectory))).toBeNull();
  });

  it("a member clamd never reaches: in a second ZIP appended to the first, or left out of the central directory", () => {
    const first = zipOf([{ name: "a.txt", data: "first archive" }]);
    const second = zipOf([{ name: "p.bin", data: "payload" }]);
    const UNREACHED = /^ZIP member "p\.bin" follows a ZIP that starts the file but no central directory entry points at it/;
    expect(checkAllChunkings(Buffer.concat([first, second]))).toMatch(UNREACHED);
    expect(checkAllChunkings(Buffer.concat([first, Buffer.from("junk"), second]))).toMatch(UNREACHED);
    const cd = (z: Buffer) => z.indexOf("PK\x01\x02");
    const unlisted = Buffer.concat([first.subarray(0, cd(first)), second.subarray(0, cd(second)), first.subarray(cd(first))]);
    unlisted.writeUInt32LE(cd(first) + cd(second), unlisted.lastIndexOf("PK\x05\x06") + 16); // a well-formed end record
    expect(checkAllChunkings(unlisted)).toMatch(UNREACHED); // its stated size ends at the central directory
    // After a prefix clamd extracts each local entry where it finds it: reached.
    expect(check(Buffer.concat([jpeg(), first, second]))).toBeNull();
  });

  it("an encrypted member in a ZIP that does not start the file (clamd flags it only at offset 0)", () => {
    const encrypted = zipOf([{ name: "x.bin", data: "secret" }]);
    for (const [at, flagsAt] of [[0, 6], [encrypted.indexOf("PK\x01\x02"), 8]]) encrypted.writeUInt16LE(encrypted.readUInt16LE(at! + flagsAt!) | 1, at! + flagsAt!);
    expect(checkAllChunkings(encrypted)).toBeNull();
    expect(checkAllChunkings(Buffer.concat([jpeg(), encrypted]))).toMatch(/^ZIP member "x\.bin" is encrypted in a ZIP that does not start the file/);
  });

  it("methods clamd decodes but this check cannot (implode, deflate64, bzip2) and methods clamd cannot decode", () => {
    for (const [method, text] of [[6, "implode"], [9, "deflate64"], [12, "bzip2"]] as const) {
      expect(check(zipOf([{ name: "m.bin", data: "whatever", method }]))).toMatch(new RegExp(`^ZIP member "m\\.bin" uses ${text} \\(method ${method}\\)`));
    }
    expect(check(zipOf([{ name: "m.bin", data: "whatever", method: 93 }]))).toMatch(/uses compression method 93, which clamd cannot decode/);
    expect(check(zipOf([{ name: "m.bin", data: "whatever", method: 12 }], { centralDirectory: false }))).toMatch(/uses bzip2/);
    const junkAfter = Buffer.concat([zipOf([{ name: "m.bin", data: "whatever", method: 12 }], { centralDirectory: false }), Buffer.from("junk")]);
    expect(check(junkAfter)).toMatch(/uses bzip2/);
    expect(check(implausible(junkAfter))).toBeNull();
    expect(check(zipOf([{ name: "m.bin", data: "whatever", method: 4242 }]))).toBeNull(); // no method: noise no tool decodes
  });

  it("an object of nothing but tiny compressed streams ends in a finding within seconds, not minutes", () => {
    // 1.2 million "stream" keywords each with an empty zlib stream: 12 MiB; each costs ~1.5 µs to follow.
    const one = Buffer.from("stream\nx\x9c\x03\x00", "latin1");
    const spam = Buffer.concat(Array.from({ length: 1_200_000 }, () => one));
    const started = Date.now();
    expect(check(spam, LIMITS, 65536)).toMatch(/^more than 1000000 ZIP members and compressed streams in one object/);
    expect(Date.now() - started, "time to the finding (ms)").toBeLessThan(30_000);
  });

  it("more doubtful members than the walk remembers", () => {
    // Each: a header no tool writes, deflate data that fails at once, nothing where it ends.
    const doubtful = (i: number) => implausible(Buffer.concat([zipOf([{ name: `c${i}.bin`, body: Buffer.from([0x07, 0, 0, 0]) }], { centralDirectory: false }), Buffer.from("junk")]));
    const many = (n: number) => Buffer.concat([Buffer.from("abcd"), ...Array.from({ length: n }, (_, i) => doubtful(i))]);
    expect(check(many(8), { ...LIMITS, maxSuspects: 8 })).toBeNull();
    expect(check(many(9), { ...LIMITS, maxSuspects: 8 })).toMatch(/^more than 8 doubtful ZIP members/);
  });

  it("gives the same answer whichever byte a two-chunk split falls on", () => {
    const cases = [bomb(), zipOf([{ name: "x.gz", data: gzipWithComment(bomb(), "A".repeat(300)) }]), pdfWithFlateStream(bomb(), "\r\n"),
      Buffer.concat([gzipWithComment(Buffer.from("first"), "c"), gzipWithComment(bomb(), "A".repeat(300))]), pdfWithFlateStream(bomb(), "\n", "hex"), pdfWithFlateStream(bomb(), "\n", "a85")];
    for (const data of cases) {
      const whole = check(data);
      expect(whole).toMatch(TOO_BIG);
      for (let at = 1; at < data.length; at++) {
        const c = new ZipLimitCheck(LIMITS);
        c.push(data.subarray(0, at));
        c.push(data.subarray(at));
        expect(c.finish(data.length), `split at ${at}`).toBe(whole);
      }
    }
  });

  it("refuses when fewer bytes were checked than the object holds", () => {
    const c = new ZipLimitCheck(LIMITS);
    c.push(png());
    expect(c.finish(png().length + 1)).toMatch(/bytes were checked for ZIP structures but the object has/);
  });

  it("a member past clamd's real 2 GiB MaxFileSize, from a 2 MiB archive", () => {
    const max = 2_147_483_645;
    const z = zipOf([{ name: "zeros.bin", body: deflatedZerosThen(max + 1, Buffer.from("payload")), statedSize: 1000 }]);
    expect(z.length).toBeLessThan(3 * MiB);
    expect(check(z, { maxFileSize: max, maxTotalBytes: 4095 * MiB, maxRecursion: 17 }, 64 * 1024)).toMatch(/^ZIP member "zeros\.bin" unpacks to more than 2147483645 bytes/);
  }, 120_000);
});

describe("ZipLimitCheck agrees with archives written by Info-ZIP's zip", () => {
  it("plain, bomb, forced ZIP64 and streamed (data descriptor + ZIP64) archives", () => {
    const dir = mkdtempSync(join(tmpdir(), "zip-limits-"));
    try {
      writeFileSync(join(dir, "a.txt"), "alpha\n");
      writeFileSync(join(dir, "zeros.bin"), Buffer.alloc(3 * MiB));
      const zipTool = (args: string[], input?: Buffer) => execFileSync("zip", ["-q", "-X", ...args], { cwd: dir, input, maxBuffer: 64 * MiB });
      zipTool(["small.zip", "a.txt"]);
      zipTool(["bomb.zip", "a.txt", "zeros.bin"]);
      zipTool(["-fz", "forced64.zip", "a.txt"]);
      // zip reading stdin: to a pipe it writes a data descriptor and real sizes in the central
      // directory (clamd reads those); to a file it goes back and writes ZIP64 all-ones sizes.
      const piped = zipTool(["-", "-"], Buffer.from("streamed\n"));
      zipTool(["streamed.zip", "-"], Buffer.from("streamed\n"));
      expect(check(readFileSync(join(dir, "small.zip")))).toBeNull();
      expect(check(readFileSync(join(dir, "bomb.zip")), LIMITS, 1)).toMatch(TOO_BIG);
      expect(check(readFileSync(join(dir, "forced64.zip")))).toMatch(/^ZIP member "a\.txt" has ZIP64 sizes/);
      expect(check(piped)).toBeNull();
      expect(check(readFileSync(join(dir, "streamed.zip")))).toMatch(/^ZIP member "-" has ZIP64 sizes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
