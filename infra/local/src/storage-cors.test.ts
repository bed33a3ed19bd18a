import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { startLocalObjectStorage, type LocalObjectStorage } from "./local-object-storage.ts";

/** The bucket CORS the local stand-in adds to fauxqs (which has none): what Uppy needs from storage. */
const APP = "http://app.example.test";
let storage: LocalObjectStorage;

beforeAll(async () => {
  storage = await startLocalObjectStorage({ port: 0, corsOrigins: [APP], logger: { info() {}, warn() {}, error() {} } });
  const s3 = new S3Client({ endpoint: storage.endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: "t", secretAccessKey: "t" } });
  await s3.send(new CreateBucketCommand({ Bucket: "intake-uploads" }));
  s3.destroy();
});
afterAll(() => storage?.stop());

describe("local storage CORS", () => {
  it("answers a part PUT's preflight for a configured origin, and exposes ETag on the PUT", async () => {
    const pre = await fetch(`${storage.endpoint}/intake-uploads/pending/a`, { method: "OPTIONS", headers: { origin: APP, "access-control-request-method": "PUT" } });
    expect(pre.status).toBe(200);
    expect(pre.headers.get("access-control-allow-origin")).toBe(APP);
    expect(pre.headers.get("access-control-allow-methods")).toMatch(/PUT/);
    expect(pre.headers.get("access-control-allow-methods")).toMatch(/POST/);
    const put = await fetch(`${storage.endpoint}/intake-uploads/pending/a`, { method: "PUT", body: "hello", headers: { origin: APP } });
    expect(put.status).toBe(200);
    expect(put.headers.get("access-control-allow-origin")).toBe(APP);
    expect(put.headers.get("access-control-expose-headers")).toMatch(/ETag/);
    expect(put.headers.get("etag")).toBeTruthy();
  });

  it("refuses other origins and headers outside the rule, and adds nothing to their requests", async () => {
    const other = await fetch(`${storage.endpoint}/intake-uploads/pending/a`, { method: "OPTIONS", headers: { origin: "http://evil.test", "access-control-request-method": "PUT" } });
    expect(other.status).toBe(403);
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    const header = await fetch(`${storage.endpoint}/intake-uploads/pending/a`, { method: "OPTIONS", headers: { origin: APP, "access-control-request-method": "PUT", "access-control-request-headers": "x-custom" } });
    expect(header.status).toBe(403);
    const put = await fetch(`${storage.endpoint}/intake-uploads/pending/b`, { method: "PUT", body: "x", headers: { origin: "http://evil.test" } });
    expect(put.headers.get("access-control-allow-origin")).toBeNull();
  });
});
