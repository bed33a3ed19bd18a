import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminSessionRepository } from "@intake/db";
import { objectKey, type Upload } from "@intake/domain";
import { Reaper } from "@intake/pipeline";
import { createLogger } from "@intake/runtime";
import { waitFor } from "@intake/testkit";
import { signInAs, type AdminClient } from "./admin-session.ts";
import { eicar, pdf, png } from "../pipeline/fixtures.ts";
import { auditOf, CHECKING_ROLES, exists, quarantined, review } from "../pipeline/support/review.ts";
import { startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";

/**
 * The compliance actions through the admin routes (services/api/src/admin/quarantine/actions.ts)
 * on the real stack: the API, a worker with the checking and recheck roles (real clamd),
 * fauxqs, SQLite, Redis. Uploads are quarantined by the pipeline itself.
 */
describe("quarantine actions (fauxqs, sqlite)", () => {
  let s: PipelineStack;
  let compliance: AdminClient;
  let adminA: AdminClient;
  let adminA2: AdminClient; // a second session of the same person
  let adminB: AdminClient;
  let operator: AdminClient;
  let limited: AdminClient;
  let typeMismatch: Upload;
  let eicarText: Upload;
  let eicarInPng: Upload;

  beforeAll(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", workerRoles: "ingest", env: { QUARANTINE_RETENTION_DAYS: "1" } });
    await s.startWorker(`${CHECKING_ROLES},recheck`);
    const api = { url: s.apiUrl, database: s.database, config: s.config };
    compliance = await signInAs(api, "compliance");
    adminA = await signInAs(api, "admin", { email: "admin-a@example.test" });
    // The same user as adminA, signed in a second time: a session of its own.
    const second = await new AdminSessionRepository(s.database.db).start(adminA.user.id, "password", s.config.admin.sessionTtlSeconds);
    adminA2 = withSession(adminA, s.apiUrl, second.token, second.csrfToken);
    adminB = await signInAs(api, "admin", { email: "admin-b@example.test" });
    operator = await signInAs(api, "operator");
    limited = await signInAs(api, "compliance", { tenantIds: ["someone-else"] });
    typeMismatch = await quarantined(s, pdf(), "image/png", "not-a.png");
    eicarText = await quarantined(s, eicar(), "text/plain", "eicar.txt");
    eicarInPng = await quarantined(s, Buffer.concat([png(8, 8, 9), eicar()]), "image/png", "polyglot.png");
    expect([typeMismatch.reason, eicarText.reason, eicarInPng.reason]).toEqual(["type_mismatch", "malware", "malware"]);
  });
  afterAll(async () => s?.close());

  const post = (who: AdminClient, id: string, action: string, json: Record<string, unknown>) => who.request("POST", `/v1/admin/quarantine/${id}/${action}`, { json });
  const bodyOf = async (res: Response) => (await res.json()) as any;

  it("refuses an action without a justification (400), with only spaces, or with too long a one", async () => {
    for (const [json, code] of [
      [{}, "justification_required"],
      [{ justification: "   \n " }, "justification_required"],
      [{ justification: 42 }, "justification_required"],
      [{ justification: "x".repeat(2001) }, "justification_too_long"],
    ] as const) {
      const res = await post(compliance, typeMismatch.id, "release", json);
      expect(res.status).toBe(400);
      expect((await bodyOf(res)).error.code).toBe(code);
    }
    // The page form answers 400 too, as a page naming the code.
    const page = await compliance.request("POST", `/admin/quarantine/${typeMismatch.id}/release`, { form: { justification: "" } });
    expect(page.status).toBe(400);
    expect(await page.text()).toContain('data-code="justification_required"');
    expect((await s.uploads.getById(typeMismatch.id))?.status).toBe("quarantined");
  });

  it("refuses a POST without the CSRF token (form and JSON), an operator, and another tenant's reviewer", async () => {
    const form = await compliance.request("POST", `/admin/quarantine/${typeMismatch.id}/release`, { form: { justification: "because" }, csrf: false });
    expect(form.status).toBe(403);
    const json = await compliance.request("POST", `/v1/admin/quarantine/${typeMismatch.id}/release`, { json: { justification: "because" }, csrf: false });
    expect(json.status).toBe(403);
    expect((await bodyOf(json)).error.code).toBe("csrf_failed");
    const op = await post(operator, typeMismatch.id, "release", { justification: "because" });
    expect(op.status).toBe(403);
    const other = await post(limited, typeMismatch.id, "delete", { justification: "because" });
    expect(other.status).toBe(404);
    expect((await s.uploads.getById(typeMismatch.id))?.status).toBe("quarantined");
  });

  it("never releases an EICAR upload on one person's word, compliance or admin (403 override_required)", async () => {
    for (const who of [compliance, adminA]) {
      const res = await post(who, eicarText.id, "release", { justification: "looks fine to me" });
      expect(res.status).toBe(403);
      expect((await bodyOf(res)).error.code).toBe("override_required");
    }
    const res = await post(compliance, eicarText.id, "overrides", { justification: "I am not an admin" });
    expect(res.status).toBe(403);
    expect((await s.uploads.getById(eicarText.id))?.status).toBe("quarantined");
  });

  it("override: admin A requests, A cannot approve (either session), compliance sees it pending, B approves: rechecked and verified", async () => {
    const requested = await post(adminA, eicarText.id, "overrides", { justification: "vendor test file, confirmed with the tenant" });
    expect(requested.status).toBe(201);
    const o = (await bodyOf(requested)).override;
    expect(o).toMatchObject({ status: "requested", requestedBy: adminA.user.id });
    expect((await post(adminB, eicarText.id, "overrides", { justification: "again" })).status).toBe(409);

    for (const self of [adminA, adminA2]) {
      const res = await post(self, eicarText.id, `overrides/${o.id}/approve`, { justification: "I approve my own" });
      expect(res.status).toBe(403);
      expect((await bodyOf(res)).error.code).toBe("override_needs_second_admin");
    }
    expect((await post(compliance, eicarText.id, `overrides/${o.id}/approve`, { justification: "me" })).status).toBe(403);
    const seen = await compliance.request("GET", `/admin/quarantine/${eicarText.id}`);
    const html = await seen.text();
    expect(html).toContain('id="pending-override"');
    expect(html).not.toContain('id="approve-override"');
    const asB = await (await adminB.request("GET", `/admin/quarantine/${eicarText.id}`)).text();
    expect(asB).toContain('id="approve-override"');

    const approved = await post(adminB, eicarText.id, `overrides/${o.id}/approve`, { justification: "agreed: a test file" });
    expect(approved.status).toBe(202);
    expect(await bodyOf(approved)).toMatchObject({ upload: { status: "rechecking" }, override: { status: "approved", decidedBy: adminB.user.id } });
    const done = await s.waitFor(eicarText.id, ["verified", "quarantined"]);
    expect(done).toMatchObject({ status: "verified", finalKey: objectKey("verified", s.tenant, eicarText.id) });
    expect(await exists(s, objectKey("quarantine", s.tenant, eicarText.id))).toBe(false);
    const detail = (await review(s).releaseDetail(eicarText.id))!;
    expect(detail.request).toMatchObject({ kind: "override", by: adminB.user.id, override: { id: o.id, requestedBy: adminA.user.id, approvedBy: adminB.user.id, signature: eicarText.signature } });
    expect(detail.outcome).toMatchObject({ status: "verified", acceptedSignature: eicarText.signature, acceptedSignatureFound: true });
    // Both people on the record: the request's row, the release's row, the override row.
    expect((await auditOf(s, eicarText.id, "quarantine.override_requested"))[0]).toMatchObject({ actor: "admin", actorId: adminA.user.id, justification: "vendor test file, confirmed with the tenant" });
    expect((await auditOf(s, eicarText.id, "upload.rechecking"))[0]).toMatchObject({ actorId: adminB.user.id, justification: "agreed: a test file", detail: { requestedBy: adminA.user.id, approvedBy: adminB.user.id, overrideId: o.id } });
    expect(await review(s).override(o.id)).toMatchObject({ requestedBy: adminA.user.id, decidedBy: adminB.user.id, status: "approved" });
  });

  it("an override is not approved through an account its requester created (403 override_not_independent), nor the other way round", async () => {
    // Admin A makes a second admin account in the settings, as anyone with the admin role can.
    const made = await adminA.request("POST", "/v1/admin/users", { json: { email: "a-puppet@example.test", role: "admin", password: "puppet password 123" } });
    expect(made.status).toBe(201);
    const puppetId = (await bodyOf(made)).user.id as string;
    const session = await new AdminSessionRepository(s.database.db).start(puppetId, "password", 3600);
    const puppet = (method: string, path: string, json: Record<string, unknown>) =>
      fetch(s.apiUrl + path, { method, headers: { cookie: `intake_admin=${session.token}`, "content-type": "application/json", "x-csrf-token": session.csrfToken }, body: JSON.stringify(json) });

    const o = (await bodyOf(await post(adminA, eicarInPng.id, "overrides", { justification: "tenant says false positive" }))).override;
    const approved = await puppet("POST", `/v1/admin/quarantine/${eicarInPng.id}/overrides/${o.id}/approve`, { justification: "my maker says so" });
    expect(approved.status).toBe(403);
    expect((await bodyOf(approved)).error.code).toBe("override_not_independent");
    expect(await s.uploads.getById(eicarInPng.id)).toMatchObject({ status: "quarantined" });
    expect(await review(s).override(o.id)).toMatchObject({ status: "requested" });
    expect((await post(adminA, eicarInPng.id, `overrides/${o.id}/reject`, { justification: "withdrawn: asking an independent admin" })).status).toBe(200);

    // The other way round: the puppet requests, its maker approves.
    const p = (await bodyOf(await puppet("POST", `/v1/admin/quarantine/${eicarInPng.id}/overrides`, { justification: "please release" }))).override;
    const byMaker = await post(adminA, eicarInPng.id, `overrides/${p.id}/approve`, { justification: "approving my own account's request" });
    expect(byMaker.status).toBe(403);
    expect((await bodyOf(byMaker)).error.code).toBe("override_not_independent");
    expect((await puppet("POST", `/v1/admin/quarantine/${eicarInPng.id}/overrides/${p.id}/reject`, { justification: "withdrawn" })).status).toBe(200);
  });

  it("an override accepts only its signature: EICAR appended to a PNG still fails the image check and stays quarantined", async () => {
    const o = (await bodyOf(await post(adminA, eicarInPng.id, "overrides", { justification: "tenant says false positive" }))).override;
    const res = await post(adminB, eicarInPng.id, `overrides/${o.id}/approve`, { justification: "ok, recheck it" });
    expect(res.status).toBe(202);
    const detail = await waitForOutcome(eicarInPng.id);
    expect(detail.outcome).toMatchObject({ status: "quarantined", reason: "trailing_data", acceptedSignatureFound: true });
    expect(await s.uploads.getById(eicarInPng.id)).toMatchObject({ status: "quarantined", reason: "trailing_data" });
    expect(await exists(s, objectKey("quarantine", s.tenant, eicarInPng.id))).toBe(true);
    expect(await exists(s, objectKey("verified", s.tenant, eicarInPng.id))).toBe(false);
  });

  it("a reviewer releases a non-malware quarantine from the page; the recheck finds the type mismatch again", async () => {
    const res = await compliance.request("POST", `/admin/quarantine/${typeMismatch.id}/release`, { form: { justification: "tenant re-sent the right file type?" } });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/admin/quarantine/${typeMismatch.id}?done=released#actions`);
    const detail = await waitForOutcome(typeMismatch.id);
    expect(detail.outcome).toMatchObject({ status: "quarantined", reason: "type_mismatch" });
    expect((await auditOf(s, typeMismatch.id, "upload.rechecking"))[0]).toMatchObject({ actorId: compliance.user.id, justification: "tenant re-sent the right file type?" });
    expect(await exists(s, objectKey("quarantine", s.tenant, typeMismatch.id))).toBe(true);
  });

  it("delete permanently removes the object, is idempotent and recorded once; nothing is released after it", async () => {
    const victim = await quarantined(s, pdf("delete me"), "image/png");
    const key = objectKey("quarantine", s.tenant, victim.id);
    expect(await exists(s, key)).toBe(true);
    const first = await post(compliance, victim.id, "delete", { justification: "tenant asked for erasure" });
    expect(first.status).toBe(200);
    expect(await bodyOf(first)).toMatchObject({ deleted: true, alreadyDeleted: false });
    expect(await exists(s, key)).toBe(false);
    const again = await post(compliance, victim.id, "delete", { justification: "once more" });
    expect(await bodyOf(again)).toMatchObject({ deleted: true, alreadyDeleted: true });
    expect(await auditOf(s, victim.id, "quarantine.deleted")).toMatchObject([{ actorId: compliance.user.id, justification: "tenant asked for erasure" }]);
    expect((await review(s).state(victim.id))?.purgedAt).toBeInstanceOf(Date);
    const release = await post(compliance, victim.id, "release", { justification: "too late" });
    expect(release.status).toBe(409);
    expect((await bodyOf(release)).error.code).toBe("upload_purged");
  });

  it("retention: refuses the past and anything not later than in force; an extension keeps the bytes past the normal purge", async () => {
    const kept = await quarantined(s, pdf("keep me"), "image/png");
    const purged = await quarantined(s, pdf("purge me"), "image/png");
    const past = await post(compliance, kept.id, "retention", { until: "2020-01-01", justification: "legal hold" });
    expect((await bodyOf(past)).error.code).toBe("retention_in_past");
    const tomorrow = new Date(Date.now() + 3600_000).toISOString();
    const notLater = await post(compliance, kept.id, "retention", { until: tomorrow, justification: "legal hold" });
    expect((await bodyOf(notLater)).error.code).toBe("retention_not_later");
    expect((await post(compliance, kept.id, "retention", { until: "31-12-2030", justification: "legal hold" })).status).toBe(400);
    const until = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
    const ok = await post(compliance, kept.id, "retention", { until, justification: "legal hold, case 42" });
    expect(ok.status).toBe(200);
    expect((await auditOf(s, kept.id, "quarantine.retention_extended"))[0]).toMatchObject({ actorId: compliance.user.id, justification: "legal hold, case 42" });

    // Two days on (retention is one day here): the reaper purges one, keeps the extended one.
    const silent = createLogger({ level: "silent", name: "test" });
    const reaper = new Reaper({ repository: s.uploads, audit: s.audit, store: s.storage.store, queues: s.queues, logger: silent, settings: s.config.reaper });
    await reaper.reap(new Date(Date.now() + 2 * 86_400_000));
    expect(await exists(s, objectKey("quarantine", s.tenant, purged.id))).toBe(false);
    expect(await exists(s, objectKey("quarantine", s.tenant, kept.id))).toBe(true);
    // Past the extension it goes too.
    await reaper.reap(new Date(Date.now() + 32 * 86_400_000));
    expect(await exists(s, objectKey("quarantine", s.tenant, kept.id))).toBe(false);
  });

  async function waitForOutcome(id: string) {
    return waitFor(
      async () => {
        const d = await review(s).releaseDetail(id);
        const u = await s.uploads.getById(id);
        return d?.outcome && u?.status !== "rechecking" && Date.parse(d.outcome.at) >= Date.parse(d.request.at) ? d : null;
      },
      { timeoutMs: 30_000, intervalMs: 50, message: `the recheck of ${id} to finish` },
    );
  }
});

/** The same admin in another session (another browser): its own cookie and CSRF token. */
function withSession(base: AdminClient, apiUrl: string, token: string, csrfToken: string): AdminClient {
  const cookie = `intake_admin=${token}`;
  return {
    user: base.user,
    cookie,
    csrfToken,
    request: (method, path, r = {}) => {
      const headers: Record<string, string> = { cookie, ...r.headers };
      let body: string | undefined;
      if (r.json !== undefined) {
        body = JSON.stringify(r.json);
        headers["content-type"] = "application/json";
        if (r.csrf !== false) headers["x-csrf-token"] = csrfToken;
      }
      return fetch(apiUrl + path, { method, headers, body, redirect: "manual" });
    },
  };
}
