import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { deflateSync } from "node:zlib";
import exifr from "exifr";
import sharp, { type Sharp } from "sharp";

/**
 * Real photos for the metadata-stripping tests, made with libvips through sharp: a 64x32
 * image whose left half is red and right half blue, stored sideways with EXIF orientation 6
 * (a viewer turns it 90 degrees clockwise: 32x64, red on top), a Display P3 ICC profile, a
 * camera's EXIF (make, model, owner, body and lens serials), a GPS position and an XMP
 * packet naming a person and a place. The attacker's carriers (PNG text chunks, JPEG COM
 * and APPn segments) are spliced into the encoded files by hand.
 */
export const WIDTH = 64;
export const HEIGHT = 32;
export const SERIAL = "SN-4C1D-77120";
export const SECRETS = ["Acme", "Xenon 7", SERIAL, "LENS-99812", "Jane Photographer", "XMP-SECRET-PLACE", "48.8584"] as const;

export const XMP = `<?xpacket begin="\uFEFF" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/">
<dc:creator><rdf:Seq><rdf:li>Jane Photographer</rdf:li></rdf:Seq></dc:creator><photoshop:City>XMP-SECRET-PLACE</photoshop:City>
</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>`;

const EXIF = {
  IFD0: { Make: "Acme", Model: "Xenon 7", Artist: "Jane Photographer", Copyright: "Jane Photographer" },
  IFD2: { BodySerialNumber: SERIAL, LensSerialNumber: "LENS-99812", CameraOwnerName: "Jane Photographer" },
  IFD3: { GPSLatitudeRef: "N", GPSLatitude: "48/1 51/1 2970/100", GPSLongitudeRef: "E", GPSLongitude: "2/1 17/1 4000/100" },
};

/** Left half red, right half blue, as raw pixels. */
async function halves(): Promise<Sharp> {
  const px = Buffer.alloc(WIDTH * HEIGHT * 3);
  for (let y = 0; y < HEIGHT; y++) for (let x = 0; x < WIDTH; x++) px.set(x < WIDTH / 2 ? [220, 20, 20] : [20, 20, 220], (y * WIDTH + x) * 3);
  return sharp(px, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } });
}

export type Format = "jpeg" | "png" | "webp";

/** A photo with GPS, serials, XMP, orientation 6 and a P3 profile, in `format`. */
export async function photo(format: Format, o: { lossless?: boolean } = {}): Promise<Buffer> {
  const img = (await halves()).withIccProfile("p3").withExif(EXIF).withMetadata({ orientation: 6 }).withXmp(XMP);
  if (format === "jpeg") return img.jpeg({ quality: 95, chromaSubsampling: "4:4:4" }).toBuffer();
  if (format === "png") return img.png().toBuffer();
  return img.webp(o.lossless ? { lossless: true } : { quality: 90 }).toBuffer();
}

/** A PNG with tEXt, zTXt, iTXt and eXIf chunks before its image data. */
export async function pngWithTextChunks(): Promise<Buffer> {
  const base = await (await halves()).png().toBuffer();
  const ihdrEnd = 8 + 8 + 13 + 4;
  const chunks = [
    chunk("tEXt", Buffer.from("Author\0Jane Photographer")),
    chunk("zTXt", Buffer.concat([Buffer.from("Comment\0\0"), deflateSync(Buffer.from(`GPS 48.8584 N ${SERIAL}`))])),
    chunk("iTXt", Buffer.concat([Buffer.from("XML:com.adobe.xmp\0\0\0\0\0"), Buffer.from(XMP)])),
    chunk("eXIf", await exifBlock()),
  ];
  return Buffer.concat([base.subarray(0, ihdrEnd), ...chunks, base.subarray(ihdrEnd)]);
}

/** A JPEG with a COM segment and APP segments other than APP1: APP13 (Photoshop IRB/IPTC), APP2 (FlashPix), APP15. */
export async function jpegWithSegments(): Promise<Buffer> {
  const base = await (await halves()).jpeg({ quality: 95 }).toBuffer();
  const iptc = Buffer.concat([Buffer.from("Photoshop 3.0\x008BIM\x04\x04\x00\x00"), u32(24), Buffer.from("\x1c\x02\x50\x00\x11Jane Photographer\x1c\x02\x5a\x00\x02Px")]);
  const segments = [segment(0xfe, Buffer.from(`secret comment ${SERIAL}`)), segment(0xed, iptc), segment(0xe2, Buffer.from("FPXR\0\0XMP-SECRET-PLACE")), segment(0xef, Buffer.from("vendor data Xenon 7"))];
  return Buffer.concat([base.subarray(0, 2), ...segments, base.subarray(2)]);
}

/** What exifr finds in a file: undefined for each block it does not. */
export async function metadataOf(bytes: Buffer) {
  const all = await exifr.parse(bytes, { tiff: true, exif: true, gps: true, interop: true, ifd1: true, xmp: true, iptc: true, icc: false, jfif: false, ihdr: false, makerNote: true, userComment: true, mergeOutput: false }).catch(() => undefined);
  return { all: all as Record<string, unknown> | undefined, gps: await exifr.gps(bytes).catch(() => undefined) };
}

/** The first of SECRETS that appears anywhere in the bytes (latin1 or UTF-16), or null. */
export function leakedSecret(bytes: Buffer): string | null {
  const text = bytes.toString("latin1");
  for (const s of SECRETS) if (text.includes(s) || bytes.includes(Buffer.from(s, "utf16le"))) return s;
  return null;
}

/** The RGB of the pixel at (x, y). */
export async function pixel(bytes: Buffer, x: number, y: number): Promise<[number, number, number]> {
  const { data, info } = await sharp(bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const at = (y * info.width + x) * info.channels;
  return [data[at]!, data[at + 1]!, data[at + 2]!];
}

export async function exifBlock(): Promise<Buffer> {
  const withExif = await (await halves()).withExif(EXIF).jpeg().toBuffer();
  const meta = await sharp(withExif).metadata();
  return meta.exif!.subarray(meta.exif!.indexOf("MM") >= 0 && meta.exif!.indexOf("MM") < 10 ? meta.exif!.indexOf("MM") : meta.exif!.indexOf("II"));
}

/**
 * An RGB PNG whose decoded pixels carry `payload` verbatim (row 1, among random pixels), but
 * whose file does not: each row is stored Sub-filtered (differences to the pixel on the
 * left), which is what clamd sees. Re-encoded without a row filter, random rows are stored
 * as they decode, payload included.
 */
export function pngHidingInPixels(payload: Buffer, width = 256, height = 64): Buffer {
  const rows = Array.from({ length: height }, (_, y) => {
    const row = randomBytes(width * 3);
    if (y === 1) payload.copy(row, 0);
    return row;
  });
  const sub = rows.map((row) => {
    const f = Buffer.alloc(row.length + 1);
    f[0] = 1; // filter type Sub
    for (let i = 0; i < row.length; i++) f[i + 1] = (row[i]! - (i >= 3 ? row[i - 3]! : 0)) & 0xff;
    return f;
  });
  const ihdr = Buffer.concat([u32(width), u32(height), Buffer.from([8, 2, 0, 0, 0])]);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(Buffer.concat(sub))), chunk("IEND", Buffer.alloc(0))]);
}

function chunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  return Buffer.concat([u32(data.length), body, u32(crc32(body))]);
}

function segment(marker: number, data: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(data.length + 2);
  return Buffer.concat([Buffer.from([0xff, marker]), len, data]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}
