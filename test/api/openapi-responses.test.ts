import { createHash } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { beforeAllOrFailEach } from "@intake/test";
import { markVerified, putTo, randomBytesOf, startApiUnderTest, type ApiResponse, type ApiUnderTest } from "./harness.ts";

/**
 * The OpenAPI document describes what the API really answers: every response the running
 * API gives here (fauxqs, SQLite) must have its status documented for that operation and a
 * body valid against the documented schema, validated by Ajv (JSON Schema 2020-12, the
 * dialect of OpenAPI 3.1) against the document exactly as the API serves it. Its schemas are
 * generated from @intake/contract with every object closed (additionalProperties: false), so
 * a field the API sends and the contract does not name fails here, and so does one missing.
 * Every public operation is exercised at least once with a success.
 */
type Operation = { responses: Record<string, { headers?: Record<string, object>; content?: Record<string, { schema: object }> }> };
type Doc = { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, unknown> } };

/** Every object schema with named properties, anywhere in the tree, with where it is. */
function objectSchemas(node: unknown, at: string, out: [string, Record<string, unknown>][] = []): [string, Record<string, unknown>][] {
  if (Array.isArray(node)) node.forEach((n, i) => objectSchemas(n, `${at}/${i}`, out));
  else if (node && typeof node === "object") {
    const o = node as Record<string, unknown>;
    if (o.type === "object" && o.properties) out.push([at, o]);
    for (const [k, v] of Object.entries(o)) objectSchemas(v, `${at}/${k}`, out);
  }
  return out;
}

describe("API responses match the OpenAPI document", () => {
  let t: ApiUnderTest;
  let key: string;
  let doc: Doc;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  const validators = new Map<string, ValidateFunction>();
  const succeeded = new Set<string>();

  beforeAllOrFailEach(async () => {
    t = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { MULTIPART_THRESHOLD_BYTES: String(5 * 1024 * 1024), PART_SIZE_BYTES: String(5 * 1024 * 1024) } });
    key = await t.newKey("acme");
    const served = await t.call("GET", "/openapi.json");
    expect(served.status).toBe(200);
    doc = served.body as Doc;
    ajv.addSchema({ ...doc, $id: "intake-openapi" });
  });
  afterAll(async () => t?.close());

  function validatorFor(method: string, template: string, status: number): ValidateFunction | undefined {
    const operation = doc.paths[template]?.[method.toLowerCase()];
    expect(operation, `${method} ${template} is documented`).toBeDefined();
    const documented = operation!.responses[String(status)];
    expect(documented, `${method} ${template} ${status} is documented (documented: ${Object.keys(operation!.responses)})`).toBeDefined();
    // Documented without a body schema (the document itself): nothing more to check.
    if (!documented!.content?.["application/json"]) return undefined;
    const pointer = `intake-openapi#/paths/${template.replace(/~/g, "~0").replace(/\//g, "~1")}/${method.toLowerCase()}/responses/${status}/content/application~1json/schema`;
    let validate = validators.get(pointer);
    if (!validate) {
      validate = ajv.getSchema(pointer)!;
      validators.set(pointer, validate);
    }
    return validate;
  }

  const errorsOf = (validate: ValidateFunction, body: unknown) => (validate(body) ? [] : validate.errors!.map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`));

  /** Fails unless `res` is a documented status of the operation with a body its schema accepts. */
  function conforms(method: string, template: string, res: ApiResponse): void {
    const documented = doc.paths[template]?.[method.toLowerCase()]?.responses[String(res.status)];
    for (const header of Object.keys(documented?.headers ?? {})) {
      expect(res.headers.get(header), `${method} ${template} ${res.status}: documented header ${header}`).not.toBeNull();
    }
    const validate = validatorFor(method, template, res.status);
    if (validate) expect(errorsOf(validate, res.body), `${method} ${template} ${res.status} ${JSON.stringify(res.body)?.slice(0, 300)}`).toEqual([]);
    if (res.status < 400) succeeded.add(`${method} ${template}`);
  }

  /** The same response with one field more (at the top and in a nested object) must not validate. */
  function refusesAnExtraField(method: string, template: string, res: ApiResponse, nested?: (body: any) => Record<string, unknown>): void {
    const validate = validatorFor(method, template, res.status)!;
    expect(validate(res.body), `${method} ${template}: the real body validates`).toBe(true);
    expect(validate({ ...res.body, undocumented: 1 }), `${method} ${template}: an extra top-level field fails`).toBe(false);
    if (nested) {
      const copy = structuredClone(res.body);
      nested(copy).undocumented = 1;
      expect(validate(copy), `${method} ${template}: an extra nested field fails`).toBe(false);
    }
    // And a field the schema requires, taken away.
    const [first] = Object.keys(res.body);
    const { [first!]: _dropped, ...without } = res.body;
    expect(validate(without), `${method} ${template}: without ${first} it fails`).toBe(false);
  }

  it("closes every object schema of the document: an undocumented field cannot pass", () => {
    const objects = objectSchemas(doc.components.schemas, "#/components/schemas");
    expect(objects.length).toBeGreaterThan(20);
    expect(objects.filter(([, s]) => s.additionalProperties !== false).map(([at]) => at)).toEqual([]);
  });

  it("health, readiness and the document itself", async () => {
    conforms("GET", "/healthz", await t.call("GET", "/healthz"));
    const ready = await t.call("GET", "/readyz");
    conforms("GET", "/readyz", ready);
    refusesAnExtraField("GET", "/readyz", ready, (b) => b.scanner);
    conforms("GET", "/openapi.json", await t.call("GET", "/openapi.json"));
  });

  it("a single-PUT upload from creation to download, with the long-poll", async () => {
    const bytes = randomBytesOf(100);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const body = { filename: "photo.png", contentType: "image/png", size: 100, sha256, metadata: { album: "a" } };
    const created = await t.call("POST", "/v1/uploads", { key, body, headers: { "idempotency-key": "openapi-single" } });
    expect(created.status).toBe(201);
    conforms("POST", "/v1/uploads", created);
    refusesAnExtraField("POST", "/v1/uploads", created, (b) => b.upload.result);
    const replay = await t.call("POST", "/v1/uploads", { key, body, headers: { "idempotency-key": "openapi-single" } });
    expect(replay.status).toBe(200);
    conforms("POST", "/v1/uploads", replay);
    const id: string = created.body.upload.id;

    const got = await t.call("GET", `/v1/uploads/${id}`, { key });
    conforms("GET", "/v1/uploads/{id}", got);
    refusesAnExtraField("GET", "/v1/uploads/{id}", got, (b) => b.upload);
    conforms("GET", "/v1/uploads/{id}", await t.call("GET", `/v1/uploads/${id}?wait=1`, { key }));
    conforms("GET", "/v1/uploads/{id}/download", await t.call("GET", `/v1/uploads/${id}/download`, { key }));
    expect((await putTo(created.body, bytes)).status).toBe(200);
    const done = await t.call("POST", `/v1/uploads/${id}/complete`, { key });
    expect(done.status).toBe(200);
    conforms("POST", "/v1/uploads/{id}/complete", done);
    const page = await t.call("GET", "/v1/uploads?limit=1", { key });
    conforms("GET", "/v1/uploads", page);
    refusesAnExtraField("GET", "/v1/uploads", page, (b) => b.items[0].multipart ?? b.items[0]);

    await markVerified(t, id, "image/png");
    const verified = await t.call("GET", `/v1/uploads/${id}`, { key });
    expect(verified.body.upload.status).toBe("verified");
    conforms("GET", "/v1/uploads/{id}", verified);
    const download = await t.call("GET", `/v1/uploads/${id}/download`, { key });
    expect(download.status).toBe(302);
    conforms("GET", "/v1/uploads/{id}/download", download);
    refusesAnExtraField("GET", "/v1/uploads/{id}/download", download);
    conforms("DELETE", "/v1/uploads/{id}", await t.call("DELETE", `/v1/uploads/${id}`, { key }));
  });

  it("a presigned POST upload", async () => {
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "form.png", contentType: "image/png", size: 10, method: "POST" } });
    expect([created.status, created.body.method]).toEqual([201, "POST"]);
    conforms("POST", "/v1/uploads", created);
    refusesAnExtraField("POST", "/v1/uploads", created, (b) => b.upload);
  });

  it("a multipart upload: creation, part URLs, stored parts, abort", async () => {
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "big.zip", contentType: "application/zip", size: 11 * 1024 * 1024 } });
    expect(created.status).toBe(201);
    conforms("POST", "/v1/uploads", created);
    refusesAnExtraField("POST", "/v1/uploads", created, (b) => b.upload.multipart);
    const id: string = created.body.upload.id;
    const parts = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { partNumbers: [1, 2] } });
    expect(parts.status).toBe(200);
    conforms("POST", "/v1/uploads/{id}/parts", parts);
    refusesAnExtraField("POST", "/v1/uploads/{id}/parts", parts, (b) => b.parts[0]);
    const withChecksums = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { parts: [{ partNumber: 1, md5: "XUFAKrxLKna5cZ2REBfFkg==", sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" }] } });
    expect(withChecksums.status).toBe(200);
    conforms("POST", "/v1/uploads/{id}/parts", withChecksums);
    // fauxqs has no ListParts: 501, documented.
    conforms("GET", "/v1/uploads/{id}/parts", await t.call("GET", `/v1/uploads/${id}/parts`, { key }));
    const aborted = await t.call("DELETE", `/v1/uploads/${id}`, { key });
    expect(aborted.status).toBe(200);
    conforms("DELETE", "/v1/uploads/{id}", aborted);
    conforms("GET", "/v1/uploads", await t.call("GET", "/v1/uploads?status=aborted", { key }));
  });

  it("upload sessions: mint, use, revoke", async () => {
    const minted = await t.call("POST", "/v1/upload-sessions", { key, body: { maxFiles: 2, allowedTypes: ["image/png"], metadata: { user: "u1" } } });
    expect(minted.status).toBe(201);
    conforms("POST", "/v1/upload-sessions", minted);
    refusesAnExtraField("POST", "/v1/upload-sessions", minted, (b) => b.session);
    const token: string = minted.body.token;
    const created = await t.call("POST", "/v1/uploads", { key: token, body: { filename: "s.png", contentType: "image/png", size: 10 } });
    expect(created.status).toBe(201);
    conforms("POST", "/v1/uploads", created);
    conforms("GET", "/v1/uploads/{id}", await t.call("GET", `/v1/uploads/${created.body.upload.id}`, { key: token }));
    const revoked = await t.call("DELETE", `/v1/upload-sessions/${minted.body.session.id}`, { key });
    expect(revoked.status).toBe(200);
    conforms("DELETE", "/v1/upload-sessions/{id}", revoked);
    refusesAnExtraField("DELETE", "/v1/upload-sessions/{id}", revoked, (b) => b.session);
    const refused = await t.call("GET", `/v1/uploads/${created.body.upload.id}`, { key: token });
    expect([refused.status, refused.body.error.code]).toEqual([401, "session_revoked"]);
    conforms("GET", "/v1/uploads/{id}", refused);
    const listed = await t.call("GET", "/v1/uploads", { key: (await t.call("POST", "/v1/upload-sessions", { key })).body.token });
    expect(listed.status).toBe(403);
    conforms("GET", "/v1/uploads", listed);
  });

  it("errors: 400, 401, 404, 409, 413, 415", async () => {
    const cases: [string, string, string, Parameters<ApiUnderTest["call"]>[2]][] = [
      ["POST", "/v1/uploads", "/v1/uploads", { key, body: { filename: "a.png", contentType: "image/png", size: 0 } }],
      ["POST", "/v1/uploads", "/v1/uploads", { key, body: { filename: "a.png", contentType: "image/png", size: 1, bucket: "x" } }],
      ["POST", "/v1/uploads", "/v1/uploads", { body: { filename: "a.png", contentType: "image/png", size: 1 } }],
      ["POST", "/v1/uploads", "/v1/uploads", { key, body: { filename: "a.png", contentType: "image/png", size: 1, metadata: { x: "y".repeat(100_000) } } }],
      ["POST", "/v1/uploads", "/v1/uploads", { key, rawBody: "a=1", headers: { "content-type": "application/x-www-form-urlencoded" } }],
      ["GET", "/v1/uploads/{id}", "/v1/uploads/nonexistent", { key }],
      ["GET", "/v1/uploads/{id}", "/v1/uploads/nonexistent?wait=21", { key }],
      ["GET", "/v1/uploads", "/v1/uploads?status=nope", { key }],
      ["POST", "/v1/upload-sessions", "/v1/upload-sessions", { key, body: { maxFiles: "ten" } }],
    ];
    for (const [method, template, path, o] of cases) {
      const res = await t.call(method, path, o);
      expect(res.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      conforms(method, template, res);
    }
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "a.png", contentType: "image/png", size: 5 } });
    const missing = await t.call("POST", `/v1/uploads/${created.body.upload.id}/complete`, { key });
    expect(missing.status).toBe(409);
    conforms("POST", "/v1/uploads/{id}/complete", missing);
    refusesAnExtraField("POST", "/v1/uploads/{id}/complete", missing, (b) => b.error);
  });

  it("exercised every public operation with a success", () => {
    const publicOperations = Object.entries(doc.paths)
      .filter(([path]) => !path.startsWith("/v1/uppy/"))
      .flatMap(([path, item]) => Object.keys(item).map((m) => `${m.toUpperCase()} ${path}`));
    expect(publicOperations.length).toBeGreaterThanOrEqual(13);
    expect(publicOperations.filter((op) => !succeeded.has(op) && op !== "GET /v1/uploads/{id}/parts")).toEqual([]);
  });
});
