import { PutObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { describe, expect, it } from "vitest";
import { expectedSignature, signatureHolds } from "@intake/testkit";
import { createS3Client } from "./s3-object-store.ts";
import { PutPresigner } from "./put-presigner.ts";
import type { PutBinding } from "./object-store.ts";

const credentials = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" };
const at = new Date("2026-11-25T10:00:00Z");
const key = "pending/acme/0123456789abcdef0123456789abcdef";

/** The URL getSignedUrl gives, built here from a client and a command of the test's own. */
async function sdkUrl(settings: Parameters<typeof createS3Client>[0], bucket: string, objectKey: string, b: PutBinding): Promise<string> {
  const s3 = createS3Client({ ...settings, credentials });
  const command = new PutObjectCommand({
    Bucket: bucket,
    Key: objectKey,
    ContentType: b.contentType,
    ContentLength: b.contentLength,
    ...(b.sha256Hex ? { ChecksumSHA256: Buffer.from(b.sha256Hex, "hex").toString("base64") } : {}),
    ...(b.md5Base64 ? { ContentMD5: b.md5Base64 } : {}),
  });
  return getSignedUrl(s3, command, {
    expiresIn: b.expiresIn,
    signingDate: at,
    signableHeaders: new Set(["content-type", "content-length", "content-md5"]),
    unhoistableHeaders: new Set(["x-amz-checksum-sha256"]),
  });
}

describe("the SigV4 check the tests rely on", () => {
  it("reproduces the AWS documentation's example presigned GET", () => {
    // S3 API reference, "Authenticating Requests: Using Query Parameters", example.
    const url =
      "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request" +
      "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
    expect(expectedSignature({ method: "GET", url, headers: {} }, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")).toBe("aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  });
});

// Offline: presigning needs no network. The signature is checked by an independent SigV4
// computation, and the URL against getSignedUrl's; test/api/presigned-url.test.ts proves
// RGW accepts these URLs and refuses them misused.
describe("PutPresigner signs a PUT bound to its type, length and checksums", () => {
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
        const { url, headers } = await presigner.presign(key, binding, at);
        const sent = { ...headers, "content-length": String(binding.contentLength) };
        const q = new URL(url).searchParams;

        // The signature holds for exactly what the client is told to send...
        expect(signatureHolds({ method: "PUT", url, headers: sent }, credentials.secretAccessKey)).toBe(true);
        // ...and for nothing else: every bound header is part of it.
        expect(signatureHolds({ method: "PUT", url, headers: { ...sent, "Content-Type": "text/html" } }, credentials.secretAccessKey)).toBe(false);
        expect(signatureHolds({ method: "PUT", url, headers: { ...sent, "content-length": String(binding.contentLength + 1) } }, credentials.secretAccessKey)).toBe(false);
        expect(signatureHolds({ method: "PUT", url: url.replace(key, `${key}x`), headers: sent }, credentials.secretAccessKey)).toBe(false);
        expect(signatureHolds({ method: "PUT", url, headers: sent }, "another secret")).toBe(false);
        if ("sha256Hex" in binding) {
          expect(signatureHolds({ method: "PUT", url, headers: { ...sent, "Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA==" } }, credentials.secretAccessKey)).toBe(false);
          expect(signatureHolds({ method: "PUT", url, headers: { ...sent, "x-amz-checksum-sha256": "AAAA" } }, credentials.secretAccessKey)).toBe(false);
        }

        expect(Object.keys(headers).sort()).toEqual("sha256Hex" in binding ? ["Content-MD5", "Content-Type", "x-amz-checksum-sha256"] : ["Content-Type"]);
        expect(q.get("X-Amz-Expires")).toBe(String(binding.expiresIn));
        expect(q.get("X-Amz-Date")).toBe("20261125T100000Z");
        expect(q.get("X-Amz-Credential")).toBe(`${credentials.accessKeyId}/20261125/${settings.region}/s3/aws4_request`);
        expect(q.get("X-Amz-SignedHeaders")!.split(";")).toEqual(
          "sha256Hex" in binding ? ["content-length", "content-md5", "content-type", "host", "x-amz-checksum-sha256"] : ["content-length", "content-type", "host"],
        );
        // No checksum of an empty body hoisted into the URL (aws/aws-sdk-js-v3#6806).
        expect(url).not.toMatch(/x-amz-checksum-crc32|x-amz-sdk-checksum-algorithm/i);
        // And the URL is the one getSignedUrl gives from a client and command built apart.
        expect(url).toBe(await sdkUrl(settings, "intake-uploads", key, binding));
      });
    }
  }

  it("hands keys with characters S3 must encode to the SDK", async () => {
    const settings = { region: "us-east-1", endpoint: "http://127.0.0.1:4566", forcePathStyle: true };
    const presigner = new PutPresigner(createS3Client({ ...settings, credentials }), "b-1");
    const odd = "pending/acme/a file+(1).png";
    const binding = { contentType: "image/png", contentLength: 1, expiresIn: 60 };
    const { url, headers } = await presigner.presign(odd, binding, at);
    expect(new URL(url).pathname).toBe("/b-1/pending/acme/a%20file%2B%281%29.png");
    expect(signatureHolds({ method: "PUT", url, headers: { ...headers, "content-length": "1" } }, credentials.secretAccessKey)).toBe(true);
    expect(url).toBe(await sdkUrl(settings, "b-1", odd, binding));
  });
});
