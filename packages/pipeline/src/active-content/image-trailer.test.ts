import { zlibSync } from "fflate";
import { crc32 } from "node:zlib";
import { describe, expect, it } from "vitest";
import { IMAGE_FORMATS, ImageTrailerCheck, type ImageFormat } from "./image-trailer.ts";

/** Real images, built here: valid structure, each sniffed as its type by file-type. */
const u32be = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);

function png(extraChunks: Buffer[] = []): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
    return Buffer.concat([u32be(data.length), td, u32be(crc32(td))]);
  };
  const ihdr = Buffer.concat([u32be(2), u32be(2), Buffer.from([8, 0, 0, 0, 0])]); // 2x2 grey
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    ...extraChunks,
    // Filter byte 0 then two grey pixels per row; the IEND bytes inside a tEXt chunk must not end the walk.
    chunk("tEXt", Buffer.from("Comment\0fake IEND\xaeB`\x82 inside", "latin1")),
    chunk("IDAT", Buffer.from(zlibSync(Buffer.from([0, 10, 200, 0, 200, 10])))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const seg = (marker: number, body: Buffer) => Buffer.concat([Buffer.from([0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 255]), body]);

/** A baseline 8x8 grey JPEG (one block: DC category 0, then end of block). */
function jpeg(app: Buffer[] = []): Buffer {
  const counts = (first: number) => [first, ...new Array<number>(15).fill(0)];
  return Buffer.concat([
    Buffer.from([0xff, 0xd8]),
    seg(0xe0, Buffer.from([0x4a, 0x46, 0x49, 0x46, 0x00, 1, 1, 0, 0, 1, 0, 1, 0, 0])),
    ...app,
    seg(0xdb, Buffer.from([0x00, ...new Array<number>(64).fill(1)])),
    seg(0xc0, Buffer.from([8, 0, 8, 0, 8, 1, 1, 0x11, 0])),
    seg(0xc4, Buffer.from([0x00, ...counts(1), 0x00])),
    seg(0xc4, Buffer.from([0x10, ...counts(1), 0x00])),
    seg(0xda, Buffer.from([1, 1, 0x00, 0, 63, 0])),
    Buffer.from([0x3f, 0xff, 0x00, 0x3f]), // entropy data with a stuffed 0xFF00
    Buffer.from([0xff, 0xd9]),
  ]);
}

/** APP1 EXIF with IFD1 pointing at a thumbnail JPEG (which has its own SOI and EOI). */
function exifWithThumbnail(): Buffer {
  const thumb = jpeg();
  const tiff = Buffer.alloc(8 + 6 + 2 + 2 * 12 + 4);
  tiff.write("II*\0", 0, "latin1");
  tiff.writeUInt32LE(8, 4); // IFD0 at 8
  tiff.writeUInt16LE(0, 8); // IFD0: no entries
  tiff.writeUInt32LE(14, 10); // next IFD (IFD1) at 14
  tiff.writeUInt16LE(2, 14);
  const entry = (at: number, tag: number, value: number) => {
    tiff.writeUInt16LE(tag, at);
    tiff.writeUInt16LE(4, at + 2); // LONG
    tiff.writeUInt32LE(1, at + 4);
    tiff.writeUInt32LE(value, at + 8);
  };
  entry(16, 0x0201, tiff.length); // JPEGInterchangeFormat
  entry(28, 0x0202, thumb.length); // JPEGInterchangeFormatLength
  tiff.writeUInt32LE(0, 40);
  return seg(0xe1, Buffer.concat([Buffer.from("Exif\0\0", "latin1"), tiff, thumb]));
}

function gif(): Buffer {
  return Buffer.concat([
    Buffer.from("GIF89a", "latin1"),
    Buffer.from([1, 0, 1, 0, 0x80, 0, 0]), // 1x1, global colour table of 2 entries
    Buffer.from([0, 0, 0, 255, 255, 255]),
    Buffer.from([0x21, 0xf9, 4, 0, 0, 0, 0, 0]), // graphic control extension
    Buffer.from([0x21, 0xfe, 3, 0x3b, 0x3b, 0x3b, 0]), // comment holding trailer bytes
    Buffer.from([0x2c, 0, 0, 0, 0, 1, 0, 1, 0, 0]), // image descriptor
    Buffer.from([2, 2, 0x44, 0x01, 0]), // LZW min code size 2, one sub-block
    Buffer.from([0x3b]),
  ]);
}

/** A 1x1 lossless WebP (VP8L). */
const webp = () => Buffer.from("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==", "base64");

function run(format: ImageFormat, bytes: Buffer, chunk = 0) {
  const c = new ImageTrailerCheck(format);
  if (chunk === 0) c.push(bytes);
  else for (let i = 0; i < bytes.length; i += chunk) c.push(bytes.subarray(i, i + chunk));
  return c.finish();
}

function verdict(format: ImageFormat, bytes: Buffer) {
  const whole = run(format, bytes);
  expect(run(format, bytes, 1)).toEqual(whole);
  for (const size of [3, 64]) expect(run(format, bytes, size), `chunks of ${size}`).toEqual(whole);
  return whole;
}

const ZIP_TAIL = Buffer.from("PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", "latin1");

describe.each([
  ["png", png()],
  ["jpeg", jpeg()],
  ["jpeg", jpeg([exifWithThumbnail()])],
  ["gif", gif()],
  ["webp", webp()],
] as [ImageFormat, Buffer][])("%s image trailer", (format, image) => {
  it("passes the clean image", () => {
    expect(verdict(format, image)).toBeNull();
  });

  it("refuses one byte appended, and an appended ZIP", () => {
    expect(verdict(format, Buffer.concat([image, Buffer.from([0])]))).toMatchObject({ reason: "trailing_data", detail: expect.stringMatching(/^1 bytes after the /) });
    expect(verdict(format, Buffer.concat([image, ZIP_TAIL]))).toMatchObject({ reason: "trailing_data", detail: expect.stringMatching(/^22 bytes after/) });
  });

  it("refuses the image cut one byte short of its end as invalid", () => {
    expect(verdict(format, image.subarray(0, -1))).toMatchObject({ reason: "invalid_content" });
  });
});

describe("image structure", () => {
  it("walks a JPEG's APP1 thumbnail by its length: its EOI ends nothing", () => {
    const withThumb = jpeg([exifWithThumbnail()]);
    const thumbEnd = withThumb.indexOf(Buffer.from([0xff, 0xd9]));
    expect(thumbEnd).toBeLessThan(withThumb.length - 2); // an EOI sits inside APP1
    expect(verdict("jpeg", withThumb)).toBeNull();
    // A naive "first EOI" search would call everything after the thumbnail trailing data;
    // data after the real EOI is still found.
    expect(verdict("jpeg", Buffer.concat([withThumb, Buffer.from("<?php ?>")]))).toMatchObject({ reason: "trailing_data", detail: "8 bytes after the JPEG's end of image (EOI)" });
  });

  it("does not stop at IEND bytes inside a PNG chunk, nor at 0x3B inside GIF sub-blocks", () => {
    expect(png().includes("IEND\xaeB`\x82 inside", 0, "latin1")).toBe(true);
    expect(verdict("png", png())).toBeNull();
    expect(verdict("gif", gif())).toBeNull();
  });

  it("refuses a PNG whose IEND chunk carries data (hidden as well as after it)", () => {
    const clean = png();
    const iend = clean.length - 12;
    const payload = Buffer.from("PK\x05\x06 hidden");
    const stuffed = Buffer.concat([clean.subarray(0, iend), u32be(payload.length), Buffer.from("IEND"), payload, u32be(0)]);
    expect(verdict("png", stuffed)).toMatchObject({ reason: "invalid_content", detail: `not a valid PNG: IEND chunk carrying ${payload.length} bytes` });
  });

  it("refuses data past a WebP's RIFF size, and a RIFF size past the file", () => {
    const grown = webp();
    grown.writeUInt32LE(grown.readUInt32LE(4) + 2, 4);
    expect(verdict("webp", grown)).toMatchObject({ reason: "invalid_content" });
    expect(verdict("webp", Buffer.concat([webp(), Buffer.from("RIFF")]))).toMatchObject({ reason: "trailing_data", detail: "4 bytes after the WebP's RIFF size" });
  });

  it("refuses broken structure as invalid_content", () => {
    expect(verdict("png", Buffer.from("not a png at all"))).toMatchObject({ reason: "invalid_content", detail: "not a valid PNG: bad signature" });
    expect(verdict("jpeg", Buffer.concat([jpeg().subarray(0, 20), Buffer.from([0x00, 0x11])]))).toMatchObject({ reason: "invalid_content" });
    expect(verdict("gif", Buffer.concat([gif().subarray(0, -1), Buffer.from([0x99])]))).toMatchObject({ reason: "invalid_content", detail: "not a valid GIF: unknown block 0x99" });
  });
  it("walks an animated PNG too: file-type names it image/apng (acTL before IDAT), so an operator allowing that type still gets the trailer check", async () => {
    const { fileTypeFromBuffer } = await import("file-type");
    const acTL = Buffer.concat([u32be(8), Buffer.from("acTL", "latin1"), u32be(1), u32be(0)]);
    const apng = png([Buffer.concat([acTL, u32be(crc32(acTL.subarray(4)))])]);
    expect((await fileTypeFromBuffer(apng))?.mime).toBe("image/apng");
    expect(IMAGE_FORMATS["image/apng"]).toBe("png");
    const check = new ImageTrailerCheck(IMAGE_FORMATS["image/apng"]!);
    check.push(Buffer.concat([apng, Buffer.from("PK\x03\x04")]));
    expect(check.finish()).toEqual({ reason: "trailing_data", detail: "4 bytes after the PNG's IEND chunk" });
  });
});
