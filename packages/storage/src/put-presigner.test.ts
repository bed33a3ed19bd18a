import { describe, expect, it } from "vitest";
import { createS3Client } from "./s3-object-store.ts";
import { PutPresigner } from "./put-presigner.ts";

const credentials = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
const at = new Date("2026-11-25T10:00:00Z");
const key = "pending/acme/0123456789abcdef0123456789abcdef";

// Offline: presigning needs no network, so these run against the SDK itself.
describe("PutPresigner gives exactly the URL getSignedUrl gives", () => {
  const endpoints = [
    ["a path-style endpoint with a port (fauxqs, RGW, MinIO)", { region: "us-east-1", endpoint: "http://127.0.0.1:4566", forcePathStyle: true }],
    ["AWS, virtual-hosted", { region: "eu-west-3", forcePathStyle: false }],
    ["AWS, path style", { region: "us-east-1", forcePathStyle: true }],
    ["an https endpoint on the default port", { region: "auto", endpoint: "https://storage.example.com", forcePathStyle: true }],
  ] as const;
  const bindings = [
    ["type and length", { contentType: "image/png", contentLength: 123_456, expiresIn: 600 }],
    ["a declared sha256 and md5", { contentType: "application/pdf", contentLength: 5, expiresIn: 60, sha256Hex: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", md5Base64: "XUFAKrxLKna5cZ2REBfFkg==" }],
  ] as const;

  for (const [where, settings] of endpoints) {
    for (const [what, binding] of bindings) {
      it(`${where}, ${what}`, async () => {
        const presigner = new PutPresigner(createS3Client({ ...settings, credentials }), "intake-uploads");
        const { url: fast, headers } = await presigner.presign(key, binding, at);
        expect(Object.keys(headers).sort()).toEqual("sha256Hex" in binding ? ["Content-MD5", "Content-Type", "x-amz-checksum-sha256"] : ["Content-Type"]);
        expect(fast).toBe(await presigner.presignWithSdk(key, binding, at));
        const signed = new URL(fast).searchParams.get("X-Amz-SignedHeaders")!.split(";");
        expect(signed).toEqual(expect.arrayContaining(["content-length", "content-type", "host"]));
        if ("sha256Hex" in binding) expect(signed).toEqual(expect.arrayContaining(["content-md5", "x-amz-checksum-sha256"]));
        expect(fast).not.toContain("x-amz-checksum-crc32");
      });
    }
  }

  it("hands keys with characters S3 must encode to the SDK", async () => {
    const presigner = new PutPresigner(createS3Client({ region: "us-east-1", endpoint: "http://127.0.0.1:4566", forcePathStyle: true, credentials }), "b-1");
    const odd = "pending/acme/a file+(1).png";
    const binding = { contentType: "image/png", contentLength: 1, expiresIn: 60 };
    const { url } = await presigner.presign(odd, binding, at);
    expect(url).toBe(await presigner.presignWithSdk(odd, binding, at));
    expect(new URL(url).pathname).toBe("/b-1/pending/acme/a%20file%2B%281%29.png");
  });
});
