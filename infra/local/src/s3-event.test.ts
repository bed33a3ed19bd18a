import { describe, expect, it } from "vitest";
import { createSequencer, encodeS3EventKey } from "./s3-event.ts";
import { classifyRequest, FormFieldSniffer } from "./s3-request.ts";

describe("encodeS3EventKey", () => {
  it("encodes like S3 event notifications: form encoding, '/' kept", () => {
    expect(encodeS3EventKey("pending/red flower.jpg")).toBe("pending/red+flower.jpg");
    expect(encodeS3EventKey("a/b=c:d;e,f")).toBe("a/b%3Dc%3Ad%3Be%2Cf");
    expect(encodeS3EventKey("photo (1)!'~.png")).toBe("photo+%281%29%21%27%7E.png");
    expect(encodeS3EventKey("c++ é 😀")).toBe("c%2B%2B+%C3%A9+%F0%9F%98%80");
    for (const k of ["x/y z+w%20(1)/ü", "a&b?c#d"]) {
      expect(decodeURIComponent(encodeS3EventKey(k).replace(/\+/g, " "))).toBe(k);
    }
  });
});

describe("createSequencer", () => {
  it("is strictly increasing hex", () => {
    const next = createSequencer();
    const seqs = Array.from({ length: 1000 }, next);
    for (let i = 1; i < seqs.length; i++) {
      expect(seqs[i]).toMatch(/^[0-9A-F]{18}$/);
      expect(BigInt(`0x${seqs[i]}`) > BigInt(`0x${seqs[i - 1]}`)).toBe(true);
    }
  });
});

describe("classifyRequest", () => {
  const h = (extra: Record<string, string> = {}) => ({ host: "127.0.0.1:4566", ...extra });
  it("recognises object-creating requests only", () => {
    expect(classifyRequest("PUT", "/b/pending/a%20b", h(), "b")).toEqual({
      eventName: "ObjectCreated:Put",
      bucket: "b",
      key: "pending/a b",
    });
    expect(classifyRequest("PUT", "/b/k?partNumber=1&uploadId=u", h(), "b")).toBeUndefined();
    expect(classifyRequest("PUT", "/b/k?tagging", h(), "b")).toBeUndefined();
    expect(classifyRequest("PUT", "/b", h(), "b")).toBeUndefined();
    expect(classifyRequest("PUT", "/other/k", h(), "b")).toBeUndefined();
    expect(classifyRequest("PUT", "/b/k", h({ "x-amz-copy-source": "b/x" }), "b")?.eventName).toBe(
      "ObjectCreated:Copy",
    );
    expect(classifyRequest("POST", "/b/k?uploads", h(), "b")).toBeUndefined();
    expect(classifyRequest("POST", "/b/k?uploadId=abc", h(), "b")?.eventName).toBe(
      "ObjectCreated:CompleteMultipartUpload",
    );
    expect(classifyRequest("POST", "/b?delete", h({ "content-type": "application/xml" }), "b")).toBeUndefined();
    expect(
      classifyRequest("POST", "/b", h({ "content-type": "multipart/form-data; boundary=XyZ" }), "b"),
    ).toEqual({ eventName: "ObjectCreated:Post", bucket: "b", boundary: "XyZ" });
    // virtual-hosted style
    expect(classifyRequest("PUT", "/pending/x", { host: "b.s3.localhost:4566" }, "b")).toMatchObject({
      key: "pending/x",
    });
  });
});

describe("FormFieldSniffer", () => {
  it("reads the fields before the file part across chunk boundaries", () => {
    const body = Buffer.from(
      "--B\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\npending/${filename}\r\n" +
        "--B\r\nContent-Disposition: form-data; name=\"X-Amz-Credential\"\r\n\r\nAKID/2024/us-east-1/s3/aws4_request\r\n" +
        "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.txt\"\r\nContent-Type: text/plain\r\n\r\n" +
        "DATA--B not a boundary\r\n--B--\r\n",
    );
    const s = new FormFieldSniffer("B");
    for (let i = 0; i < body.length; i += 7) s.push(body.subarray(i, i + 7));
    expect(s.done).toBe(true);
    expect(s.key()).toBe("pending/a b.txt");
    expect(s.field("x-amz-credential")).toBe("AKID/2024/us-east-1/s3/aws4_request");
  });
});
