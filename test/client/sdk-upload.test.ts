import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { IntakeApiError, IntakeClient, IntakeStorageError, IntakeUploadInterruptedError, type UploadProgress } from "@intake/client/node";
import { beforeAllOrFailEach, projectSignatures } from "@intake/test";
import { eicar, png, zip } from "../pipeline/fixtures.ts";
import { MiB, sha256Of, startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";

/**
 * The SDK against the whole stack on Ceph RGW (the S3 that checks signatures and
 * Content-MD5): real API, real workers, clamd. The multipart threshold and part size are at
 * S3's 5 MiB minimum so multipart cases stay small. Faults are injected by wrapping fetch
 * on the way to storage only: the API and storage themselves are real.
 */
const isPartPut = (input: Parameters<typeof fetch>[0], init: RequestInit | undefined, n: number) =>
  init?.method === "PUT" && new URL(String(input)).searchParams.get("partNumber") === String(n);

function progressChecks(events: UploadProgress[], total: number): void {
  expect(events.length).toBeGreaterThan(1);
  for (let i = 1; i < events.length; i++) expect(events[i]!.bytesSent).toBeGreaterThanOrEqual(events[i - 1]!.bytesSent);
  expect(events.every((e) => e.totalBytes === total && e.rate >= 0)).toBe(true);
  expect(events.at(-1)!.bytesSent).toBe(total);
}

describe("the TypeScript SDK on the real stack (RGW)", () => {
  let s: PipelineStack;
  let client: IntakeClient;
  const make = (fetchImpl?: typeof fetch) => new IntakeClient({ baseUrl: s.apiUrl, apiKey: s.apiKey, multipartThresholdBytes: 5 * MiB, ...(fetchImpl ? { fetch: fetchImpl } : {}) });

  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "rgw", database: "sqlite", env: { MULTIPART_THRESHOLD_BYTES: String(5 * MiB), PART_SIZE_BYTES: String(5 * MiB) } });
    client = make();
  });
  afterAll(async () => s?.close());

  it("uploads a Buffer with one PUT carrying its MD5 and sha256, and it ends verified with identical bytes", async () => {
    const bytes = png(64, 64, 7);
    const events: UploadProgress[] = [];
    const out = await client.upload(bytes, { filename: "pic.png", contentType: "image/png", metadata: { owner: "sdk" }, onProgress: (p) => events.push(p) });
    expect(out).toMatchObject({ kind: "single", sha256: sha256Of(bytes), upload: { status: "uploaded", md5: expect.any(String), sha256: sha256Of(bytes), metadata: { owner: "sdk" } } });
    const verdict = await client.waitForVerdict(out.upload.id, { timeoutMs: 30_000 });
    expect(verdict.status).toBe("verified");
    expect(verdict.reason).toBeUndefined();
    expect((await s.download(out.upload.id)).bytes.equals(bytes)).toBe(true);
    progressChecks(events, bytes.length);
  });

  it("uploads a Blob and a sized Node stream", async () => {
    const a = png(16, 16, 1);
    const fromBlob = await client.upload(new Blob([a]), { filename: "a.png", contentType: "image/png" });
    const b = png(16, 16, 2);
    const fromStream = await client.upload(Readable.from([b.subarray(0, 50), b.subarray(50)]), { size: b.length, filename: "b.png", contentType: "image/png" });
    for (const [o, bytes] of [[fromBlob, a], [fromStream, b]] as const) {
      expect((await client.waitForVerdict(o.upload.id, { timeoutMs: 30_000 })).status).toBe("verified");
      expect((await s.download(o.upload.id)).bytes.equals(bytes)).toBe(true);
    }
  });

  it("uploads 12 MiB as three parts in parallel, retrying part 2 whose first PUT breaks, and it ends verified", async () => {
    const bytes = zip([{ name: "data.bin", data: randomBytes(11 * MiB) }]);
    let broken = 0;
    const partHeaders: Record<string, string>[] = [];
    const flaky: typeof fetch = async (input, init) => {
      if (init?.method === "PUT") partHeaders.push(Object.fromEntries(Object.entries(init.headers as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v])));
      if (isPartPut(input, init, 2) && broken++ === 0) throw new TypeError("fetch failed (injected)");
      return fetch(input, init);
    };
    const events: UploadProgress[] = [];
    const out = await make(flaky).upload(bytes, { filename: "data.zip", contentType: "application/zip", concurrency: 3, retryBaseMs: 50, onProgress: (p) => events.push(p) });
    expect(broken).toBe(2);
    // Each part's MD5 and SHA-256 were signed into its URL and sent.
    expect(partHeaders).toHaveLength(4);
    for (const h of partHeaders) expect(Object.keys(h)).toEqual(expect.arrayContaining(["content-md5", "x-amz-checksum-sha256"]));
    expect(out).toMatchObject({ kind: "multipart", skippedParts: 0, upload: { status: "uploaded", multipart: { partCount: 3 } } });
    expect((await client.waitForVerdict(out.upload.id, { timeoutMs: 30_000 })).status).toBe("verified");
    expect((await s.download(out.upload.id)).bytes.equals(bytes)).toBe(true);
    progressChecks(events, bytes.length);
  });

  it("resumes an interrupted multipart upload: parts storage holds are skipped, the rest sent, bytes identical", async () => {
    const bytes = zip([{ name: "big.bin", data: randomBytes(14 * MiB) }]);
    // The network goes away for parts 2 and 3; no retries: the upload is interrupted.
    const cut: typeof fetch = async (input, init) => {
      if (isPartPut(input, init, 2) || isPartPut(input, init, 3)) throw new TypeError("fetch failed (injected)");
      return fetch(input, init);
    };
    const err = await make(cut).upload(bytes, { filename: "big.zip", contentType: "application/zip", concurrency: 1, partRetries: 0 }).catch((e) => e);
    expect(err).toBeInstanceOf(IntakeUploadInterruptedError);
    const id = (err as IntakeUploadInterruptedError).uploadId;
    expect((await client.get(id)).status).toBe("pending");
    expect((await client.listParts(id)).map((p) => p.partNumber)).toEqual([1]);

    const sentParts: string[] = [];
    const watching: typeof fetch = async (input, init) => {
      if (init?.method === "PUT") sentParts.push(new URL(String(input)).searchParams.get("partNumber")!);
      return fetch(input, init);
    };
    const events: UploadProgress[] = [];
    const out = await make(watching).resumeUpload(id, bytes, { onProgress: (p) => events.push(p) });
    expect(out.skippedParts).toBe(1);
    expect(sentParts.sort()).toEqual(["2", "3"]);
    expect(events[0]!.bytesSent).toBe(0);
    progressChecks(events, bytes.length);
    expect((await client.waitForVerdict(id, { timeoutMs: 30_000 })).status).toBe("verified");
    expect((await s.download(id)).bytes.equals(bytes)).toBe(true);
  });

  it("re-sends a stored part whose bytes differ from the source (its ETag is another MD5)", async () => {
    const bytes = zip([{ name: "v.bin", data: randomBytes(7 * MiB) }]);
    const created = await client.createUpload({ filename: "v.zip", contentType: "application/zip", size: bytes.length });
    expect(created.kind).toBe("multipart");
    const [p1] = await client.signParts(created.upload.id, { partNumbers: [1] });
    const wrong = Buffer.from(bytes.subarray(0, 5 * MiB));
    wrong[100] ^= 0xff;
    expect((await fetch(p1!.url, { method: "PUT", headers: p1!.headers, body: wrong })).status).toBe(200);
    const out = await client.resumeUpload(created.upload.id, bytes, {});
    expect(out.skippedParts).toBe(0);
    expect((await client.waitForVerdict(created.upload.id, { timeoutMs: 30_000 })).status).toBe("verified");
    expect((await s.download(created.upload.id)).bytes.equals(bytes)).toBe(true);
  });

  it("cancels with an AbortSignal: in-flight PUTs stop, the upload is aborted in the API and in storage", async () => {
    const bytes = zip([{ name: "c.bin", data: randomBytes(14 * MiB) }]);
    const ac = new AbortController();
    let id: string | undefined;
    // Part 2 hangs until the signal aborts it; part 1's confirmation triggers the cancel.
    const slow: typeof fetch = async (input, init) => {
      if (isPartPut(input, init, 2)) {
        await new Promise((_, reject) => init!.signal!.addEventListener("abort", () => reject(init!.signal!.reason), { once: true }));
      }
      const res = await fetch(input, init);
      if (init?.method === "POST" && String(input).endsWith("/v1/uploads")) id = ((await res.clone().json()) as { upload: { id: string } }).upload.id;
      return res;
    };
    const err = await make(slow)
      .upload(bytes, { filename: "c.zip", contentType: "application/zip", concurrency: 2, signal: ac.signal, onProgress: (p) => p.bytesSent > 0 && ac.abort(new Error("user cancelled")) })
      .catch((e) => e);
    expect((err as Error).message).toBe("user cancelled");
    expect(id).toBeDefined();
    expect((await client.get(id!)).status).toBe("aborted");
    const row = await s.uploads.getById(id!);
    await expect(s.storage.store.listParts(row!.objectKey, row!.multipart!.storageUploadId)).rejects.toThrow();
  });

  it("bytes changed on the way are refused by storage (the MD5 bound into the PUT and into each part) and not retried", async () => {
    const bytes = png(32, 32, 9);
    let puts = 0;
    const tamper: typeof fetch = async (input, init) => {
      if (init?.method !== "PUT") return fetch(input, init);
      puts++;
      const changed = Buffer.from(init.body as Uint8Array);
      changed[changed.length - 1] ^= 0x01;
      return fetch(input, { ...init, body: changed });
    };
    const err = await make(tamper).upload(bytes, { filename: "t.png", contentType: "image/png", retryBaseMs: 10 }).catch((e) => e);
    expect(err).toBeInstanceOf(IntakeStorageError);
    expect(err).toMatchObject({ status: 400, storageCode: "BadDigest" });
    expect((err as Error).message).not.toMatch(/X-Amz-Signature|https?:/);
    expect(puts).toBe(1);

    const big = zip([{ name: "t.bin", data: randomBytes(6 * MiB) }]);
    puts = 0;
    const partErr = await make(tamper).upload(big, { filename: "t.zip", contentType: "application/zip", concurrency: 1, retryBaseMs: 10 }).catch((e) => e);
    expect(partErr).toBeInstanceOf(IntakeUploadInterruptedError);
    expect((partErr as Error).cause).toMatchObject({ name: "IntakeStorageError", status: 400, storageCode: "BadDigest", partNumber: 1 });
    expect(puts).toBe(1);
  });

  it("waitForVerdict resolves quarantined with the reason for EICAR", async () => {
    const out = await client.upload(eicar(), { filename: "eicar.txt", contentType: "text/plain" });
    const verdict = await client.waitForVerdict(out.upload.id, { timeoutMs: 30_000 });
    expect(verdict).toMatchObject({ status: "quarantined", reason: "malware", upload: { id: out.upload.id, result: { signature: projectSignatures().nameFor(eicar()) } } });
  });

  it("waitForVerdict rejects an upload that ended without a verdict, and times out on one still pending", async () => {
    const pending = await client.createUpload({ filename: "x.png", contentType: "image/png", size: 10 });
    const started = Date.now();
    await expect(client.waitForVerdict(pending.upload.id, { timeoutMs: 1_500 })).rejects.toMatchObject({ name: "IntakeTimeoutError", upload: { status: "pending" } });
    expect(Date.now() - started).toBeLessThan(5_000);
    await client.abort(pending.upload.id);
    await expect(client.waitForVerdict(pending.upload.id, { timeoutMs: 5_000 })).rejects.toMatchObject({ status: 409, code: "no_verdict" });
  });

  it("the long-poll answers as soon as the status is terminal, not at the end of the wait", async () => {
    const pending = await client.createUpload({ filename: "y.png", contentType: "image/png", size: 10 });
    const started = Date.now();
    setTimeout(() => void client.abort(pending.upload.id), 300);
    const got = await client.get(pending.upload.id, { wait: 15 });
    expect(got.status).toBe("aborted");
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it("API errors arrive as IntakeApiError with status, code, message and details", async () => {
    const err = await client.createUpload({ filename: "a.exe", contentType: "application/x-msdownload", size: 10 }).catch((e) => e);
    expect(err).toBeInstanceOf(IntakeApiError);
    expect(err).toMatchObject({ status: 400, code: expect.any(String), message: expect.any(String) });
    const missing = await client.get("nosuchupload").catch((e) => e);
    expect(missing).toMatchObject({ status: 404, code: "upload_not_found" });
    await expect(client.get("x", { wait: 99 })).rejects.toMatchObject({ status: 400, code: "invalid_wait" });
    await expect(new IntakeClient({ baseUrl: s.apiUrl, apiKey: "ik_live_nope" }).list()).rejects.toMatchObject({ status: 401 });
  });
});
