import { describe, expect, it } from "vitest";
import { validateDeclaration, urlTtl, type UploadPolicy } from "./upload-policy.ts";
import { contentDisposition } from "./filename.ts";
import { planMultipart, MAX_PARTS, MIN_PART_SIZE } from "./multipart.ts";
import { canonicalType, sameType } from "./content-types.ts";

const MiB = 1024 * 1024;
const policy: UploadPolicy = {
  allowedTypes: ["image/png", "image/jpeg", "application/pdf", "text/plain"],
  maxSize: 10 * 1024 * MiB,
  multipartThreshold: 100 * MiB,
  partSize: 16 * MiB,
  urlTtlSeconds: 600,
  maxUrlTtlSeconds: 3600,
};
const ok = { filename: "photo.png", contentType: "image/png", size: 1000 };

describe("validateDeclaration", () => {
  it("accepts a plain declaration and folds type aliases", () => {
    const d = validateDeclaration({ ...ok, contentType: "IMAGE/JPG; charset=binary" }, policy);
    expect(d).toMatchObject({ filename: "photo.png", contentType: "image/jpeg", size: 1000, multipart: null });
  });

  it.each([
    [{ size: 0 }, "invalid_size"],
    [{ size: -1 }, "invalid_size"],
    [{ size: 1.5 }, "invalid_size"],
    [{ size: "100" }, "invalid_size"],
    [{ size: 10 * 1024 * MiB + 1 }, "size_too_large"],
    [{ contentType: "application/x-msdownload" }, "content_type_not_allowed"],
    [{ contentType: "not a type" }, "invalid_content_type"],
    [{ filename: "a\u0000b.png" }, "invalid_filename"],
    [{ filename: "a\u0007b.png" }, "invalid_filename"],
    [{ filename: "../etc/passwd" }, "invalid_filename"],
    [{ filename: "dir\\file.png" }, "invalid_filename"],
    [{ filename: "photo\u202Egnp.exe" }, "invalid_filename"],
    [{ filename: "x".repeat(256) }, "invalid_filename"],
    [{ filename: "   " }, "invalid_filename"],
    [{ sha256: "abc" }, "invalid_checksum"],
    [{ md5: "not-base64" }, "invalid_checksum"],
    [{ metadata: { "Bad Key": "x" } }, "invalid_metadata"],
    [{ metadata: ["x"] }, "invalid_metadata"],
  ])("refuses %j with %s", (over, code) => {
    expect(() => validateDeclaration({ ...ok, ...over }, policy)).toThrow(expect.objectContaining({ code }));
  });

  it("chooses multipart above the threshold and plans parts", () => {
    const d = validateDeclaration({ ...ok, size: 200 * MiB }, policy);
    expect(d.multipart).toEqual({ partSize: 16 * MiB, partCount: 13 });
  });

  it("refuses md5 for multipart uploads but keeps sha256", () => {
    expect(() => validateDeclaration({ ...ok, size: 200 * MiB, md5: "1B2M2Y8AsgTpgAmY7PhCfg==" }, policy)).toThrow(expect.objectContaining({ code: "invalid_checksum" }));
    expect(validateDeclaration({ ...ok, size: 200 * MiB, sha256: "A".repeat(64) }, policy).sha256).toBe("a".repeat(64));
  });

  it("caps the URL lifetime", () => {
    expect(urlTtl(undefined, policy)).toBe(600);
    expect(urlTtl(120, policy)).toBe(120);
    expect(() => urlTtl(7200, policy)).toThrow(expect.objectContaining({ code: "invalid_expiry" }));
  });
});

describe("planMultipart", () => {
  it("grows the part size to stay within 10,000 parts", () => {
    const size = 5 * 1024 * 1024 * MiB; // 5 TiB
    const plan = planMultipart(size, 16 * MiB);
    expect(plan.partCount).toBeLessThanOrEqual(MAX_PARTS);
    expect(plan.partSize % MiB).toBe(0);
    expect(planMultipart(10 * MiB, 1).partSize).toBe(MIN_PART_SIZE);
  });
});

describe("content types and dispositions", () => {
  it("treats documented aliases as the same type and nothing else", () => {
    expect(sameType("image/jpg", "image/jpeg")).toBe(true);
    expect(sameType("image/png", "image/jpeg")).toBe(false);
    expect(canonicalType("text/html; charset=utf-8")).toBe("text/html");
  });

  it("builds a header-safe Content-Disposition that keeps the real name in filename*", () => {
    const v = contentDisposition('résumé "final";.pdf');
    expect(v).toBe(`attachment; filename="r_sum_ _final__.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%3B.pdf`);
  });
});
