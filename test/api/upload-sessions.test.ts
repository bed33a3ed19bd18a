import { createHash } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { beforeAllOrFailEach } from "@intake/test";
import { scrubSecrets } from "@intake/runtime";
import { putTo, startApiUnderTest, type ApiUnderTest } from "./harness.ts";

const MiB = 1024 * 1024;

/**
 * Upload sessions: the token an application's backend mints so a browser can upload without
 * the API key. What it may do (create within its limits, complete, abort and read its own
 * uploads), what it may not (everything else), and its limits under concurrency, on both
 * databases.
 */
describe.each(["sqlite", "pg"] as const)("upload sessions on %s", (database) => {
  let t: ApiUnderTest;
  let key: string;
  let otherKey: string;
  const tokens: string[] = [];

  beforeAllOrFailEach(async () => {
    t = await startApiUnderTest({ storage: "fauxqs", database, env: { MULTIPART_THRESHOLD_BYTES: String(5 * MiB), PART_SIZE_BYTES: String(5 * MiB), ALLOWED_TYPES: "image/png,image/jpeg,application/pdf,text/plain,application/zip" } });
    key = await t.newKey("acme");
    otherKey = await t.newKey("globex");
  });
  afterAll(async () => t?.close());

  async function mint(body: Record<string, unknown> = {}, k = key) {
    const res = await t.call("POST", "/v1/upload-sessions", { key: k, body });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    tokens.push(res.body.token);
    return res.body as { token: string; expiresAt: string; session: { id: string; maxFiles: number; maxBytes: number | null; allowedTypes: string[]; metadata: Record<string, string> } };
  }
  const declare = (token: string, body: Record<string, unknown> = {}) => t.call("POST", "/v1/uploads", { key: token, body: { filename: "a.png", contentType: "image/png", size: 10, ...body } });

  it("mints a token shaped like the API keys, stores only the SHA-256 of its secret, and says what it may do", async () => {
    const minted = await mint({ expiresIn: 600, maxFiles: 3, maxBytes: 1000, allowedTypes: ["image/png", "image/jpg"], metadata: { user: "u-1" } });
    expect(minted.token).toMatch(/^is_[a-z0-9]{16}_[A-Za-z0-9_-]{43}$/);
    expect(minted.session).toMatchObject({ maxFiles: 3, maxBytes: 1000, allowedTypes: ["image/png", "image/jpeg"], metadata: { user: "u-1" }, filesUsed: 0, bytesUsed: 0 });
    expect(Math.abs(Date.parse(minted.expiresAt) - Date.now() - 600_000)).toBeLessThan(5000);
    const row = await t.database.db("upload_sessions").where({ id: minted.session.id }).first();
    const secret = minted.token.slice(20);
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(row.secret_hash).toBe(createHash("sha256").update(secret).digest("hex"));
  });

  it("refuses an allowlist wider than the deployment's and malformed limits, with clear errors", async () => {
    const wider = await t.call("POST", "/v1/upload-sessions", { key, body: { allowedTypes: ["image/png", "text/html"] } });
    expect(wider.status).toBe(400);
    expect(wider.body.error.code).toBe("session_type_not_allowed");
    expect(wider.body.error.message).toContain("text/html");
    for (const [body, code] of [
      [{ maxFiles: 0 }, "invalid_max_files"],
      [{ maxBytes: -1 }, "invalid_max_bytes"],
      [{ expiresIn: 10 }, "invalid_expiry"],
      [{ expiresIn: 10 ** 9 }, "invalid_expiry"],
      [{ allowedTypes: [] }, "invalid_allowed_types"],
      [{ metadata: { "Bad Key": "x" } }, "invalid_metadata"],
      [{ scope: "admin" }, "unknown_field"],
    ] as const) {
      const res = await t.call("POST", "/v1/upload-sessions", { key, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe(code);
    }
  });

  it("creates, completes and reads its own uploads, with the session's metadata merged over the client's", async () => {
    const { token } = await mint({ metadata: { user: "u-7" } });
    const created = await declare(token, { metadata: { user: "forged", album: "holiday" } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body.upload.metadata).toEqual({ user: "u-7", album: "holiday" });
    const bytes = new Uint8Array(10).fill(7);
    expect((await putTo(created.body, bytes)).status).toBe(200);
    const done = await t.call("POST", `/v1/uploads/${created.body.upload.id}/complete`, { key: token, body: {} });
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    expect(done.body.upload.status).toBe("uploaded");
    const read = await t.call("GET", `/v1/uploads/${created.body.upload.id}`, { key: token });
    expect(read.status).toBe(200);
    expect(read.body.upload.id).toBe(created.body.upload.id);
    // A presigned POST too (what browsers and Uppy use for single files).
    const form = await declare(token, { method: "POST" });
    expect(form.status).toBe(201);
    expect(form.body.fields.key).toContain(form.body.upload.id);
  });

  it("long-polls its own upload's status (GET ?wait=): held until the status is terminal, not answered at once", async () => {
    const { token } = await mint();
    const created = await declare(token);
    const id = created.body.upload.id;
    const started = Date.now();
    const waiting = t.call("GET", `/v1/uploads/${id}?wait=10`, { key: token });
    await new Promise((r) => setTimeout(r, 600));
    expect((await t.call("DELETE", `/v1/uploads/${id}`, { key: token })).status).toBe(200);
    const answered = await waiting;
    expect(answered.status).toBe(200);
    expect(answered.body.upload.status).toBe("aborted");
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(500);
    expect(took).toBeLessThan(9_000);
    // A wait ends at its deadline with the status as it is; another session's upload stays 404.
    const pending = (await declare(token)).body.upload.id;
    const timed = Date.now();
    const still = await t.call("GET", `/v1/uploads/${pending}?wait=1`, { key: token });
    expect(still.body.upload.status).toBe("pending");
    expect(Date.now() - timed).toBeGreaterThanOrEqual(900);
    const other = await mint();
    expect((await t.call("GET", `/v1/uploads/${pending}?wait=1`, { key: other.token })).status).toBe(404);
  });

  it("signs parts for, and aborts, its own multipart upload", async () => {
    const { token } = await mint({ allowedTypes: ["application/zip"] });
    const created = await declare(token, { filename: "big.zip", contentType: "application/zip", size: 11 * MiB });
    expect(created.status).toBe(201);
    const id = created.body.uploadId;
    const parts = await t.call("POST", `/v1/uploads/${id}/parts`, { key: token, body: { partNumbers: [1, 2, 3] } });
    expect(parts.status).toBe(200);
    expect(parts.body.parts).toHaveLength(3);
    const aborted = await t.call("DELETE", `/v1/uploads/${id}`, { key: token });
    expect(aborted.status).toBe(200);
    expect(aborted.body.upload.status).toBe("aborted");
  });

  it("refuses a type outside its allowlist, and uploads past maxFiles or maxBytes", async () => {
    const { token } = await mint({ maxFiles: 2, maxBytes: 25, allowedTypes: ["image/png"] });
    const pdf = await declare(token, { filename: "a.pdf", contentType: "application/pdf" });
    expect(pdf.status).toBe(403);
    expect(pdf.body.error.code).toBe("session_type_not_allowed");
    expect((await declare(token, { size: 20 })).status).toBe(201);
    const tooBig = await declare(token, { size: 6 });
    expect(tooBig.status).toBe(403);
    expect(tooBig.body.error).toMatchObject({ code: "session_max_bytes", details: { maxBytes: 25, bytesUsed: 20, size: 6 } });
    expect((await declare(token, { size: 5 })).status).toBe(201);
    const third = await declare(token, { size: 1 });
    expect(third.status).toBe(403);
    expect(third.body.error.code).toBe("session_max_files");
    // An abort gives nothing back: the session counts what it created.
    const refused = await t.countUploads("acme");
    expect(refused).toBeGreaterThan(0);
  });

  it("cannot exceed maxFiles or maxBytes with concurrent creates", async () => {
    const files = await mint({ maxFiles: 3 });
    const byFiles = await Promise.all(Array.from({ length: 12 }, () => declare(files.token)));
    expect(byFiles.filter((r) => r.status === 201)).toHaveLength(3);
    expect(byFiles.filter((r) => r.status === 403).every((r) => r.body.error.code === "session_max_files")).toBe(true);
    expect(byFiles.filter((r) => r.status === 403)).toHaveLength(9);

    const bytes = await mint({ maxFiles: 100, maxBytes: 40 });
    const byBytes = await Promise.all(Array.from({ length: 12 }, () => declare(bytes.token, { size: 10 })));
    expect(byBytes.filter((r) => r.status === 201)).toHaveLength(4);
    expect(byBytes.filter((r) => r.status === 403).every((r) => r.body.error.code === "session_max_bytes")).toBe(true);
    const rows = await t.database.db("upload_sessions").whereIn("id", [files.session.id, bytes.session.id]).orderBy("max_files");
    expect(rows.map((r) => [Number(r.files_used), Number(r.bytes_used)])).toEqual([
      [3, 30],
      [4, 40],
    ]);
    const linked = await t.database.db("upload_session_uploads").where({ session_id: bytes.session.id });
    expect(linked).toHaveLength(4);
  });

  it("cannot list, download, mint, revoke or touch any upload but its own (another session's, the key's, another tenant's)", async () => {
    const { token, session } = await mint();
    const own = await declare(token);
    const keyUpload = await t.call("POST", "/v1/uploads", { key, body: { filename: "k.png", contentType: "image/png", size: 10 } });
    const sibling = await mint();
    const siblingUpload = await declare(sibling.token);
    const foreign = await mint({}, otherKey);
    const foreignUpload = await declare(foreign.token);

    for (const [method, path] of [
      ["GET", "/v1/uploads"],
      ["GET", `/v1/uploads/${own.body.upload.id}/download`],
      ["POST", "/v1/upload-sessions"],
      ["DELETE", `/v1/upload-sessions/${session.id}`],
    ] as const) {
      const res = await t.call(method, path, { key: token, ...(method === "POST" ? { body: {} } : {}) });
      expect(res.status, `${method} ${path}`).toBe(403);
      expect(res.body.error.code).toBe("session_not_allowed");
    }
    for (const id of [keyUpload.body.upload.id, siblingUpload.body.upload.id, foreignUpload.body.upload.id]) {
      for (const [method, path, body] of [
        ["GET", `/v1/uploads/${id}`, undefined],
        ["POST", `/v1/uploads/${id}/complete`, {}],
        ["DELETE", `/v1/uploads/${id}`, undefined],
        ["POST", `/v1/uploads/${id}/parts`, { partNumbers: [1] }],
        ["GET", `/v1/uploads/${id}/parts`, undefined],
      ] as const) {
        const res = await t.call(method, path, { key: token, ...(body ? { body } : {}) });
        expect(res.status, `${method} ${path}`).toBe(404);
        expect(res.body.error.code).toBe("upload_not_found");
      }
    }
    // Nor can another tenant's API key revoke this tenant's session.
    expect((await t.call("DELETE", `/v1/upload-sessions/${session.id}`, { key: otherKey })).status).toBe(404);
    // An Idempotency-Key the API key used does not replay (and so re-sign) the key's upload.
    const byKey = await t.call("POST", "/v1/uploads", { key, body: { filename: "k.png", contentType: "image/png", size: 10 }, headers: { "idempotency-key": "same" } });
    const bySession = await t.call("POST", "/v1/uploads", { key: token, body: { filename: "k.png", contentType: "image/png", size: 10 }, headers: { "idempotency-key": "same" } });
    expect(bySession.status).toBe(201);
    expect(bySession.body.upload.id).not.toBe(byKey.body.upload.id);
  });

  it("stops working when revoked or expired (401 with its own code); an unknown token is told apart from both", async () => {
    const revoked = await mint();
    expect((await declare(revoked.token)).status).toBe(201);
    const res = await t.call("DELETE", `/v1/upload-sessions/${revoked.session.id}`, { key });
    expect(res.status).toBe(200);
    expect(res.body.session.revokedAt).not.toBeNull();
    const afterRevoke = await declare(revoked.token);
    expect(afterRevoke.status).toBe(401);
    expect(afterRevoke.body.error.code).toBe("session_revoked");

    const expired = await mint({ expiresIn: 60 });
    await t.database.db("upload_sessions").where({ id: expired.session.id }).update({ expires_at: Date.now() - 1000 });
    const afterExpiry = await declare(expired.token);
    expect(afterExpiry.status).toBe(401);
    expect(afterExpiry.body.error.code).toBe("session_expired");

    const wrongSecret = expired.token.slice(0, 20) + "A".repeat(43);
    const unknown = await declare(wrongSecret);
    expect(unknown.status).toBe(401);
    expect(unknown.body.error.code).toBe("session_unknown");
  });

  it("never writes a token to the log", async () => {
    expect(tokens.length).toBeGreaterThan(5);
    const log = t.logs.join("\n");
    for (const token of tokens) expect(log).not.toContain(token.slice(20));
    // A token in a logged URL (the Uppy routes carry it in the path) keeps only its id.
    const token = tokens[0]!;
    expect(scrubSecrets(`GET /v1/uppy/${token}/s3/params`)).toBe(`GET /v1/uppy/${token.slice(0, 20)}[REDACTED]/s3/params`);
  });
});
