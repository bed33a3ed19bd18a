import { randomBytes } from "node:crypto";
import { deflateRawSync, gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { EmbeddedGzipCheck, looksLikeGzip } from "./embedded-gzip.ts";

const MiB = 1024 * 1024;
const marker = Buffer.from("INTAKE-TEST-PAYLOAD ".repeat(4));

function run(bytes: Buffer, chunkSize = 64 * 1024): string | null {
  const c = new EmbeddedGzipCheck();
  for (let at = 0; at < bytes.length; at += chunkSize) c.push(bytes.subarray(at, at + chunkSize));
  return c.finish();
}

describe("EmbeddedGzipCheck", () => {
  const prefix = Buffer.from("%PDF-1.4\n1 0 obj\n<< >>\nendobj\ntrailer\n<< >>\n%%EOF\n");
  const small = gzipSync(marker);
  const bomb = gzipSync(Buffer.concat([Buffer.alloc(8 * MiB), marker]), { level: 9 });
  const noisy = gzipSync(randomBytes(200 * 1024)); // incompressible: longer than the window

  it.each([
    ["a tiny complete member", small],
    ["a bomb of zeros", bomb],
    ["an incompressible member longer than the window", noisy],
  ])("finds %s after a prefix", (_, gz) => {
    expect(run(Buffer.concat([prefix, gz]))).toMatch(new RegExp(`gzip stream at offset ${prefix.length}`));
  });

  it("finds it whatever the chunking: header split across chunks, one byte at a time", () => {
    const bytes = Buffer.concat([prefix, small, Buffer.from("trailing text")]);
    for (const size of [1, 2, 3, prefix.length + 1, prefix.length + 2, prefix.length + 3]) expect(run(bytes, size), `chunks of ${size}`).not.toBeNull();
  });

  it("finds one deep in a large object, and one near the very end", () => {
    expect(run(Buffer.concat([randomBytes(3 * MiB), small]))).not.toBeNull();
    expect(run(Buffer.concat([Buffer.alloc(MiB), small]), 1000)).not.toBeNull();
  });

  it("finds gzip members with the optional header fields an attacker may set (FNAME, FCOMMENT, FEXTRA, FHCRC, odd OS/XFL)", () => {
    const g = Buffer.from(small);
    // FNAME: insert a zero-terminated name after the 10-byte header.
    const named = Buffer.concat([g.subarray(0, 10), Buffer.from("x.bin\0"), g.subarray(10)]);
    named[3] = 0x08;
    named[8] = 0x7f; // XFL
    named[9] = 0x42; // OS
    expect(run(Buffer.concat([prefix, named]))).not.toBeNull();
    const extra = Buffer.concat([g.subarray(0, 10), Buffer.from([4, 0, 1, 2, 3, 4]), g.subarray(10)]);
    extra[3] = 0x04;
    expect(run(Buffer.concat([prefix, extra]))).not.toBeNull();
  });

  it("leaves a gzip at offset 0 to clamd (which unpacks it and alerts on its limits)", () => {
    expect(run(bomb)).toBeNull();
  });

  it("dismisses chance matches: random data holding gzip-like headers", () => {
    const noise = randomBytes(4 * MiB);
    for (let i = 1; i < 200; i++) {
      const at = i * 20_000;
      noise[at] = 0x1f;
      noise[at + 1] = 0x8b;
      noise[at + 2] = 0x08;
      noise[at + 3] = 0;
    }
    expect(run(noise)).toBeNull();
  });

  it("looksLikeGzip: members cut by the window or by the object's end count; a header before garbage does not", () => {
    expect(looksLikeGzip(bomb.subarray(0, 200), false)).toBe(true);
    expect(looksLikeGzip(small.subarray(0, 15), true)).toBe(true);
    expect(looksLikeGzip(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]), true)).toBe(false);
    // A small complete member with a wrong CRC-32 is what chance produces (0.5% of random windows).
    const bad = Buffer.from(small);
    bad[bad.length - 8]! ^= 1;
    expect(looksLikeGzip(bad, true)).toBe(false);
  });

  it("finds a payload behind 200 KiB of empty stored deflate blocks, a member with a wrong CRC, and one cut short at the object's end", () => {
    const empty = Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]); // BFINAL 0, stored, LEN 0, NLEN 0xffff
    const raw = deflateRawSync(Buffer.concat([Buffer.alloc(8 * 1024), marker]));
    const padded = Buffer.concat([small.subarray(0, 10), ...Array.from({ length: 40_000 }, () => empty), raw]);
    expect(run(Buffer.concat([prefix, padded]))).not.toBeNull();
    const badCrc = Buffer.from(gzipSync(Buffer.concat([Buffer.alloc(8 * 1024), marker])));
    badCrc[badCrc.length - 8]! ^= 1;
    expect(run(Buffer.concat([prefix, badCrc]))).not.toBeNull();
    expect(run(Buffer.concat([prefix, small.subarray(0, small.length - 8)]))).not.toBeNull();
  });

  it("refuses a header too long for the window (a 200 KiB FNAME pushing the data out of sight)", () => {
    const g = Buffer.from(small);
    const named = Buffer.concat([g.subarray(0, 10), Buffer.alloc(200 * 1024, 0x41), Buffer.from([0]), g.subarray(10)]);
    named[3] = 0x08;
    expect(run(Buffer.concat([prefix, named]))).not.toBeNull();
  });

  it("refuses an object crafted to hold too many headers open at once", () => {
    const header = Buffer.from([0x1f, 0x8b, 0x08, 0x00]);
    const crowd = Buffer.concat([prefix, ...Array.from({ length: 100 }, () => header)]);
    expect(run(crowd)).toMatch(/more than 64 gzip headers/);
  });
});
