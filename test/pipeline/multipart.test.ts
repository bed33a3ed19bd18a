import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { objectKey } from "@intake/domain";
import { zip } from "./fixtures.ts";
import { MiB, sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * A large upload's whole path: the API's multipart plan, signed part URLs, parts PUT in
 * parallel, the client's complete (CompleteMultipartUpload, which on fauxqs also makes the
 * local emitter send ObjectCreated:CompleteMultipartUpload, an ETag ending in "-3"), then
 * inspect, scan and a promoting copy of a multipart object.
 */
describe("a multipart upload through the pipeline", () => {
  let s: PipelineStack;
  beforeAll(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "pg", env: { MULTIPART_THRESHOLD_BYTES: String(5 * MiB), PART_SIZE_BYTES: String(5 * MiB) } });
  });
  afterAll(async () => s?.close());

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(s.apiUrl + path, { method, headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  it("ends verified with the bytes intact", async () => {
    const bytes = zip([{ name: "data.bin", data: randomBytes(12 * MiB) }]);
    const created = await call("POST", "/v1/uploads", { filename: "data.zip", contentType: "application/zip", size: bytes.length, sha256: sha256Of(bytes) });
    expect(created.body).toMatchObject({ kind: "multipart", partCount: 3 });
    const id = created.body.uploadId as string;
    const signed = await call("POST", `/v1/uploads/${id}/parts`, { partNumbers: [1, 2, 3] });
    const parts = await Promise.all(
      signed.body.parts.map(async (p: { partNumber: number; url: string; headers: Record<string, string> }) => {
        const body = bytes.subarray((p.partNumber - 1) * 5 * MiB, Math.min(p.partNumber * 5 * MiB, bytes.length));
        const put = await fetch(p.url, { method: "PUT", headers: p.headers, body });
        expect(put.status).toBe(200);
        return { partNumber: p.partNumber, etag: put.headers.get("etag")! };
      }),
    );
    expect((await call("POST", `/v1/uploads/${id}/complete`, { parts })).status).toBe(200);

    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done).toMatchObject({ status: "verified", sha256: sha256Of(bytes), storedSize: bytes.length });
    const got = await s.download(id);
    expect(got.status).toBe(200);
    expect(got.bytes.equals(bytes)).toBe(true);
    expect(await s.storage.store.head(objectKey("pending", s.tenant, id))).toBeNull();
  });
});
