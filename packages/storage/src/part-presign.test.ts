import { describe, expect, it } from "vitest";
import { AWS_S3_CAPABILITIES } from "./capabilities.ts";
import { createS3Client, S3ObjectStore } from "./s3-object-store.ts";

/** Part URLs sign what the client declared for the part, and nothing the SDK would add on its own. */
describe("S3ObjectStore.presignPart", () => {
  const s3 = createS3Client({ region: "us-east-1", endpoint: "http://127.0.0.1:9", forcePathStyle: true, credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" } });
  const store = new S3ObjectStore(s3, "bucket", AWS_S3_CAPABILITIES);
  const md5 = "XUFAKrxLKna5cZ2REBfFkg==";
  const sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
  const signedHeaders = (url: string) => new URL(url).searchParams.get("X-Amz-SignedHeaders")!.split(";");
  const checksumParams = (url: string) => [...new URL(url).searchParams.keys()].filter((k) => /checksum/i.test(k));

  it("binds only the length without checksums, and asks for no Content-Type", async () => {
    const r = await store.presignPart("pending/t/u", "up-1", 1, { contentLength: 10, expiresIn: 60 });
    expect(r.headers).toEqual({});
    expect(signedHeaders(r.url)).toEqual(["content-length", "host"]);
    expect(checksumParams(r.url)).toEqual([]);
  });

  it("signs Content-MD5 and keeps x-amz-checksum-sha256 a header (base64 of the hex digest)", async () => {
    const r = await store.presignPart("pending/t/u", "up-1", 2, { contentLength: 10, expiresIn: 60, md5Base64: md5, sha256Hex: sha });
    expect(r.headers).toEqual({ "Content-MD5": md5, "x-amz-checksum-sha256": Buffer.from(sha, "hex").toString("base64") });
    expect(signedHeaders(r.url)).toEqual(["content-length", "content-md5", "host", "x-amz-checksum-sha256"]);
    expect(checksumParams(r.url)).toEqual([]);
    expect(new URL(r.url).searchParams.get("partNumber")).toBe("2");
  });

  it("signs either checksum alone", async () => {
    expect(signedHeaders((await store.presignPart("k", "u", 1, { contentLength: 1, expiresIn: 60, md5Base64: md5 })).url)).toEqual(["content-length", "content-md5", "host"]);
    expect(signedHeaders((await store.presignPart("k", "u", 1, { contentLength: 1, expiresIn: 60, sha256Hex: sha })).url)).toEqual(["content-length", "host", "x-amz-checksum-sha256"]);
  });
});
