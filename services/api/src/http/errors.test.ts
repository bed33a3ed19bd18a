import { describe, expect, it } from "vitest";
import { ConflictError, DependencyUnavailableError, IntakeError, InvalidRequestError, NotFoundError, PayloadTooLargeError, UnauthenticatedError } from "@intake/domain";
import { StorageRequestError, StorageUnsupportedError } from "@intake/storage";
import { errorResponse, HttpError } from "./errors.ts";

describe("error mapping", () => {
  it("maps each error kind to its status, keeping code, message and details", () => {
    expect(errorResponse(new InvalidRequestError("invalid_size", "size must be > 0", { field: "size" }))).toEqual({
      status: 400,
      body: { error: { code: "invalid_size", message: "size must be > 0", details: { field: "size" } } },
    });
    expect(errorResponse(new UnauthenticatedError()).status).toBe(401);
    expect(errorResponse(new NotFoundError("upload", "u1"))).toMatchObject({ status: 404, body: { error: { code: "upload_not_found" } } });
    expect(errorResponse(new ConflictError("object_missing", "no object")).status).toBe(409);
    expect(errorResponse(new PayloadTooLargeError("size_too_large", "too big")).status).toBe(413);
    expect(errorResponse(new DependencyUnavailableError("database", "down")).status).toBe(503);
    expect(errorResponse(new IntakeError("conflict", "x", "y")).status).toBe(409);
  });

  it("answers 501 for an S3 operation the storage does not implement, 400 for a request storage refused", () => {
    expect(errorResponse(new StorageUnsupportedError("ListParts"))).toMatchObject({ status: 501, body: { error: { code: "storage_unsupported", details: { operation: "ListParts" } } } });
    expect(errorResponse(new StorageRequestError("InvalidPart", "storage refused CompleteMultipartUpload: InvalidPart")).status).toBe(400);
  });

  it("passes HTTP-layer errors through with their status", () => {
    expect(errorResponse(new HttpError(415, "unsupported_media_type", "json only"))).toMatchObject({ status: 415, body: { error: { code: "unsupported_media_type" } } });
  });

  it("answers 500 for anything else without its message, stack or any secret", () => {
    const secret = "https://bucket.s3.amazonaws.com/k?X-Amz-Signature=abcdef0123 password=hunter2";
    const { status, body } = errorResponse(new Error(secret));
    expect(status).toBe(500);
    expect(body).toEqual({ error: { code: "internal_error", message: "an internal error occurred; it has been logged" } });
    expect(JSON.stringify(errorResponse(Object.assign(new TypeError("boom"), { stack: secret })))).not.toContain("hunter2");
    expect(errorResponse("a string").status).toBe(500);
  });
});
