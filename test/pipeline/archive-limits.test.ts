import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { constants, deflateRawSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClamdScanner } from "@intake/scanner";
import { deflatedZerosThen, gzipWithComment, incompleteHuffmanBlock, pdfWithFlateStream, storedBlockBadNlen, zipOf, type MemberSpec } from "../../packages/pipeline/src/containers/zip.fixtures.ts";
import { docx, eicar, jpeg, pdf, png, zip } from "./fixtures.ts";
import { freePort } from "@intake/test";
import { startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * clamd extracts a ZIP member only up to MaxFileSize and answers OK about what it saw, with
 * no alert even with AlertExceedsMax (cli_unzip "trimming output size to maxfilesize"), and
 * it finds ZIPs anywhere in a file. It also answers OK for members it never extracts (ZIP64
 * sizes, corrupt deflate data, a data descriptor or encryption in a ZIP that does not start
 * the file, a member no central directory entry of the ZIP at offset 0 points at). This runs a clamd of its own with MaxFileSize 1 MiB and MaxRecursion 6, shows for
 * each shape that clamd alone calls EICAR inside it clean, and that the pipeline quarantines
 * it as unscannable, with the walk's own reason (not clamd's).
 */
const UP = fileURLToPath(new URL("../../infra/clamd/up.sh", import.meta.url));
const DOWN = fileURLToPath(new URL("../../infra/clamd/down.sh", import.meta.url));
const MiB = 1024 * 1024;
const MAX_RECURSION = 6;

/** 3 MiB of zeros, then EICAR, in one deflated member whose headers state 100 bytes: a ~3 KiB archive. */
const hiding = (name = "report.bin", extra: Partial<MemberSpec> = {}): MemberSpec => ({
  name, body: deflatedZerosThen(3 * MiB, eicar()), statedSize: 100, ...extra,
});
const bomb = () => zipOf([{ name: "readme.txt", data: "hello" }, hiding()]);
/** Four bytes that make file-type call the object a JPEG. */
const JPEG_PREFIX = Buffer.from([0xff, 0xd8, 0xff, 0xe0]);
const nested = (levels: number): Buffer => {
  let z = zipOf([{ name: "leaf.txt", data: eicar() }]);
  for (let i = 1; i < levels; i++) z = zipOf([{ name: `level${i}.zip`, data: z }]);
  return z;
};
/** `listed`'s entries, then `hidden`'s local entry, then `listed`'s central directory only (its end record's offset corrected). */
function unlisted(listed: Buffer, hidden: Buffer): Buffer {
  const cd = (z: Buffer) => z.indexOf("PK\x01\x02");
  const out = Buffer.concat([listed.subarray(0, cd(listed)), hidden.subarray(0, cd(hidden)), listed.subarray(cd(listed))]);
  out.writeUInt32LE(cd(listed) + cd(hidden), out.lastIndexOf("PK\x05\x06") + 16);
  return out;
}
/** Sets the encryption flag (bit 0) on every local and central header (the data stays plain: clamd does not look). */
function encrypted(z: Buffer): Buffer {
  for (const [sig, flagsAt] of [["PK\x03\x04", 6], ["PK\x01\x02", 8]] as const) {
    for (let i = z.indexOf(sig); i >= 0; i = z.indexOf(sig, i + 4)) z.writeUInt16LE(z.readUInt16LE(i + flagsAt) | 1, i + flagsAt);
  }
  return z;
}
const corruptAfterPayload = Buffer.concat([deflateRawSync(eicar(), { finishFlush: constants.Z_SYNC_FLUSH }), Buffer.from([0x07, 0, 0, 0])]);

const syncFlushed = (b: Buffer) => deflateRawSync(b, { finishFlush: constants.Z_SYNC_FLUSH });
/** The hiding member with its local header's method set to `method` (the central directory still says deflate). */
function localMethod(method: number): Buffer {
  const z = zipOf([hiding("m.bin")]);
  z.writeUInt16LE(method, z.indexOf("PK\x03\x04") + 8);
  return z;
}

/**
 * `listed`'s entries, a data-descriptor member (EICAR) and five junk bytes, then `listed`'s
 * central directory: nothing names the hidden member or ends where it ends. clamd reads the
 * ZIP through its directory and never extracts it; Java's ZipInputStream (local headers in
 * sequence) does: measured, it prints EICAR.
 */
function unlistedBehindJunk(): Buffer {
  const listed = zipOf([{ name: "a.txt", data: "listed" }]);
  const hidden = zipOf([{ name: "p.bin", data: eicar(), descriptor: true }], { centralDirectory: false });
  const cd = listed.indexOf("PK\x01\x02");
  const out = Buffer.concat([listed.subarray(0, cd), hidden, Buffer.from("junk!"), listed.subarray(cd)]);
  out.writeUInt32LE(cd + hidden.length + 5, out.lastIndexOf("PK\x05\x06") + 16);
  return out;
}
/** A member whose deflate data turns corrupt after EICAR, its stated size off by 100, junk after it, no directory. */
function corruptUncorroborated(): Buffer {
  const z = zipOf([{ name: "c.bin", body: corruptAfterPayload }], { centralDirectory: false });
  z.writeUInt32LE(corruptAfterPayload.length + 100, 18);
  return Buffer.concat([z, Buffer.alloc(3000, 0x41)]);
}

type Attack = { name: string; bytes: () => Buffer; contentType: string; detail: RegExp; clamdAlone: "clean" | "unscannable" };
const attacks: Attack[] = [
  { name: "a member stating a small size that inflates past MaxFileSize, ZIP at offset 0", bytes: bomb, contentType: "application/zip", detail: /"report\.bin" unpacks to more than 1048576 bytes/, clamdAlone: "clean" },
  { name: "the same ZIP after a 4-byte prefix", bytes: () => Buffer.concat([JPEG_PREFIX, bomb()]), contentType: "image/jpeg", detail: /"report\.bin" unpacks to more than/, clamdAlone: "clean" },
  { name: "the same ZIP appended to a real PNG", bytes: () => Buffer.concat([png(), bomb()]), contentType: "image/png", detail: /"report\.bin" unpacks to more than/, clamdAlone: "clean" },
  { name: "the same ZIP appended to a PDF", bytes: () => Buffer.concat([pdf(), bomb()]), contentType: "application/pdf", detail: /"report\.bin" unpacks to more than/, clamdAlone: "clean" },
  { name: "the ZIP stored inside a ZIP", bytes: () => zipOf([{ name: "inner.zip", data: bomb(), method: 0 }]), contentType: "application/zip", detail: /"report\.bin" unpacks to more than/, clamdAlone: "clean" },
  { name: "the ZIP deflated inside a ZIP", bytes: () => zipOf([{ name: "inner.zip", data: bomb(), method: 8 }]), contentType: "application/zip", detail: /"report\.bin" unpacks to more than/, clamdAlone: "clean" },
  { name: "a data-descriptor member with zero sizes in its local header", bytes: () => zipOf([hiding("report.bin", { descriptor: true })]), contentType: "application/zip", detail: /"report\.bin" unpacks to more than/, clamdAlone: "clean" },
  { name: "a data-descriptor member (EICAR, small) in a ZIP after a prefix", bytes: () => Buffer.concat([JPEG_PREFIX, zipOf([{ name: "d.bin", data: eicar(), descriptor: true }])]), contentType: "image/jpeg", detail: /"d\.bin" has a data descriptor in a ZIP that does not start the file/, clamdAlone: "clean" },
  { name: "an encrypted member in a ZIP after a prefix", bytes: () => Buffer.concat([JPEG_PREFIX, encrypted(zipOf([{ name: "x.bin", data: eicar() }]))]), contentType: "image/jpeg", detail: /"x\.bin" is encrypted in a ZIP that does not start the file/, clamdAlone: "clean" },
  { name: "a second ZIP (EICAR, small) appended to a first", bytes: () => Buffer.concat([zipOf([{ name: "a.txt", data: "first" }]), zipOf([{ name: "p.bin", data: eicar() }])]), contentType: "application/zip", detail: /"p\.bin" follows a ZIP that starts the file but no central directory entry points at it/, clamdAlone: "clean" },
  { name: "a local entry (EICAR, small) the central directory leaves out", bytes: () => unlisted(zipOf([{ name: "a.txt", data: "listed" }]), zipOf([{ name: "p.bin", data: eicar() }])), contentType: "application/zip", detail: /"p\.bin" follows a ZIP that starts the file but no central directory entry points at it/, clamdAlone: "clean" },
  { name: "a ZIP64 member (EICAR, small)", bytes: () => zipOf([{ name: "e.txt", data: eicar(), zip64: true }]), contentType: "application/zip", detail: /"e\.txt" has ZIP64 sizes/, clamdAlone: "clean" },
  { name: "a member whose deflate data turns corrupt after EICAR", bytes: () => zipOf([{ name: "c.bin", body: corruptAfterPayload }]), contentType: "application/zip", detail: /"c\.bin" has corrupt deflate data/, clamdAlone: "clean" },
  // zlib (clamd's decoder) refuses these after the payload; fflate, the walk's decoder before, took them.
  { name: "EICAR, then a stored block with a wrong NLEN", bytes: () => zipOf([{ name: "n.bin", body: Buffer.concat([syncFlushed(eicar()), storedBlockBadNlen(Buffer.from("tail"))]) }]), contentType: "application/zip", detail: /"n\.bin" has corrupt deflate data/, clamdAlone: "clean" },
  { name: "EICAR, then a block with an incomplete Huffman code", bytes: () => Buffer.concat([JPEG_PREFIX, zipOf([{ name: "h.bin", body: Buffer.concat([syncFlushed(eicar()), incompleteHuffmanBlock()]) }])]), contentType: "image/jpeg", detail: /"h\.bin" has corrupt deflate data/, clamdAlone: "clean" },
  // clamd extracts a ZIP at offset 0 with the central directory's method; the walk read the local header's.
  { name: "a local header saying stored over a deflate bomb the central directory calls deflated", bytes: () => localMethod(0), contentType: "application/zip", detail: /"m\.bin": its local header \(method 0, .*\) and its central directory entry \(method 8, .*\) disagree/, clamdAlone: "clean" },
  { name: "the same with method 99 in the local header, after a prefix (Python's zipfile extracts by the central directory)", bytes: () => Buffer.concat([JPEG_PREFIX, localMethod(99)]), contentType: "image/jpeg", detail: /"m\.bin": its local header \(method 99, .*\) and its central directory entry \(method 8, .*\) disagree/, clamdAlone: "clean" },
  // clamd unpacks a gzip that starts a member, and a PDF's FlateDecode stream, then extracts the ZIP inside.
  // The gzip's comment makes its header compress, so its bytes are not visible in the object.
  { name: "the ZIP inside a gzip inside a deflated ZIP member", bytes: () => zipOf([{ name: "x.gz", data: gzipWithComment(bomb(), "A".repeat(3000)) }]), contentType: "application/zip", detail: /"report\.bin" unpacks to more than/, clamdAlone: "clean" },
  { name: "the ZIP in the second member of a gzip inside a deflated ZIP member", bytes: () => zipOf([{ name: "x.gz", data: Buffer.concat([gzipWithComment(Buffer.from("hello"), "A".repeat(2000)), gzipWithComment(bomb(), "A".repeat(2000))]) }]), contentType: "application/zip", detail: /"report\.bin" unpacks to more than/, clamdAlone: "clean" },
  { name: "the ZIP inside a PDF stream whose keyword is followed by a space", bytes: () => pdfWithFlateStream(bomb(), " \n"), contentType: "application/pdf", detail: /"report\.bin" unpacks to more than/, clamdAlone: "clean" },
  { name: "the ZIP inside a PDF stream hex-encoded over FlateDecode", bytes: () => pdfWithFlateStream(bomb(), "\n", "hex"), contentType: "application/pdf", detail: /"report\.bin" unpacks to more than/, clamdAlone: "clean" },
  { name: "the ZIP inside a PDF stream ASCII85-encoded over FlateDecode", bytes: () => pdfWithFlateStream(bomb(), "\n", "a85"), contentType: "application/pdf", detail: /"report\.bin" unpacks to more than/, clamdAlone: "clean" },
  { name: "the ZIP inside a PDF FlateDecode stream", bytes: () => pdfWithFlateStream(bomb()), contentType: "application/pdf", detail: /"report\.bin" unpacks to more than/, clamdAlone: "clean" },
  // Nothing but the local header itself says these are real members: a header a zip tool writes is evidence enough.
  { name: "a data-descriptor member no directory entry names, junk where it ends", bytes: unlistedBehindJunk, contentType: "application/zip", detail: /"p\.bin" follows a ZIP that starts the file but no central directory entry points at it/, clamdAlone: "clean" },
  { name: "a member corrupt after EICAR with no directory and junk where its stated size ends", bytes: corruptUncorroborated, contentType: "application/zip", detail: /"c\.bin" has corrupt deflate data/, clamdAlone: "clean" },
  // clamd alerts on this one itself (Heuristics.Limits.Exceeded.MaxRecursion, whose verdict the scan
  // stage reports first), so the old code caught it too; the walk's own refusal is in the unit tests.
  { name: "ZIPs nested to MaxRecursion", bytes: () => nested(MAX_RECURSION), contentType: "application/zip", detail: /MaxRecursion/, clamdAlone: "unscannable" },
];

/** A minimal SpreadsheetML (.xlsx) package, deflated the way office suites write them. */
function xlsx(): Buffer {
  const ct = '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>';
  const rels = '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>';
  const wb = '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>';
  const wbRels = '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>';
  const sheet = '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>Intake</t></is></c></row></sheetData></worksheet>';
  return zipOf([
    { name: "[Content_Types].xml", data: ct }, { name: "_rels/.rels", data: rels }, { name: "xl/workbook.xml", data: wb },
    { name: "xl/_rels/workbook.xml.rels", data: wbRels }, { name: "xl/worksheets/sheet1.xml", data: sheet },
  ]);
}

describe("ZIP structures clamd would not scan whole", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "intake-clamd-low-"));
  const limits = { MAX_UPLOAD_BYTES: String(MiB), CLAMD_MAX_FILE_SIZE: String(MiB), CLAMD_MAX_SCAN_SIZE: String(4 * MiB), CLAMD_MAX_RECURSION: String(MAX_RECURSION) };
  const clamdEnv = { ...process.env, DATA_DIR: dataDir, CLAMD_DATABASE: "test", ...limits };
  let port: number;
  let s: PipelineStack;

  beforeAll(async () => {
    port = await freePort();
    execFileSync("bash", [UP], { env: { ...clamdEnv, CLAMD_PORT: String(port) }, stdio: ["ignore", "pipe", "pipe"] });
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", env: { CLAMD_PORT: String(port), ...limits } });
  }, 120_000);
  afterAll(async () => {
    await s?.close();
    execFileSync("bash", [DOWN], { env: clamdEnv, stdio: "ignore" });
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it("clamd finds EICAR in a small deflated ZIP (the signatures work)", async () => {
    const small = zip([{ name: "report.bin", data: Buffer.concat([Buffer.alloc(1000), eicar()]) }], { deflate: true });
    expect(await createClamdScanner({ port }).scan(Readable.from([small]))).toMatchObject({ outcome: "infected" });
  });

  for (const a of attacks) {
    it(`${a.name}: clamd alone says ${a.clamdAlone}, the pipeline quarantines it as unscannable`, async () => {
      const bytes = a.bytes();
      expect(bytes.length).toBeLessThan(64 * 1024);
      expect(await createClamdScanner({ port }).scan(Readable.from([bytes]))).toMatchObject({ outcome: a.clamdAlone });
      const { id } = await s.upload(bytes, { contentType: a.contentType });
      const done = await s.waitFor(id, ["verified", "quarantined"]);
      expect(done).toMatchObject({ status: "quarantined", reason: "unscannable" });
      expect(done.reasonDetail).toMatch(a.detail);
    });
  }

  const clean: [string, () => Buffer, string][] = [
    ["a .docx", docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"],
    ["an .xlsx", xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"],
    ["a deflated ZIP within the limits", () => zip([{ name: "notes.txt", data: "nothing to see here\n".repeat(20_000) }], { deflate: true }), "application/zip"],
    ["a ZIP inside a ZIP with nothing to hide", () => zipOf([{ name: "outer.zip", data: zipOf([{ name: "leaf.txt", data: "leaf" }]) }]), "application/zip"],
    ["a PNG with nothing after it", png, "image/png"],
    ["a PDF with a FlateDecode stream", () => pdfWithFlateStream(Buffer.from("BT /F1 12 Tf 72 712 Td (hello) Tj ET")), "application/pdf"],
    ["a ZIP of 300 small deflated files", () => zipOf(Array.from({ length: 300 }, (_, i) => ({ name: `f${i}.txt`, data: `file ${i}\n`.repeat(5) }))), "application/zip"],
    ["a ZIP holding a gzip with nothing to hide", () => zipOf([{ name: "notes.gz", data: gzipWithComment(Buffer.from("notes\n".repeat(1000)), "A".repeat(3000)) }]), "application/zip"],
    ["a JPEG", jpeg, "image/jpeg"],
  ];
  for (const [name, bytes, contentType] of clean) {
    it(`verifies ${name}`, async () => {
      const { id } = await s.upload(bytes(), { contentType });
      const done = await s.waitFor(id, ["verified", "quarantined"]);
      expect(done, done.reasonDetail ?? "").toMatchObject({ status: "verified" });
    });
  }
});
