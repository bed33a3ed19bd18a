import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClamdScanner, type MalwareScanner, type ScanReport } from "@intake/scanner";
import { startSmallClamd, type SmallClamd } from "../support/small-clamd.ts";
import { arj, bz2, cab, gz, mail, payload, pdfFlate, pdfRaw, sevenZip, swf, tar, uuencode, xz } from "./container-fixtures.ts";
import { png, zip } from "./fixtures.ts";
import type { PipelineStack } from "./support/stack.ts";
import { startStackOnSmallClamd, SURVEY_LIMITS } from "./support/small-clamd-stack.ts";

/**
 * Every container format clamd unpacks that can be built here, pushed past a small clamd's
 * limits (MaxFileSize 1 MiB, MaxScanSize 4 MiB, MaxFiles 8, MaxRecursion 4) with EICAR at
 * the end: what clamd answers on its own (the `plain` daemon: test signatures only), and
 * that with the project's databases and the pipeline none of it is ever verified. The
 * figures are the ones infra/clamd/README.md records; a ClamAV upgrade that changes one
 * fails here and must be measured again.
 */
const KiB = 1024;
const MiB = 1024 * KiB;
const OVER = 3 * MiB; // zeros before EICAR: past MaxFileSize once inflated
const WITHIN = 1000; // well inside every limit: proves clamd unpacks the format at all

type Answer = "alert" | "silent" | "infected";
interface Case {
  name: string;
  build: (data: Buffer) => Buffer;
  /** What clamd alone answers for the payload past MaxFileSize, and for the small one. */
  over: Answer;
  within: Answer;
  /** clamd never names it, even with the project's databases: the pipeline's own check does. */
  pipelineOnly?: boolean;
}

const pdfHead = Buffer.from("%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n", "latin1");
const afterPdf = (b: Buffer) => Buffer.concat([pdfHead, b]);
const setByte = (b: Buffer, offset: number, value: number) => {
  const out = Buffer.from(b);
  out[offset] = value;
  return out;
};

const one = (data: Buffer) => ({ "report.bin": data });
const CASES: Case[] = [
  { name: "gzip", build: gz, over: "alert", within: "infected" },
  { name: "bzip2", build: bz2, over: "alert", within: "infected" },
  { name: "xz", build: xz, over: "alert", within: "infected" },
  { name: "tar.gz", build: (d) => gz(tar(one(d))), over: "alert", within: "infected" },
  { name: "tar.bz2", build: (d) => bz2(tar(one(d))), over: "alert", within: "infected" },
  { name: "tar.xz", build: (d) => xz(tar(one(d))), over: "alert", within: "infected" },
  { name: "7z (LZMA)", build: (d) => sevenZip(one(d)), over: "alert", within: "infected" },
  // clamd has no Deflate or BZip2 coder for 7z: the member is never scanned, whatever its
  // size (past MaxFileSize the stated size alone makes it alert).
  { name: "7z (Deflate)", build: (d) => sevenZip(one(d), "Deflate"), over: "alert", within: "silent" },
  { name: "7z (BZip2)", build: (d) => sevenZip(one(d), "BZip2"), over: "alert", within: "silent" },
  // clamd's CAB extractor stops at MaxFileSize and says nothing.
  { name: "CAB (MSZIP)", build: (d) => cab(one(d)), over: "silent", within: "infected" },
  { name: "ARJ", build: (d) => arj(one(d)), over: "alert", within: "infected" },
  { name: "PDF FlateDecode stream", build: pdfFlate, over: "alert", within: "infected" },
  { name: "SWF (CWS, zlib)", build: swf, over: "alert", within: "infected" },
  { name: "mail, base64 gzip attachment", build: (d) => mail(gz(d)), over: "alert", within: "infected" },
  { name: "mail, base64 CAB attachment", build: (d) => mail(cab(one(d))), over: "silent", within: "infected" },
  { name: "uuencoded CAB", build: (d) => uuencode(cab(one(d))), over: "silent", within: "infected" },
  { name: "CAB inside gzip", build: (d) => gz(cab(one(d))), over: "silent", within: "infected" },
  { name: "CAB in a stored ZIP member", build: (d) => zip([{ name: "a.cab", data: cab(one(d)) }]), over: "silent", within: "infected" },
  { name: "CAB in a PDF stream", build: (d) => pdfRaw(cab(one(d))), over: "silent", within: "infected" },
  { name: "CAB appended to a PNG", build: (d) => Buffer.concat([png(), cab(one(d))]), over: "silent", within: "infected" },
  // clamd opens a cabinet whatever its version and later reserved fields say...
  { name: "CAB version 1.0, reserved2 = 1", build: (d) => setByte(setByte(cab(one(d)), 24, 0), 12, 1), over: "silent", within: "infected" },
  // ...but not one whose first reserved field is set, which cabextract and gcab extract.
  { name: "CAB with reserved1 = 1", build: (d) => setByte(cab(one(d)), 4, 1), over: "silent", within: "silent" }, // named by Intake.Unscannable.OddCAB (and EmbeddedCabCheck)
  { name: "7z major version 1", build: (d) => setByte(sevenZip(one(d)), 6, 1), over: "silent", within: "silent" },
  // Compressed streams are opened only where a file starts with them.
  { name: "bzip2 appended to a PDF", build: (d) => afterPdf(bz2(d)), over: "silent", within: "silent" },
  { name: "xz appended to a PDF", build: (d) => afterPdf(xz(d)), over: "silent", within: "silent" },
  { name: "bzip2 after a line of text", build: (d) => Buffer.concat([Buffer.from("hello\n"), bz2(d)]), over: "silent", within: "silent" },
  { name: "gzip appended to a PDF", build: (d) => afterPdf(gz(d)), over: "silent", within: "silent", pipelineOnly: true },
  { name: "gzip appended to a PNG", build: (d) => Buffer.concat([png(), gz(d)]), over: "silent", within: "silent", pipelineOnly: true },
];

/** Six members of 900 KiB (each within MaxFileSize, 5.4 MiB in all: past MaxScanSize), EICAR in the last. */
const scanSizeMembers = (): Record<string, Buffer> => {
  const m: Record<string, Buffer> = {};
  for (let i = 1; i <= 6; i++) m[`m${i}.bin`] = i === 6 ? payload(900 * KiB) : Buffer.alloc(900 * KiB);
  return m;
};
/** Ten small members (past MaxFiles 8), EICAR in the last. */
const manyMembers = (): Record<string, Buffer> => {
  const m: Record<string, Buffer> = {};
  for (let i = 1; i <= 10; i++) m[`f${String(i).padStart(2, "0")}.txt`] = i === 10 ? payload(10) : Buffer.from(`file ${i}\n`);
  return m;
};
const nestedGzip = (depth: number): Buffer => {
  let b = payload(10);
  for (let i = 0; i < depth; i++) b = gz(b);
  return b;
};

function classify(r: ScanReport): Answer | "other" {
  if (r.outcome === "clean") return "silent";
  if (r.outcome === "infected") return r.signature.startsWith("Intake.Test.EICAR") ? "infected" : "other";
  return r.kind === "scan_limit_exceeded" ? "alert" : "other";
}
const scan = (s: MalwareScanner, b: Buffer) => s.scan(Readable.from([b]));

describe("containers clamd unpacks, past its limits", () => {
  let clamd: SmallClamd;
  let plain: MalwareScanner;
  let project: MalwareScanner;

  beforeAll(async () => {
    clamd = await startSmallClamd(SURVEY_LIMITS, { plain: true });
    plain = createClamdScanner({ port: clamd.plainPort!, maxStreamBytes: MiB });
    project = createClamdScanner({ port: clamd.port, maxStreamBytes: MiB });
  }, 180_000);
  afterAll(() => clamd?.close());

  describe.each(CASES)("$name", (c) => {
    it(`clamd alone: past MaxFileSize ${c.over}, within the limits ${c.within}`, async () => {
      const over = c.build(payload(OVER));
      expect(over.length).toBeLessThan(MiB); // within StreamMaxLength: clamd really reads it
      expect(classify(await scan(plain, over))).toBe(c.over);
      expect(classify(await scan(plain, c.build(payload(WITHIN))))).toBe(c.within);
    });

    it(c.pipelineOnly ? "with the project's databases: still OK (the pipeline's EmbeddedGzipCheck/EmbeddedCabCheck refuses it)" : "with the project's databases: never clean", async () => {
      if (c.pipelineOnly) {
        expect(await scan(project, c.build(payload(OVER)))).toMatchObject({ outcome: "clean" });
        return;
      }
      const r = await scan(project, c.build(payload(OVER)));
      expect(r.outcome, JSON.stringify(r)).toBe("unscannable");
      if (c.over === "silent" || c.within === "silent") expect(r).toMatchObject({ kind: "unsupported_container" });
      const small = await scan(project, c.build(payload(WITHIN)));
      expect(small.outcome, JSON.stringify(small)).not.toBe("clean");
    });
  });

  it("MaxScanSize: 7z and ARJ alert, CAB is silent (the project's signature names it)", async () => {
    const m = scanSizeMembers();
    expect(await scan(plain, sevenZip(m))).toMatchObject({ outcome: "unscannable", signature: "Heuristics.Limits.Exceeded.MaxScanSize" });
    expect(await scan(plain, arj(m))).toMatchObject({ outcome: "unscannable", signature: "Heuristics.Limits.Exceeded.MaxScanSize" });
    expect(await scan(plain, cab(m))).toMatchObject({ outcome: "clean" });
    expect(await scan(project, cab(m))).toMatchObject({ outcome: "unscannable", kind: "unsupported_container" });
    // A tar of gzip members, each within MaxFileSize, 5.4 MiB once all inflated.
    const tarOfGz = tar(Object.fromEntries(Object.entries(m).map(([k, v]) => [`${k}.gz`, gz(v)])));
    // (12 files in all, so MaxFiles 8 may be the limit clamd names first.)
    expect(await scan(plain, tarOfGz)).toMatchObject({ outcome: "unscannable", signature: expect.stringMatching(/^Heuristics\.Limits\.Exceeded\.Max(ScanSize|Files)$/) });
  });

  it("MaxFiles: 7z, CAB and ARJ alert; a tar's members past it are still scanned (EICAR in the tenth is found)", async () => {
    const m = manyMembers();
    expect(await scan(plain, sevenZip(m))).toMatchObject({ outcome: "unscannable", signature: "Heuristics.Limits.Exceeded.MaxFiles" });
    expect(await scan(plain, cab(m))).toMatchObject({ outcome: "unscannable", signature: "Heuristics.Limits.Exceeded.MaxFiles" });
    expect(await scan(plain, arj(m))).toMatchObject({ outcome: "unscannable", signature: "Heuristics.Limits.Exceeded.MaxFiles" });
    expect(classify(await scan(plain, gz(tar(m))))).toBe("infected");
  });

  it("MaxRecursion: gzip nested deeper than MaxRecursion alerts; within it EICAR is found", async () => {
    expect(await scan(plain, nestedGzip(6))).toMatchObject({ outcome: "unscannable", signature: "Heuristics.Limits.Exceeded.MaxRecursion" });
    expect(classify(await scan(plain, nestedGzip(2)))).toBe("infected");
  });
});

describe("the pipeline never verifies what clamd cut short", () => {
  let stack: Awaited<ReturnType<typeof startStackOnSmallClamd>>;
  let s: PipelineStack;
  beforeAll(async () => {
    stack = await startStackOnSmallClamd();
    s = stack.s;
  }, 180_000);
  afterAll(async () => stack?.close());

  const over = () => payload(OVER);
  it.each([
    { name: "a mail (text/plain) with a CAB attachment past MaxFileSize", type: "text/plain", build: () => mail(cab(one(over()))) },
    { name: "a mail (text/plain) with a CAB past MaxScanSize", type: "text/plain", build: () => mail(cab(scanSizeMembers())) },
    { name: "a uuencoded CAB (text/plain)", type: "text/plain", build: () => uuencode(cab(one(over()))) },
    { name: "a ZIP holding a CAB", type: "application/zip", build: () => zip([{ name: "a.cab", data: cab(one(over())) }]) },
    { name: "a ZIP holding a deflated ZIP holding a CAB", type: "application/zip", build: () => zip([{ name: "in.zip", data: zip([{ name: "a.cab", data: cab(one(over())) }]) }], { deflate: true }) },
    { name: "a ZIP holding a Deflate-coded 7z (never scanned by clamd)", type: "application/zip", build: () => zip([{ name: "a.7z", data: sevenZip(one(payload(WITHIN)), "Deflate") }]) },
    { name: "a PDF with a CAB in a stream", type: "application/pdf", build: () => pdfRaw(cab(one(over()))) },
    { name: "a PDF with a BZip2-coded 7z in a stream", type: "application/pdf", build: () => pdfRaw(sevenZip(one(payload(WITHIN)), "BZip2")) },
    { name: "a PDF with a gzip appended (clamd never opens it)", type: "application/pdf", build: () => afterPdf(gz(payload(WITHIN))) },
    { name: "a PDF with a CAB clamd does not recognise (reserved1 = 1) appended", type: "application/pdf", build: () => afterPdf(setByte(cab(one(payload(WITHIN))), 4, 1)) },
    { name: "a ZIP holding a CAB clamd does not recognise", type: "application/zip", build: () => zip([{ name: "a.cab", data: setByte(cab(one(over())), 4, 1) }]) },
    { name: "a PDF with a gzip bomb appended", type: "application/pdf", build: () => afterPdf(gz(over())) },
    { name: "a PDF with a bzip2 appended", type: "application/pdf", build: () => afterPdf(bz2(payload(WITHIN))) },
    { name: "a PDF with an xz appended", type: "application/pdf", build: () => afterPdf(xz(payload(WITHIN))) },
  ])("$name: quarantined as unscannable", async ({ type, build }) => {
    const { id } = await s.upload(build(), { contentType: type });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done).toMatchObject({ status: "quarantined", reason: "unscannable" });
  });

  it("a PNG with a CAB appended: quarantined", async () => {
    const { id } = await s.upload(Buffer.concat([png(), cab(one(over()))]), { contentType: "image/png" });
    expect((await s.waitFor(id, ["verified", "quarantined"])).status).toBe("quarantined");
  });

  it("still verifies a mail, a ZIP and a PDF with harmless compressed content within the limits", async () => {
    const notes = Buffer.from("nothing to see here\n".repeat(2000));
    for (const [type, bytes] of [
      ["text/plain", mail(gz(notes))],
      // Deflated: a gzip stored in a ZIP member would be refused (it sits past offset 0).
      ["application/zip", zip([{ name: "notes.txt.gz", data: gz(notes) }], { deflate: true })],
      ["application/pdf", pdfFlate(notes)],
    ] as const) {
      const { id } = await s.upload(bytes, { contentType: type });
      expect((await s.waitFor(id, ["verified", "quarantined"])).status, type).toBe("verified");
    }
  });
});
