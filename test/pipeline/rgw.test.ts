import { afterAll, describe, expect, it } from "vitest";
import { beforeAllOrFailEach, projectSignatures } from "@intake/test";
import { objectKey } from "@intake/domain";
import { docx, eicar, pdf, png } from "./fixtures.ts";
import { sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * The clean and malware cases on a real S3 implementation (Ceph RGW), driven by the
 * client's POST .../complete since RGW sends no SQS events: the ranged reads of inspect,
 * the streamed GET of scan, the server-side copies to verified/ and quarantine/ and the
 * deletes of pending objects all run against RGW's S3 API.
 */
describe.each(["sqlite", "pg"] as const)("pipeline on Ceph RGW with %s", (database) => {
  let s: PipelineStack;
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "rgw", database });
  });
  afterAll(async () => s?.close());

  it.each([
    ["a PNG", "image/png", png(32, 32)],
    ["a PDF", "application/pdf", pdf("on rgw")],
    ["a DOCX", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", docx()],
  ])("completes %s to verified and serves the same bytes", async (_n, contentType, bytes) => {
    const { id } = await s.upload(bytes, { contentType, complete: true, sha256: sha256Of(bytes) });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, reason: done.reason }).toEqual({ status: "verified", reason: null });
    expect(done.sha256).toBe(sha256Of(bytes));
    const got = await s.download(id);
    expect(got.status).toBe(200);
    expect(got.bytes.equals(bytes)).toBe(true);
    expect(got.disposition).toMatch(/^attachment/);
    expect(await s.storage.store.head(objectKey("pending", s.tenant, id))).toBeNull();
    expect((await s.storage.store.head(objectKey("verified", s.tenant, id)))?.metadata).toMatchObject({ sha256: sha256Of(bytes), verdict: "clean" });
  });

  it("completes EICAR to quarantined as malware with the signature name", async () => {
    const bytes = eicar();
    const { id } = await s.upload(bytes, { contentType: "text/plain", complete: true });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done).toMatchObject({ status: "quarantined", reason: "malware", signature: projectSignatures().nameFor(bytes), finalKey: objectKey("quarantine", s.tenant, id) });
    expect(await s.storage.store.head(objectKey("pending", s.tenant, id))).toBeNull();
    expect(await s.storage.store.head(objectKey("verified", s.tenant, id))).toBeNull();
    const q = await s.storage.store.head(objectKey("quarantine", s.tenant, id));
    expect(q?.size).toBe(bytes.length);
    expect(q?.metadata).toMatchObject({ verdict: "quarantine", reason: "malware", signature: projectSignatures().nameFor(bytes) });
    expect((await s.download(id)).status).toBe(409);
  });
});

