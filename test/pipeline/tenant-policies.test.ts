import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiKeyRepository } from "@intake/db";
import { png, zip } from "./fixtures.ts";
import { sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";
import { signInAs, type AdminClient } from "../api/admin-session.ts";

/**
 * The pipeline judges an upload by the policy recorded on it at create, not by the tenant's
 * policy when its bytes arrive: real API (admin API for the changes), real workers, clamd.
 */
describe.each(["sqlite", "pg"] as const)("tenant policies in the pipeline on fauxqs with %s", (database) => {
  let s: PipelineStack;
  let admin: AdminClient;
  let otherKey: string;
  beforeAll(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database });
    admin = await signInAs({ url: s.apiUrl, database: s.database, config: s.config }, "admin");
    otherKey = (await new ApiKeyRepository(s.database.db).create("globex", "policy-test")).key;
  });
  afterAll(async () => s?.close());

  const setPolicy = async (tenant: string, policy: Record<string, unknown>) => {
    const res = await admin.request("PUT", `/v1/admin/tenants/${tenant}/policy`, { json: policy });
    if (res.status !== 200) throw new Error(`policy change failed: ${res.status} ${await res.text()}`);
    return ((await res.json()) as { version: number }).version;
  };
  const declare = async (key: string, contentType: string, bytes: Buffer) => {
    const res = await fetch(`${s.apiUrl}/v1/uploads`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify({ filename: "f.bin", contentType, size: bytes.length, sha256: sha256Of(bytes) }) });
    return { status: res.status, body: (await res.json()) as any };
  };
  const send = async (created: { url: string; headers: Record<string, string> }, bytes: Buffer) => {
    const put = await fetch(created.url, { method: "PUT", headers: created.headers, body: bytes });
    expect(put.status).toBe(200);
  };

  it("judges an upload by the policy it was declared under: declared under A, changed to B, arrived, verdict per A", async () => {
    const archive = zip([{ name: "readme.txt", data: "hello" }]);
    const big = png(64, 64);
    const versionA = await setPolicy("acme", { acceptArchives: true, maxSize: 1_000_000 });
    // Declared under A: archives accepted and 1 MB allowed.
    const zipUpload = await declare(s.apiKey, "application/zip", archive);
    const pngUpload = await declare(s.apiKey, "image/png", big);
    expect([zipUpload.status, pngUpload.status]).toEqual([201, 201]);
    // Policy B refuses both: no archives, and a maximum below the PNG's size.
    const versionB = await setPolicy("acme", { acceptArchives: false, maxSize: big.length - 1 });
    expect(versionB).toBe(versionA + 1);
    expect((await declare(s.apiKey, "application/zip", archive)).body.error.code).toBe("content_type_not_allowed");
    expect((await declare(s.apiKey, "image/png", big)).body.error.code).toBe("size_too_large");
    // The objects arrive after the change: verdicts per A.
    await send(zipUpload.body, archive);
    await send(pngUpload.body, big);
    for (const id of [zipUpload.body.upload.id, pngUpload.body.upload.id]) {
      const done = await s.waitFor(id, ["verified", "quarantined"]);
      expect({ status: done.status, reason: done.reason, version: done.policy?.version }).toEqual({ status: "verified", reason: null, version: versionA });
    }
    // And the other way round: declared under B (no archives), changed back to accept them,
    // a ZIP sent in place of a declared PNG is judged by B: an archive, refused as such.
    const underB = await declare(s.apiKey, "image/png", png(4, 4));
    expect(underB.status).toBe(201);
    await setPolicy("acme", { acceptArchives: true });
    const smuggled = zip([{ name: "a.txt", data: "x".repeat(50) }]);
    // The declared size and sha256 bind the PUT; declare the ZIP's own to get it stored.
    const asPng = await declare(s.apiKey, "image/png", smuggled);
    await setPolicy("acme", { acceptArchives: false });
    const asPngAfter = await declare(s.apiKey, "image/png", smuggled);
    await send(asPngAfter.body, smuggled);
    const judged = await s.waitFor(asPngAfter.body.upload.id, ["verified", "quarantined"]);
    expect({ status: judged.status, reason: judged.reason }).toEqual({ status: "quarantined", reason: "type_not_allowed" });
    expect(judged.reasonDetail).toMatch(/an archive, and this upload's policy accepts no archives/);
    await send(asPng.body, smuggled);
    const mismatch = await s.waitFor(asPng.body.upload.id, ["verified", "quarantined"]);
    // Under the policy that accepted archives, the same bytes are only a type mismatch.
    expect({ status: mismatch.status, reason: mismatch.reason }).toEqual({ status: "quarantined", reason: "type_mismatch" });
    await send(underB.body, png(4, 4));
    expect((await s.waitFor(underB.body.upload.id, ["verified", "quarantined"])).status).toBe("verified");
  });

  it("accepts archives for one tenant and refuses them for another, at create and on arrival", async () => {
    await setPolicy("acme", { acceptArchives: true });
    await setPolicy("globex", { acceptArchives: false });
    const archive = zip([{ name: "data.csv", data: "a,b\n1,2\n" }]);
    const accepted = await declare(s.apiKey, "application/zip", archive);
    expect(accepted.status).toBe(201);
    expect((await declare(otherKey, "application/zip", archive)).body.error).toMatchObject({ code: "content_type_not_allowed", details: { acceptArchives: false } });
    await send(accepted.body, archive);
    expect((await s.waitFor(accepted.body.upload.id, ["verified", "quarantined"])).status).toBe("verified");
    // A PNG with a ZIP appended (a polyglot) for the tenant without archives: not a clean PNG.
    const polyglot = Buffer.concat([png(8, 8), archive]);
    const sneaky = await declare(otherKey, "image/png", polyglot);
    expect(sneaky.status).toBe(201);
    await send(sneaky.body, polyglot);
    const done = await s.waitFor(sneaky.body.upload.id, ["verified", "quarantined"]);
    expect(done.status).toBe("quarantined");
  });
});
