import { describe, expect, it } from "vitest";
import { arrivedSize, multipartBound, recordedSize, sizeLimitFor } from "./upload-size.ts";
import { validateSizeUnknownDeclaration, type UploadPolicy } from "./upload-policy.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const policy: UploadPolicy = { allowedTypes: ["image/png"], maxSize: 10 * GiB, multipartThreshold: 100 * MiB, partSize: 16 * MiB, urlTtlSeconds: 600, maxUrlTtlSeconds: 3600 };

describe("an upload whose size is learned on arrival", () => {
  it("is limited by the per-file maximum, and a form POST by S3's 5 GiB as well", () => {
    expect(sizeLimitFor(10 * GiB, "multipart")).toBe(10 * GiB);
    expect(sizeLimitFor(10 * GiB, "form")).toBe(5 * GiB);
    expect(sizeLimitFor(1000, "form")).toBe(1000);
  });

  it("may have as many parts as its limit needs at 5 MiB, at least one, at most 10,000", () => {
    expect(multipartBound(1)).toEqual({ partSize: 5 * MiB, partCount: 1 });
    expect(multipartBound(5 * MiB)).toEqual({ partSize: 5 * MiB, partCount: 1 });
    expect(multipartBound(5 * MiB + 1)).toEqual({ partSize: 5 * MiB, partCount: 2 });
    expect(multipartBound(5 * 1024 * GiB).partCount).toBe(10_000);
  });

  it("is declared without a size, its transfer as the client chose it, and no checksum", () => {
    const form = validateSizeUnknownDeclaration({ filename: "a.png", contentType: "image/png", metadata: { album: "x" } }, policy, "form");
    expect(form).toEqual({ filename: "a.png", contentType: "image/png", size: null, sizeLimit: 5 * GiB, metadata: { album: "x" }, multipart: null });
    const parts = validateSizeUnknownDeclaration({ filename: "a.png", contentType: "image/png" }, policy, "multipart");
    expect(parts).toMatchObject({ size: null, sizeLimit: 10 * GiB, multipart: { partSize: 5 * MiB, partCount: 2048 } });
    expect(() => validateSizeUnknownDeclaration({ filename: "a.exe", contentType: "application/x-msdownload" }, policy, "form")).toThrow(/not allowed/);
  });

  it("is held to the size recorded on arrival, the declared one first; none before arrival", () => {
    expect(recordedSize({ declaredSize: 10, storedSize: 11 })).toBe(10);
    expect(recordedSize({ declaredSize: null, storedSize: 11 })).toBe(11);
    expect(recordedSize({ declaredSize: null, storedSize: null })).toBeNull();
    expect(() => arrivedSize({ id: "u", declaredSize: null, storedSize: null })).toThrow(/no recorded size/);
  });
});
