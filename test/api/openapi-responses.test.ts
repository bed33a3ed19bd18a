import { createHash } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { beforeAllOrFailEach } from "@intake/test";
import { markVerified, putTo, randomBytesOf, startApiUnderTest, type ApiResponse, type ApiUnderTest } from "./harness.ts";

/**
 * The OpenAPI document describes what the API really answers: every response the running
 * API gives here (fauxqs, SQLite) must have its status documented for that operation and
 * a body valid against the documented schema. Validated by Ajv (JSON Schema 2020-12, the
 * dialect of OpenAPI 3.1) against the document the API itself serves. Object schemas that
 * list their properties are closed for this check (unevaluatedProperties: false): a field
 * the API returns and the document does not name fails too.
 */
type Doc = { paths: Record<string, Record<string, { responses: Record<string, { headers?: Record<string, object>; content?: Record<string, { schema: object }> }> }>> };

function closed(schema: unknown, allOfMember = false): unknown {
  if (Array.isArray(schema)) return schema.map((s) => closed(s));
  if (!schema || typeof schema !== "object") return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === "properties" || k === "$defs" || k === "schemas") out[k] = Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, closed(s)]));
    // allOf members are closed together, by the schema that combines them.
    else if (k === "allOf") out[k] = (v as unknown[]).map((m) => closed(m, true));
    else out[k] = closed(v);
  }
  if (!allOfMember && ("properties" in out || "allOf" in out) && !("additionalProperties" in out)) out.unevaluatedProperties = false;
  return out;
}

describe("API responses match the OpenAPI document", () => {
  let t: ApiUnderTest;
  let key: string;
  let doc: Doc;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  const validators = new Map<string, ValidateFunction>();

  beforeAllOrFailEach(async () => {
    t = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { MULTIPART_THRESHOLD_BYTES: String(5 * 1024 * 1024), PART_SIZE_BYTES: String(5 * 1024 * 1024) } });
    key = await t.newKey("acme");
    const served = await t.call("GET", "/openapi.json");
    expect(served.status).toBe(200);
    doc = served.body as Doc;
    ajv.addSchema(closed({ ...doc, $id: "intake-openapi" }) as object);
  });
  afterAll(async () => t?.close());

  /** Fails unless `res` is a documented status of the operation with a body its schema accepts. */
  function conforms(method: string, template: string, res: ApiResponse): void {
    const operation = doc.paths[template]?.[method.toLowerCase()];
    expect(operation, `${method} ${template} is documented`).toBeDefined();
    const documented = operation!.responses[String(res.status)];
    expect(documented, `${method} ${template} answered ${res.status} ${JSON.stringify(res.body)?.slice(0, 200)}; documented: ${Object.keys(operation!.responses)}`).toBeDefined();
    for (const header of Object.keys(documented!.headers ?? {})) {
      expect(res.headers.get(header), `${method} ${template} ${res.status}: documented header ${header}`).not.toBeNull();
    }
    const content = documented!.content?.["application/json"];
    // Documented without a body schema (the 302, liveness, the document itself): nothing more to check.
    if (!content) return;
    const pointer = `intake-openapi#/paths/${template.replace(/~/g, "~0").replace(/\//g, "~1")}/${method.toLowerCase()}/responses/${res.status}/content/application~1json/schema`;
    let validate = validators.get(pointer);
    if (!validate) {
      validate = ajv.getSchema(pointer)!;
      validators.set(pointer, validate);
    }
    const valid = validate(res.body);
    expect(valid ? [] : validate.errors!.map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`), `${method} ${template} ${res.status}`).toEqual([]);
  }

  it("health, readiness and the document itself", async () => {
    conforms("GET", "/healthz", await t.call("GET", "/healthz"));
    conforms("GET", "/readyz", await t.call("GET", "/readyz"));
    conforms("GET", "/openapi.json", await t.call("GET", "/openapi.json"));
  });

  it("a single-PUT upload from creation to download", async () => {
    const bytes = randomBytesOf(100);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    const body = { filename: "photo.png", contentType: "image/png", size: 100, sha256, metadata: { album: "a" } };
    const created = await t.call("POST", "/v1/uploads", { key, body, headers: { "idempotency-key": "openapi-single" } });
    expect(created.status).toBe(201);
    conforms("POST", "/v1/uploads", created);
    const replay = await t.call("POST", "/v1/uploads", { key, body, headers: { "idempotency-key": "openapi-single" } });
    expect(replay.status).toBe(200);
    conforms("POST", "/v1/uploads", replay);
    const id: string = created.body.upload.id;

    conforms("GET", "/v1/uploads/{id}", await t.call("GET", `/v1/uploads/${id}`, { key }));
    conforms("GET", "/v1/uploads/{id}/download", await t.call("GET", `/v1/uploads/${id}/download`, { key }));
    expect((await putTo(created.body, bytes)).status).toBe(200);
    const done = await t.call("POST", `/v1/uploads/${id}/complete`, { key });
    expect(done.status).toBe(200);
    conforms("POST", "/v1/uploads/{id}/complete", done);
    conforms("GET", "/v1/uploads", await t.call("GET", "/v1/uploads?limit=1", { key }));

    await markVerified(t, id, "image/png");
    const verified = await t.call("GET", `/v1/uploads/${id}`, { key });
    expect(verified.body.upload.status).toBe("verified");
    conforms("GET", "/v1/uploads/{id}", verified);
    const download = await t.call("GET", `/v1/uploads/${id}/download`, { key });
    expect(download.status).toBe(302);
    conforms("GET", "/v1/uploads/{id}/download", download);
    conforms("DELETE", "/v1/uploads/{id}", await t.call("DELETE", `/v1/uploads/${id}`, { key }));
  });

  it("a multipart upload: creation, part URLs, stored parts, abort", async () => {
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "big.zip", contentType: "application/zip", size: 11 * 1024 * 1024 } });
    expect(created.status).toBe(201);
    conforms("POST", "/v1/uploads", created);
    const id: string = created.body.upload.id;
    const parts = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { partNumbers: [1, 2] } });
    expect(parts.status).toBe(200);
    conforms("POST", "/v1/uploads/{id}/parts", parts);
    const withChecksums = await t.call("POST", `/v1/uploads/${id}/parts`, { key, body: { parts: [{ partNumber: 1, md5: "XUFAKrxLKna5cZ2REBfFkg==", sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" }] } });
    expect(withChecksums.status).toBe(200);
    conforms("POST", "/v1/uploads/{id}/parts", withChecksums);
    conforms("GET", "/v1/uploads/{id}/parts", await t.call("GET", `/v1/uploads/${id}/parts`, { key }));
    const aborted = await t.call("DELETE", `/v1/uploads/${id}`, { key });
    expect(aborted.status).toBe(200);
    conforms("DELETE", "/v1/uploads/{id}", aborted);
    conforms("GET", "/v1/uploads", await t.call("GET", "/v1/uploads?status=aborted", { key }));
  });

  it("errors: 400, 401, 404, 409, 413, 415", async () => {
    const cases: [string, string, string, Parameters<ApiUnderTest["call"]>[2]][] = [
      ["POST", "/v1/uploads", "/v1/uploads", { key, body: { filename: "a.png", contentType: "image/png", size: 0 } }],
      ["POST", "/v1/uploads", "/v1/uploads", { body: { filename: "a.png", contentType: "image/png", size: 1 } }],
      ["POST", "/v1/uploads", "/v1/uploads", { key, body: { filename: "a.png", contentType: "image/png", size: 1, metadata: { x: "y".repeat(100_000) } } }],
      ["POST", "/v1/uploads", "/v1/uploads", { key, rawBody: "a=1", headers: { "content-type": "application/x-www-form-urlencoded" } }],
      ["GET", "/v1/uploads/{id}", "/v1/uploads/nonexistent", { key }],
      ["GET", "/v1/uploads", "/v1/uploads?status=nope", { key }],
    ];
    for (const [method, template, path, o] of cases) conforms(method, template, await t.call(method, path, o));
    const created = await t.call("POST", "/v1/uploads", { key, body: { filename: "a.png", contentType: "image/png", size: 5 } });
    const missing = await t.call("POST", `/v1/uploads/${created.body.upload.id}/complete`, { key });
    expect(missing.status).toBe(409);
    conforms("POST", "/v1/uploads/{id}/complete", missing);
  });
});
