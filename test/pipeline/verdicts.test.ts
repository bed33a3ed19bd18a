import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { objectKey } from "@intake/domain";
import { docx, eicar, html, jpeg, mzExecutable, pdf, plainText, png, svgWithScript, zip } from "./fixtures.ts";
import { projectSignatures } from "@intake/test";
import { sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";

// The name the loaded database gives EICAR (infra/clamd's .ndb), as clamd reports it.
const EICAR_SIGNATURE = projectSignatures().nameFor(eicar()) ?? "no loaded signature matches EICAR";

/**
 * Every verdict of issue 3 section 5 through the whole stack: create through the API, PUT
 * to the presigned URL, the emitter's S3 event through SQS, ingest, inspect, scan (real
 * clamd), finalize; then the download through the API.
 */
describe.each(["sqlite", "pg"] as const)("verdicts on fauxqs with %s", (database) => {
  let s: PipelineStack;
  beforeAll(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database });
  });
  afterAll(async () => s?.close());

  it.each([
    ["a PNG", "image/png", png(16, 16)],
    ["a JPEG", "image/jpeg", jpeg()],
    ["a PDF", "application/pdf", pdf()],
    ["a ZIP", "application/zip", zip([{ name: "readme.txt", data: "hello" }, { name: "data/one.csv", data: "a,b\n1,2\n" }])],
    ["plain text", "text/plain", plainText()],
    ["a DOCX (OOXML, sniffed past the first ZIP entries)", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", docx()],
    ["a JPEG declared with the image/jpg alias", "image/jpg", jpeg()],
  ])("%s ends verified and downloads byte for byte through the API", async (_name, contentType, bytes) => {
    const { id } = await s.upload(bytes, { contentType, sha256: sha256Of(bytes) });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, reason: done.reason, detail: done.reasonDetail }).toEqual({ status: "verified", reason: null, detail: null });
    expect(done).toMatchObject({ verdict: "clean", sha256: sha256Of(bytes), storedSize: bytes.length, finalKey: objectKey("verified", s.tenant, id) });
    expect(done.scannerVersion).toMatch(/^ClamAV \d+\.\d+/);
    for (const at of [done.uploadedAt, done.inspectedAt, done.decidedAt, done.finishedAt]) expect(at).toBeInstanceOf(Date);
    // Checked in one pass (one read, no wait between inspection and scan): no `scanning`.
    expect(done.scannedAt).toBeNull();

    const got = await s.download(id);
    expect(got.status).toBe(200);
    expect(got.bytes.equals(bytes)).toBe(true);
    // Nothing left under pending/, and the verified copy carries the scan result.
    expect(await s.storage.store.head(objectKey("pending", s.tenant, id))).toBeNull();
    const head = await s.storage.store.head(objectKey("verified", s.tenant, id));
    expect(head?.metadata).toMatchObject({ sha256: sha256Of(bytes), verdict: "clean", "upload-id": id });
    expect(await s.auditActions(id)).toEqual(["upload.created", "upload.uploaded", "upload.inspecting", "upload.deciding", "upload.verified"]);
  });

  const quarantineCases: [string, string, Buffer, string, RegExp][] = [
    ["EICAR", "text/plain", eicar(), "malware", new RegExp(`^clamd found ${EICAR_SIGNATURE.replace(/\./g, "\\.")}$`)],
    ["EICAR inside a ZIP", "application/zip", zip([{ name: "eicar.com", data: eicar() }]), "malware", /EICAR/],
    ["a PNG declared application/pdf", "application/pdf", png(), "type_mismatch", /^declared application\/pdf but the content is image\/png$/],
    ["an MZ executable declared image/png", "image/png", mzExecutable(), "type_not_allowed", /application\/x-msdownload, which is not an allowed type/],
    ["HTML declared image/png", "image/png", html(), "type_mismatch", /no recognisable file signature/],
    ["an SVG with a script declared image/png", "image/png", svgWithScript(), "type_mismatch", /no recognisable file signature/],
    ["an SVG with a script declared image/svg+xml", "image/svg+xml", svgWithScript(), "invalid_content", /^SVG element <script> at line 1, column \d+ is not on the allowlist of SVG elements/],
    ["JSON that does not parse", "application/json", Buffer.from('{"a": [1, 2'), "invalid_content", /^not valid JSON/],
  ];
  it.each(quarantineCases)("%s ends quarantined (%s)", async (_name, contentType, bytes, reason, detail) => {
    const { id } = await s.upload(bytes, { contentType });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done.status).toBe("quarantined");
    expect(done.reason).toBe(reason);
    expect(done.reasonDetail).toMatch(detail);
    expect(done.finalKey).toBe(objectKey("quarantine", s.tenant, id));
    if (reason === "malware") expect(done.signature).toBe(EICAR_SIGNATURE);
    // Quarantined bytes are kept for review but never downloadable.
    expect((await s.storage.store.head(objectKey("quarantine", s.tenant, id)))?.size).toBe(bytes.length);
    expect(await s.storage.store.head(objectKey("pending", s.tenant, id))).toBeNull();
    expect(await s.storage.store.head(objectKey("verified", s.tenant, id))).toBeNull();
    expect((await s.download(id)).status).toBe(409);
    const actions = await s.auditActions(id);
    expect(actions).toContain("upload.quarantined");
    expect(actions).not.toContain("upload.verified");
  });

  it("quarantines an object whose size differs from the declaration (fauxqs does not enforce the signed length)", async () => {
    const bytes = png(8, 8);
    const { id } = await s.upload(bytes, { contentType: "image/png", declaredSize: bytes.length + 10 });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, reason: done.reason, detail: done.reasonDetail }).toEqual({
      status: "quarantined",
      reason: "size_mismatch",
      detail: `stored size ${bytes.length} differs from the declared ${bytes.length + 10} bytes`,
    });
  });

  it("quarantines bytes whose sha256 differs from the declared one", async () => {
    const bytes = pdf("checksum");
    const { id } = await s.upload(bytes, { contentType: "application/pdf", sha256: "0".repeat(64) });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done).toMatchObject({ status: "quarantined", reason: "checksum_mismatch", sha256: sha256Of(bytes) });
  });
});
