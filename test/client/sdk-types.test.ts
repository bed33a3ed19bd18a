import { afterAll, describe, expect, it } from "vitest";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { IntakeClient, TERMINAL_STATUSES, UPLOAD_STATUSES } from "@intake/client/node";
import { beforeAllOrFailEach } from "@intake/test";
import { png, zip } from "../pipeline/fixtures.ts";
import { MiB, startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";

/**
 * The SDK's types are the types of @intake/contract's schemas, from which the served
 * document's schemas are generated: they cannot name other fields. What remains to check is
 * that the SDK's calls return what the document says: every value they return from the real
 * API must validate against the schema the document gives for that response, with object
 * schemas closed (a field the API sends and the document does not name fails).
 */
type Schema = { properties?: Record<string, unknown>; allOf?: Schema[]; enum?: string[] };

function closed(schema: unknown, allOfMember = false): unknown {
  if (Array.isArray(schema)) return schema.map((s) => closed(s));
  if (!schema || typeof schema !== "object") return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === "properties" || k === "schemas") out[k] = Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, closed(s)]));
    // allOf members are closed together, by the schema that combines them.
    else if (k === "allOf") out[k] = (v as unknown[]).map((m) => closed(m, true));
    else out[k] = closed(v);
  }
  if (!allOfMember && ("properties" in out || "allOf" in out) && !("additionalProperties" in out)) out.unevaluatedProperties = false;
  return out;
}

describe("SDK types against the served OpenAPI document", () => {
  let s: PipelineStack;
  let client: IntakeClient;
  let doc: { components: { schemas: Record<string, Schema> } };
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);

  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "rgw", database: "pg", env: { MULTIPART_THRESHOLD_BYTES: String(5 * MiB), PART_SIZE_BYTES: String(5 * MiB) } });
    client = new IntakeClient({ baseUrl: s.apiUrl, apiKey: s.apiKey, multipartThresholdBytes: 5 * MiB });
    doc = (await (await fetch(`${s.apiUrl}/openapi.json`)).json()) as typeof doc;
    ajv.addSchema(closed({ ...doc, $id: "doc" }) as object);
  });
  afterAll(async () => s?.close());

  const conforms = (schemaName: string, value: unknown) => {
    const validate = ajv.getSchema(`doc#/components/schemas/${schemaName}`)!;
    expect(validate(value) ? [] : validate.errors!.map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`), schemaName).toEqual([]);
  };

  it("knows the same statuses as the document", () => {
    expect([...UPLOAD_STATUSES].sort()).toEqual([...doc.components.schemas.Status!.enum!].sort());
    expect(TERMINAL_STATUSES.every((t) => UPLOAD_STATUSES.includes(t))).toBe(true);
  });

  it("what every SDK call returns validates against the document", async () => {
    const single = await client.upload(png(8, 8), { filename: "a.png", contentType: "image/png", metadata: { k: "v" } });
    conforms("Upload", single.upload);
    const created = await client.createUpload({ filename: "b.png", contentType: "image/png", size: 20 });
    conforms("SingleUploadCreated", created);
    const big = zip([{ name: "x", data: Buffer.alloc(6 * MiB, 1) }]);
    const mp = await client.createUpload({ filename: "c.zip", contentType: "application/zip", size: big.length });
    conforms("MultipartUploadCreated", mp);
    const signed = await client.signParts(mp.upload.id, { partNumbers: [1, 2] });
    const partsResponse = ajv.getSchema("doc#/paths/~1v1~1uploads~1{id}~1parts/post/responses/200/content/application~1json/schema")!;
    expect(partsResponse({ parts: signed }), JSON.stringify(partsResponse.errors)).toBe(true);
    const put = await fetch(signed[0]!.url, { method: "PUT", headers: signed[0]!.headers, body: big.subarray(0, 5 * MiB) });
    expect(put.status).toBe(200);
    const stored = await client.listParts(mp.upload.id);
    const listParts = ajv.getSchema("doc#/paths/~1v1~1uploads~1{id}~1parts/get/responses/200/content/application~1json/schema")!;
    expect(listParts({ parts: stored }), JSON.stringify(listParts.errors)).toBe(true);
    conforms("Upload", await client.abort(mp.upload.id));

    const verdict = await client.waitForVerdict(single.upload.id, { timeoutMs: 30_000 });
    conforms("Upload", verdict.upload);
    conforms("Upload", await client.get(single.upload.id, { wait: 1 }));
    const page = await client.list({ limit: 2 });
    const list = ajv.getSchema("doc#/paths/~1v1~1uploads/get/responses/200/content/application~1json/schema")!;
    expect(list(page), JSON.stringify(list.errors)).toBe(true);
    const dl = await client.downloadUrl(single.upload.id);
    expect(Date.parse(dl.expiresAt)).toBeGreaterThan(Date.now());
    expect((await fetch(dl.url)).status).toBe(200);

    const minted = await client.createUploadSession({ maxFiles: 2, allowedTypes: ["image/png"] });
    const mint = ajv.getSchema("doc#/paths/~1v1~1upload-sessions/post/responses/201/content/application~1json/schema")!;
    expect(mint(minted), JSON.stringify(mint.errors)).toBe(true);
    const browser = new IntakeClient({ baseUrl: s.apiUrl, sessionToken: minted.token });
    const viaSession = await browser.upload(png(8, 8, 3), { filename: "s.png", contentType: "image/png" });
    expect((await browser.waitForVerdict(viaSession.upload.id, { timeoutMs: 30_000 })).status).toBe("verified");
    conforms("UploadSession", await client.revokeUploadSession(minted.session.id));
    await expect(browser.get(viaSession.upload.id)).rejects.toMatchObject({ status: 401, code: "session_revoked" });

    const err = await client.get("nope").catch((e) => e);
    conforms("Error", { error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } });
  });
});
