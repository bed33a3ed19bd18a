import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { objectKey } from "@intake/domain";
import { FAUXQS_MAX_BODY_BYTES } from "@intake/local-infra";
import { MiB, sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * The development stack as a newcomer meets it: infra/bin/dev applies infra/local/dev.env
 * on top of the defaults, and with those settings a 200 MB upload must go through the local
 * store (whose request bodies are capped at 11 MiB) as a multipart upload and end verified.
 */
function devEnv(): Record<string, string> {
  const text = readFileSync(resolve(import.meta.dirname, "../../infra/local/dev.env"), "utf8");
  return Object.fromEntries(
    text
      .split("\n")
      .map((line) => /^([A-Z_]+)=(.*)$/.exec(line.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
}

describe("the dev stack's settings on the local store", () => {
  let s: PipelineStack;
  const env = devEnv();
  beforeAll(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", env });
  });
  afterAll(async () => s?.close());

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(s.apiUrl + path, { method, headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  it("keep every single PUT and part under the local store's body limit", () => {
    expect(Number(env.PART_SIZE_BYTES)).toBeLessThanOrEqual(FAUXQS_MAX_BODY_BYTES);
    expect(Number(env.MULTIPART_THRESHOLD_BYTES)).toBeLessThanOrEqual(FAUXQS_MAX_BODY_BYTES);
  });

  it("take a 200 MB upload through multipart to verified", async () => {
    // 200 MB of text (base64 of random bytes: valid UTF-8, incompressible).
    const bytes = Buffer.from(randomBytes(150_000_000).toString("base64"));
    expect(bytes.length).toBe(200_000_000);
    const created = await call("POST", "/v1/uploads", { filename: "big.txt", contentType: "text/plain", size: bytes.length, sha256: sha256Of(bytes) });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ kind: "multipart" });
    const { uploadId: id, partSize, partCount } = created.body as { uploadId: string; partSize: number; partCount: number };
    expect(partSize).toBe(Number(env.PART_SIZE_BYTES));
    const numbers = Array.from({ length: partCount }, (_, i) => i + 1);
    const signed = await call("POST", `/v1/uploads/${id}/parts`, { partNumbers: numbers });
    expect(signed.status).toBe(200);
    const parts: { partNumber: number; etag: string }[] = [];
    for (const p of signed.body.parts as { partNumber: number; url: string; headers: Record<string, string> }[]) {
      const body = bytes.subarray((p.partNumber - 1) * partSize, Math.min(p.partNumber * partSize, bytes.length));
      const put = await fetch(p.url, { method: "PUT", headers: p.headers, body });
      expect(put.status, `part ${p.partNumber}`).toBe(200);
      parts.push({ partNumber: p.partNumber, etag: put.headers.get("etag")! });
    }
    expect((await call("POST", `/v1/uploads/${id}/complete`, { parts })).status).toBe(200);
    const done = await s.waitFor(id, ["verified", "quarantined"], 120_000);
    expect(done).toMatchObject({ status: "verified", storedSize: bytes.length, sha256: sha256Of(bytes) });
    expect(await s.storage.store.head(objectKey("pending", s.tenant, id))).toBeNull();
  });
});
