import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sessionIdOf, tenantUsage, UploadSessionRepository } from "@intake/db";
import { png } from "./fixtures.ts";
import { MiB, startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * The pipeline's side of uploads whose size is learned on arrival (the Uppy routes without
 * metadata[size]), on the stand-in, which checks no POST policy and lists no parts: what the
 * storage did not refuse, the size check must. The arrival (the storage event of a form POST,
 * or complete) records the real size and settles the reservation; the verdict then holds the
 * object to its limit, to one byte, and to the size recorded on arrival.
 */
describe("size-unknown uploads through the pipeline (fauxqs, real workers, clamd)", () => {
  let s: PipelineStack;
  const json = (body: unknown): RequestInit => ({ method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });

  beforeAll(async () => {
    // Only the ingest role first: the replaced-object case needs the arrival recorded before any stage reads it.
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", workerRoles: "ingest" });
  }, 90_000);
  afterAll(async () => s?.close());

  async function session(body: Record<string, unknown>): Promise<{ base: string; id: string }> {
    const res = await fetch(`${s.apiUrl}/v1/upload-sessions`, { method: "POST", headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: JSON.stringify(body) });
    expect(res.status).toBe(201);
    const { token } = (await res.json()) as { token: string };
    return { base: `${s.apiUrl}/v1/uppy/${token}/s3`, id: sessionIdOf(token)! };
  }

  async function formPost(base: string, bytes: Uint8Array): Promise<{ id: string; url: string; fields: Record<string, string> }> {
    const res = await fetch(`${base}/params?${new URLSearchParams({ filename: "pixel.png", type: "image/png", "metadata[name]": "pixel.png" })}`);
    expect(res.status, res.statusText).toBe(200);
    const { url, fields } = (await res.json()) as { url: string; fields: Record<string, string> };
    await send(url, fields, bytes);
    return { id: fields.key!.split("/").pop()!, url, fields };
  }

  async function send(url: string, fields: Record<string, string>, bytes: Uint8Array): Promise<void> {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    form.append("file", new Blob([bytes], { type: "image/png" }), "pixel.png");
    expect((await fetch(url, { method: "POST", body: form })).status).toBeLessThan(300);
  }

  const bytesUsed = async (id: string) => (await new UploadSessionRepository(s.database.db).get(s.tenant, id))!.bytesUsed;

  it("holds an object replaced after its arrival to the size recorded then (the budget was settled to it): size_mismatch", async () => {
    const sess = await session({ maxBytes: 64 * 1024 });
    const small = png(4, 4, 1);
    const { id, url, fields } = await formPost(sess.base, small);
    await s.waitFor(id, ["uploaded"]);
    expect(await bytesUsed(sess.id)).toBe(small.length);
    // The policy is still valid: a bigger object within the limit, under the same key, after the settlement.
    await send(url, fields, png(64, 64, 2));
    await s.startWorker("inspect,scan,finalize");
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done).toMatchObject({ status: "quarantined", reason: "size_mismatch" });
    expect(done.reasonDetail).toMatch(/recorded on arrival/);
    expect(await bytesUsed(sess.id)).toBe(small.length);
  }, 60_000);

  it("verifies a clean size-unknown POST, checked in one pass by its real size", async () => {
    const sess = await session({});
    const image = png(8, 8, 3);
    const { id } = await formPost(sess.base, image);
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done).toMatchObject({ status: "verified", declaredSize: null, storedSize: image.length });
    const got = await s.download(id);
    expect(Buffer.compare(got.bytes, image)).toBe(0);
  }, 60_000);

  it("quarantines a POST over its limit that storage let through (too_large), and frees the tenant's quota at the verdict", async () => {
    const sess = await session({ maxBytes: 100 });
    const { id } = await formPost(sess.base, png(16, 16, 4));
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done).toMatchObject({ status: "quarantined", reason: "too_large" });
    expect(done.reasonDetail).toMatch(/limit of 100 bytes/);
    // The session counts its whole limit (never more); the tenant holds nothing for it any more.
    expect(await bytesUsed(sess.id)).toBe(100);
  }, 60_000);

  it("quarantines a multipart upload whose parts sum past its limit (the stand-in lists no parts), and settles the budget", async () => {
    const sess = await session({ maxBytes: 6 * MiB });
    const created = await fetch(`${sess.base}/multipart`, json({ filename: "big.png", type: "image/png", metadata: {} }));
    const { key, uploadId } = (await created.json()) as { key: string; uploadId: string };
    const parts: { PartNumber: number; ETag: string }[] = [];
    for (const n of [1, 2]) {
      const { url } = (await (await fetch(`${sess.base}/multipart/${uploadId}/${n}?${new URLSearchParams({ key })}`)).json()) as { url: string };
      const put = await fetch(url, { method: "PUT", body: Buffer.alloc(5 * MiB, n) });
      parts.push({ PartNumber: n, ETag: put.headers.get("etag")!.replace(/"/g, "") });
    }
    const done = await fetch(`${sess.base}/multipart/${uploadId}/complete?${new URLSearchParams({ key })}`, json({ parts }));
    expect(done.status).toBe(200);
    const final = await s.waitFor(uploadId, ["verified", "quarantined"]);
    expect(final).toMatchObject({ status: "quarantined", reason: "too_large", storedSize: 10 * MiB });
    expect(await bytesUsed(sess.id)).toBe(6 * MiB);
    // Every upload of this file has its verdict: the tenant's open bytes are all given back, none twice.
    expect(await tenantUsage(s.database.db, s.tenant)).toMatchObject({ pendingUploads: 0, pendingBytes: 0 });
  }, 60_000);
});
