import { gunzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { cabHeaderProbe, encryptedZipProbe, gzipOfZeros, mailAttachmentProbe, pdfStreamProbe, sevenZipHeaderProbe, swfProbe } from "./limits-probe.ts";

describe("gzipOfZeros", () => {
  // Around every boundary of the construction: the first literal, whole 258-byte matches, the literal tail.
  it.each([1, 2, 3, 257, 258, 259, 260, 516, 517, 518, 1000, 65_536, 1024 * 1024 + 1])("is a valid gzip of exactly %i zero bytes", (n) => {
    const out = gunzipSync(gzipOfZeros(n)); // checks the CRC-32 and ISIZE trailer too
    expect(out.length).toBe(n);
    expect(out.every((b) => b === 0)).toBe(true);
  });

  it("stays small: a GiB of zeros in under 7 MB", () => {
    expect(gzipOfZeros(1024 * 1024 * 1024).length).toBeLessThan(7_000_000);
  });

  it("refuses sizes that are not positive integers", () => {
    for (const n of [0, -1, 1.5, Number.NaN]) expect(() => gzipOfZeros(n)).toThrow(RangeError);
  });
});

describe("container probes", () => {
  it("are the headers the Intake.Unscannable signatures describe", () => {
    const cab = cabHeaderProbe();
    expect(cab.subarray(0, 8).toString("hex")).toBe("4d53434600000000");
    expect([cab[24], cab[25]]).toEqual([3, 1]);
    expect(sevenZipHeaderProbe().subarray(0, 7).toString("hex")).toBe("377abcaf271c00");
  });

  it("the PDF, mail and Flash probes hold EICAR only encoded (deflated, base64, zlib), never as raw bytes", () => {
    const eicarTail = Buffer.from("45494341522d5354414e444152442d414e544956495255532d544553542d46494c45", "hex");
    for (const b of [pdfStreamProbe(), mailAttachmentProbe(), swfProbe()]) expect(b.includes(eicarTail)).toBe(false);
  });

  it("the encrypted ZIP is one ZIP whose member is flagged encrypted in both headers", () => {
    const z = encryptedZipProbe();
    const eocd = z.length - 22;
    expect(z.readUInt32LE(eocd)).toBe(0x06054b50);
    const cd = z.readUInt32LE(eocd + 16);
    expect(z.readUInt32LE(cd)).toBe(0x02014b50);
    expect(cd + z.readUInt32LE(eocd + 12)).toBe(eocd);
    expect(z.readUInt16LE(6) & 1).toBe(1);
    expect(z.readUInt16LE(cd + 8) & 1).toBe(1);
    expect(z.readUInt32LE(cd + 42)).toBe(0); // the central entry points at the local header
  });
});
