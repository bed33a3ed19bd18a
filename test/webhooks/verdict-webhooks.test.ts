import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it, vi } from "vitest";
import { Webhook } from "standardwebhooks";
import { AuditLog, WebhookRepository, type NewUpload } from "@intake/db";
import { createLogger, type Config } from "@intake/runtime";
import { waitFor } from "@intake/testkit";
import { WEBHOOK_QUEUE, WebhookQueue } from "@intake/webhooks";
import { startWorker, type RunningWorker } from "@intake/worker";
import { connectRedis } from "@intake/pipeline";
import { startApiUnderTest, type ApiUnderTest } from "../api/harness.ts";
import { signInAs, type AdminClient } from "../api/admin-session.ts";
import { beforeAllOrFailEach } from "../support/suite.ts";
import { startReceiver, type Receiver } from "./receiver.ts";

/**
 * Verdict webhooks end to end: the real API (admin routes), the real worker in its
 * "webhooks" role (relay + BullMQ worker), real Redis, SQLite and PostgreSQL, and a local
 * receiver verifying with the npm standardwebhooks package as any receiver would. Loopback
 * is allowed explicitly (WEBHOOK_ALLOW_ADDRESSES=loopback) so the receiver is reachable;
 * the SSRF suite below runs without it.
 */
const WEBHOOK_ENV = { WEBHOOK_ALLOW_ADDRESSES: "loopback", WEBHOOK_ATTEMPTS: "3", WEBHOOK_BACKOFF_MS: "10", WEBHOOK_TIMEOUT_MS: "2000", WEBHOOK_DISABLE_AFTER_FAILURES: "2" };
const WAIT = 15_000;

function newUpload(tenantId: string): NewUpload {
  const id = randomUUID().replace(/-/g, "");
  return { id, tenantId, filename: "report.pdf", declaredType: "application/pdf", declaredSize: 1234, metadata: { ref: "t" }, objectKey: `pending/${tenantId}/${id}`, multipart: null, urlExpiresAt: new Date(Date.now() + 600_000) };
}

async function startWebhooksWorker(config: Config, logs: string[]): Promise<RunningWorker> {
  const logger = createLogger({ level: "debug", name: "worker", destination: { write: (line: string) => void logs.push(line) } });
  return startWorker({ ...config, worker: { ...config.worker, roles: ["webhooks"] } }, { logger, webhookRelayPollMs: 100, drainTimeoutMs: 5000 });
}

describe.each(["sqlite", "pg"] as const)("verdict webhooks on %s", (kind) => {
  let api: ApiUnderTest;
  let receiver: Receiver;
  let worker: RunningWorker | null = null;
  let admin: AdminClient;
  let operator: AdminClient;
  let key: string;
  const tenant = `t${randomUUID().slice(0, 8)}`;
  const workerLogs: string[] = [];
  const secrets: string[] = [];

  beforeAllOrFailEach(async () => {
    receiver = await startReceiver();
    api = await startApiUnderTest({ storage: "fauxqs", database: kind, env: WEBHOOK_ENV, logLevel: "debug" });
    key = await api.newKey(tenant);
    admin = await signInAs(api, "admin");
    operator = await signInAs(api, "operator");
    worker = await startWebhooksWorker(api.config, workerLogs);
  }, 60_000);
  afterAll(async () => {
    await worker?.close();
    if (api) {
      const redis = connectRedis(api.config.redis, "worker");
      const q = new WebhookQueue({ connection: redis, prefix: api.config.redis.prefix, attempts: 1, backoffMs: 10 });
      await q.queue.obliterate({ force: true }).catch(() => undefined);
      await q.close();
      redis.disconnect();
      await api.close();
    }
    await receiver?.close();
  });

  const webhooks = () => new WebhookRepository(api.database.db);

  async function createEndpoint(path: string, events?: string[], tenantId = tenant) {
    const res = await admin.request("POST", "/v1/admin/webhooks/endpoints", { json: { tenantId, url: `${receiver.url}${path}`, ...(events ? { events } : {}) } });
    const body: any = await res.json();
    expect(res.status, JSON.stringify(body)).toBe(201);
    secrets.push(body.secret);
    return body as { endpoint: { id: string }; secret: string };
  }

  /** Walks an upload through the state machine to a verdict, as the pipeline does (its stages are tested elsewhere). */
  async function verdict(to: "verified" | "quarantined", tenantId = tenant): Promise<string> {
    const { upload } = await api.uploads.create(newUpload(tenantId));
    await api.uploads.transition(upload.id, "arrived", "ingest", { storedSize: 1234 });
    await api.uploads.transition(upload.id, "inspect", "inspect", { sniffedType: "application/pdf" });
    await api.uploads.transition(upload.id, "decide", "scan", { verdict: to === "verified" ? "clean" : "quarantine", ...(to === "quarantined" ? { reason: "malware", signature: "Eicar-Test-Signature" } : {}) });
    const done = await api.uploads.transition(upload.id, to === "verified" ? "promote" : "quarantine", "finalize");
    expect(done.applied).toBe(true);
    return upload.id;
  }

  const received = (path: string, n: number) => waitFor(() => receiver.to(path).length >= n && receiver.to(path), { timeoutMs: WAIT, message: `${n} request(s) at ${path}`, describeLast: () => receiver.to(path).length });
  const deliveryOf = async (uploadId: string, endpointId: string) => (await webhooks().listDeliveries({ endpointId })).find((d) => d.uploadId === uploadId);
  const settled = (uploadId: string, endpointId: string, status: "delivered" | "failed") =>
    waitFor(async () => {
      const d = await deliveryOf(uploadId, endpointId);
      return d?.status === status && d;
    }, { timeoutMs: WAIT, message: `delivery of ${uploadId} to ${endpointId} ${status}`, describeLast: () => deliveryOf(uploadId, endpointId) });

  it("delivers a signed event that standardwebhooks verifies; a changed body and a replay outside the tolerance window fail", async () => {
    const { endpoint, secret } = await createEndpoint("/ok");
    const uploadId = await verdict("verified");
    const [req] = await received("/ok", 1);
    const wh = new Webhook(secret);
    const payload = wh.verify(req!.body, req!.headers) as { type: string; version: number; timestamp: string; data: Record<string, unknown> };
    expect(payload.type).toBe("upload.verified");
    expect(payload.version).toBe(1);
    expect(req!.headers["webhook-id"]).toMatch(/^msg_/);
    expect(req!.headers["content-type"]).toBe("application/json");
    // The upload's public fields, exactly as the tenant API shows them.
    const view = await api.call("GET", `/v1/uploads/${uploadId}`, { key });
    expect(payload.data).toEqual(view.body.upload);
    expect(req!.body).not.toMatch(/pending\/|verified\/|objectKey/);

    expect(() => wh.verify(req!.body.replace('"upload.verified"', '"upload.quarantined"'), req!.headers)).toThrow(/No matching signature/);
    expect(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString("base64")}`).verify(req!.body, req!.headers)).toThrow(/No matching signature/);
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 6 * 60_000 });
    try {
      expect(() => wh.verify(req!.body, req!.headers)).toThrow(/too old/);
    } finally {
      vi.useRealTimers();
    }

    const d = await settled(uploadId, endpoint.id, "delivered");
    const log = await operator.request("GET", `/v1/admin/webhooks/deliveries/${d.id}`);
    const logBody: any = await log.json();
    expect(log.status).toBe(200);
    expect(logBody.delivery).toMatchObject({ status: "delivered", attempts: 1, lastStatusCode: 200, webhookId: req!.headers["webhook-id"] });
    expect(logBody.attempts).toEqual([{ at: expect.any(String), statusCode: 200, latencyMs: expect.any(Number), error: null }]);
  });

  it("retries a receiver answering 500 twice: the third try delivers, with the same webhook-id each time", async () => {
    receiver.on("/flaky", (n) => (n <= 2 ? { status: 500, body: "try later" } : { status: 204 }));
    const { endpoint, secret } = await createEndpoint("/flaky");
    const uploadId = await verdict("verified");
    const reqs = await received("/flaky", 3);
    expect(new Set(reqs.map((r) => r.headers["webhook-id"])).size).toBe(1);
    expect(new Set(reqs.map((r) => r.body)).size).toBe(1); // the same bytes every time
    for (const r of reqs) new Webhook(secret).verify(r.body, r.headers);
    const d = await settled(uploadId, endpoint.id, "delivered");
    expect(d.attempts).toBe(3);
    expect((await webhooks().attempts(d.id)).map((a) => [a.statusCode, a.error])).toEqual([[500, "HTTP 500: try later"], [500, "HTTP 500: try later"], [204, null]]);
  });

  it("sends each endpoint only the events it subscribed to", async () => {
    const other = `f${randomUUID().slice(0, 8)}`;
    await api.newKey(other);
    await createEndpoint("/quarantined-only", ["upload.quarantined"], other);
    const verified = await verdict("verified", other);
    const quarantined = await verdict("quarantined", other);
    const [req] = await received("/quarantined-only", 1);
    expect(JSON.parse(req!.body)).toMatchObject({ type: "upload.quarantined", data: { id: quarantined, status: "quarantined", result: { reason: "malware", signature: "Eicar-Test-Signature" } } });
    expect(await api.database.db("webhook_events").where({ upload_id: verified })).toHaveLength(0);
    expect(receiver.to("/quarantined-only")).toHaveLength(1);
  });

  it("does not follow a redirect: a 3xx is a failed attempt", async () => {
    receiver.on("/redirect", () => ({ status: 302, headers: { location: `${receiver.url}/redirect-target` } }));
    const { endpoint } = await createEndpoint("/redirect");
    const uploadId = await verdict("verified");
    const d = await settled(uploadId, endpoint.id, "failed");
    expect(d.lastStatusCode).toBe(302);
    expect(d.lastError).toMatch(/redirect not followed/);
    expect(receiver.to("/redirect")).toHaveLength(3);
    expect(receiver.to("/redirect-target")).toHaveLength(0);
  });

  it("disables an endpoint after the configured run of failed deliveries, with an audit row", async () => {
    const lonely = `d${randomUUID().slice(0, 8)}`;
    await api.newKey(lonely);
    receiver.on("/down", () => ({ status: 503 }));
    const { endpoint } = await createEndpoint("/down", undefined, lonely);
    await settled(await verdict("verified", lonely), endpoint.id, "failed");
    expect((await webhooks().endpoint(endpoint.id))!.disabledAt).toBeNull();
    await settled(await verdict("verified", lonely), endpoint.id, "failed");
    const disabled = await waitFor(async () => {
      const e = await webhooks().endpoint(endpoint.id);
      return e?.disabledAt && e;
    }, { timeoutMs: WAIT, message: "endpoint disabled" });
    expect(disabled.disabledReason).toBe("2 failed deliveries in a row");
    const audit = (await new AuditLog(api.database.db).byAction("webhook.endpoint_disabled")).filter((a) => a.detail.endpointId === endpoint.id);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: "webhooks", tenantId: lonely });
    // A disabled endpoint gets no more deliveries; the admin page shows it disabled.
    const third = await verdict("verified", lonely);
    expect(await deliveryOf(third, endpoint.id)).toBeUndefined();
    const page = await admin.request("GET", "/admin/webhooks");
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(new RegExp(`endpoint-${endpoint.id}[\\s\\S]*?disabled`));
  });

  it("redelivers a delivery and an event from the admin API with the same webhook-id, audited with the operator's id", async () => {
    const { endpoint, secret } = await createEndpoint("/again");
    const uploadId = await verdict("verified");
    const d = await settled(uploadId, endpoint.id, "delivered");
    const res = await operator.request("POST", `/v1/admin/webhooks/deliveries/${d.id}/redeliver`);
    expect(res.status).toBe(202);
    expect(((await res.json()) as any).delivery).toMatchObject({ id: d.id, status: "pending", round: 1 });
    const reqs = await received("/again", 2);
    expect(reqs[1]!.headers["webhook-id"]).toBe(reqs[0]!.headers["webhook-id"]);
    expect(reqs[1]!.body).toBe(reqs[0]!.body);
    new Webhook(secret).verify(reqs[1]!.body, reqs[1]!.headers);
    await settled(uploadId, endpoint.id, "delivered");
    // The whole event, from the page's form (CSRF field, no JavaScript).
    const page = await operator.request("POST", `/admin/webhooks/events/${d.eventId}/redeliver`, { form: {} });
    expect(page.status).toBe(200);
    const pageText = await page.text();
    // Every endpoint of the tenant the event went to (the other tests' too) gets it again.
    expect(/class="(notice|error)"[^>]*>[^<]*/.exec(pageText)?.[0]).toMatch(/event msg_\S+ redelivered to [1-9]\d* endpoint/);
    const third = await received("/again", 3);
    expect(third[2]!.headers["webhook-id"]).toBe(d.eventId);
    const audit = (await new AuditLog(api.database.db).byAction("webhook.redelivered")).filter((a) => a.detail.deliveryId === d.id);
    expect(audit[0]).toMatchObject({ actor: "admin", actorId: operator.user.id });
    // Redelivering one still in flight is refused rather than doubled.
    const again = await operator.request("POST", `/v1/admin/webhooks/deliveries/${d.id}/redeliver`);
    expect([202, 409]).toContain(again.status);
  });

  it("delivers what was committed while no relay ran (a crash between commit and enqueue)", async () => {
    const { endpoint } = await createEndpoint("/after-crash");
    await worker!.close();
    worker = null;
    const uploadId = await verdict("verified");
    const pendingRow = await deliveryOf(uploadId, endpoint.id);
    expect(pendingRow).toMatchObject({ status: "pending", enqueuedAt: null });
    worker = await startWebhooksWorker(api.config, workerLogs);
    await received("/after-crash", 1);
    const d = await settled(uploadId, endpoint.id, "delivered");
    expect(d.enqueuedAt).not.toBeNull();
    // The first round's job carries the delivery's own id, on the queue the dashboard lists.
    const redis = connectRedis(api.config.redis, "worker");
    const q = new WebhookQueue({ connection: redis, prefix: api.config.redis.prefix, attempts: 1, backoffMs: 10 });
    const job = await q.queue.getJob(d.id);
    expect(job?.queueName).toBe(WEBHOOK_QUEUE);
    await q.close();
    redis.disconnect();
  });

  it("lets only admins manage endpoints, shows the secret once, and refuses SSRF targets when they are created", async () => {
    const denied = await operator.request("POST", "/v1/admin/webhooks/endpoints", { json: { tenantId: tenant, url: `${receiver.url}/x` } });
    expect(denied.status).toBe(403);
    const compliance = await signInAs(api, "compliance");
    expect((await compliance.request("GET", "/v1/admin/webhooks/deliveries")).status).toBe(403);
    expect((await api.call("GET", "/v1/admin/webhooks/deliveries", { key })).status).toBe(403);
    expect((await fetch(`${api.url}/v1/admin/webhooks/endpoints`)).status).toBe(401);
    expect((await admin.request("POST", "/v1/admin/webhooks/endpoints", { json: { tenantId: tenant, url: `${receiver.url}/x` }, csrf: false })).status).toBe(403);

    for (const url of ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[fe80::1]/", "ftp://example.com/", "http://user:pw@example.com/"]) {
      const res = await admin.request("POST", "/v1/admin/webhooks/endpoints", { json: { tenantId: tenant, url } });
      expect(res.status, url).toBe(400);
      expect(((await res.json()) as any).error.code).toBe("invalid_webhook_url");
    }
    const badEvent = await admin.request("POST", "/v1/admin/webhooks/endpoints", { json: { tenantId: tenant, url: `${receiver.url}/x`, events: ["upload.deleted"] } });
    expect(((await badEvent.json()) as any).error.code).toBe("invalid_events");

    const { endpoint, secret } = await createEndpoint("/managed");
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const list = await admin.request("GET", "/v1/admin/webhooks/endpoints");
    const listText = await list.text();
    expect(listText).toContain(endpoint.id);
    expect(listText).not.toContain(secret);
    const rotated: any = await (await admin.request("POST", `/v1/admin/webhooks/endpoints/${endpoint.id}/rotate-secret`)).json();
    expect(rotated.secret).not.toBe(secret);
    secrets.push(rotated.secret);
    const off: any = await (await admin.request("POST", `/v1/admin/webhooks/endpoints/${endpoint.id}/disable`, { json: { reason: "maintenance" } })).json();
    expect(off.endpoint).toMatchObject({ enabled: false, disabledReason: "disabled by an admin: maintenance" });
    expect((await admin.request("POST", `/v1/admin/webhooks/endpoints/${endpoint.id}/enable`)).status).toBe(200);
    expect((await admin.request("DELETE", `/v1/admin/webhooks/endpoints/${endpoint.id}`)).status).toBe(204);
    expect((await admin.request("DELETE", `/v1/admin/webhooks/endpoints/${endpoint.id}`)).status).toBe(404);
    const actions = (await new AuditLog(api.database.db).byAction("webhook.endpoint_created")).filter((a) => a.detail.endpointId === endpoint.id);
    expect(actions[0]).toMatchObject({ actor: "admin", actorId: admin.user.id });

    // The page's form shows a new secret once, too.
    const page = await admin.request("POST", "/admin/webhooks/endpoints", { form: { tenantId: tenant, url: `${receiver.url}/from-page`, events: "upload.verified" } });
    const html = await page.text();
    expect(page.status).toBe(200);
    const shown = /class="created-secret">(whsec_[^<]+)</.exec(html)?.[1];
    expect(shown).toBeDefined();
    secrets.push(shown!);
    expect(await (await admin.request("GET", "/admin/webhooks")).text()).not.toContain(shown!);
  });

  it("rotates a secret with an overlap: deliveries verify with either secret until it ends, early or on time; overlap 0 ends the old one at once", async () => {
    const rotTenant = `r${randomUUID().slice(0, 8)}`;
    await api.newKey(rotTenant);
    const { endpoint, secret: first } = await createEndpoint("/rotating", undefined, rotTenant);
    const deliveredTo = async (n: number) => (await received("/rotating", n))[n - 1]!;
    const rotate = async (json?: Record<string, unknown>) => {
      const res = await admin.request("POST", `/v1/admin/webhooks/endpoints/${endpoint.id}/rotate-secret`, json ? { json } : {});
      const b: any = await res.json();
      expect(res.status, JSON.stringify(b)).toBe(200);
      secrets.push(b.secret);
      return b as { secret: string; endpoint: { previousSecretExpiresAt: string | null } };
    };

    // An hour's overlap: the next delivery carries two signatures, the old receiver and the new both verify.
    const before = Date.now();
    const r1 = await rotate({ overlapSeconds: 3600 });
    const second = r1.secret;
    expect(Date.parse(r1.endpoint.previousSecretExpiresAt!) - before).toBeGreaterThanOrEqual(3600_000 - 1000);
    expect(Date.parse(r1.endpoint.previousSecretExpiresAt!) - before).toBeLessThanOrEqual(3600_000 + 5000);
    await verdict("verified", rotTenant);
    const during = await deliveredTo(1);
    expect(during.headers["webhook-signature"]!.split(" ")).toHaveLength(2);
    expect(new Webhook(first).verify(during.body, during.headers)).toMatchObject({ type: "upload.verified" });
    expect(new Webhook(second).verify(during.body, during.headers)).toMatchObject({ type: "upload.verified" });

    // Ended early (the receiver has switched): the old secret no longer verifies.
    const ended = await admin.request("POST", `/v1/admin/webhooks/endpoints/${endpoint.id}/end-secret-overlap`);
    expect(((await ended.json()) as any).endpoint.previousSecretExpiresAt).toBeNull();
    await verdict("verified", rotTenant);
    const after = await deliveredTo(2);
    expect(after.headers["webhook-signature"]!.split(" ")).toHaveLength(1);
    expect(() => new Webhook(first).verify(after.body, after.headers)).toThrow(/No matching signature/);
    new Webhook(second).verify(after.body, after.headers);

    // Overlap 0 (a leaked secret): the old one ends with the rotation.
    const third = (await rotate({ overlapSeconds: 0 })).secret;
    await verdict("verified", rotTenant);
    const leaked = await deliveredTo(3);
    expect(() => new Webhook(second).verify(leaked.body, leaked.headers)).toThrow(/No matching signature/);
    new Webhook(third).verify(leaked.body, leaked.headers);

    // A 1 s overlap runs out by itself: once its end has passed, only the new secret signs.
    const r4 = await rotate({ overlapSeconds: 1 });
    const end = Date.parse(r4.endpoint.previousSecretExpiresAt!);
    await waitFor(() => Date.now() > end + 50, { timeoutMs: 5000, message: "the 1 s overlap to pass" });
    await verdict("verified", rotTenant);
    const expired = await deliveredTo(4);
    expect(() => new Webhook(third).verify(expired.body, expired.headers)).toThrow(/No matching signature/);
    new Webhook(r4.secret).verify(expired.body, expired.headers);

    // No overlap named: WEBHOOK_SECRET_OVERLAP_SECONDS (24 h by default).
    const at = Date.now();
    const r5 = await rotate();
    expect(Math.abs(Date.parse(r5.endpoint.previousSecretExpiresAt!) - (at + 86_400_000))).toBeLessThan(5000);

    // Refused overlaps change nothing: the same secret and overlap after each.
    const row = async () => api.database.db("webhook_endpoints").where({ id: endpoint.id }).first();
    const kept = await row();
    for (const bad of [-1, 604_801, 1.5, "abc", "1e3", true, null]) {
      const res = await admin.request("POST", `/v1/admin/webhooks/endpoints/${endpoint.id}/rotate-secret`, { json: { overlapSeconds: bad } });
      expect(res.status, String(bad)).toBe(400);
      expect(((await res.json()) as any).error, String(bad)).toMatchObject({ code: "invalid_field", details: { field: "overlapSeconds" } });
    }
    const unknown = await admin.request("POST", `/v1/admin/webhooks/endpoints/${endpoint.id}/rotate-secret`, { json: { overlap: 10 } });
    expect(((await unknown.json()) as any).error.code).toBe("unknown_field");
    expect(await row()).toEqual(kept);
    // Only admins rotate; another tenant's admin finds no such endpoint.
    expect((await operator.request("POST", `/v1/admin/webhooks/endpoints/${endpoint.id}/rotate-secret`, { json: { overlapSeconds: 60 } })).status).toBe(403);
    expect((await operator.request("POST", `/v1/admin/webhooks/endpoints/${endpoint.id}/end-secret-overlap`)).status).toBe(403);
    expect((await admin.request("POST", `/v1/admin/webhooks/endpoints/ep_nosuchendpoint/end-secret-overlap`)).status).toBe(404);

    // The page's form: the overlap field, the new secret shown once, the overlap's end listed, ended by its button.
    const page = await admin.request("POST", `/admin/webhooks/endpoints/${endpoint.id}/rotate-secret`, { form: { overlapSeconds: "600" } });
    const html = await page.text();
    expect(page.status).toBe(200);
    const shown = /class="created-secret">(whsec_[^<]+)</.exec(html)?.[1];
    expect(shown).toBeDefined();
    secrets.push(shown!);
    expect(html).toMatch(/the old one also signs until \d{4}-/);
    const list = await (await admin.request("GET", "/admin/webhooks")).text();
    expect(list).toMatch(new RegExp(`endpoint-${endpoint.id}[\\s\\S]*?previous secret also signs until[\\s\\S]*?end-secret-overlap`));
    expect(list).toContain('name="overlapSeconds"');
    const endPage = await admin.request("POST", `/admin/webhooks/endpoints/${endpoint.id}/end-secret-overlap`, { form: {} });
    expect(await endPage.text()).toContain("no longer signs");
    expect((await webhooks().endpoint(endpoint.id))!.previousSecretExpiresAt).toBeNull();
    const badForm = await admin.request("POST", `/admin/webhooks/endpoints/${endpoint.id}/rotate-secret`, { form: { overlapSeconds: "-5" } });
    expect(badForm.status).toBe(400);
    expect(await badForm.text()).toContain("overlapSeconds must be");

    // Audited with the admin's id and the overlap, never a secret.
    const audit = new AuditLog(api.database.db);
    const rotations = (await audit.byAction("webhook.secret_rotated")).filter((a) => a.detail.endpointId === endpoint.id).reverse(); // newest first as read
    expect(rotations.map((a) => a.detail.overlapSeconds)).toEqual([3600, 0, 1, 86_400, 600]);
    expect(rotations[0]).toMatchObject({ actor: "admin", actorId: admin.user.id, tenantId: rotTenant, detail: { previousSecretValidUntil: r1.endpoint.previousSecretExpiresAt } });
    expect(rotations[1]!.detail.previousSecretValidUntil).toBeNull();
    expect((await audit.byAction("webhook.secret_overlap_ended")).filter((a) => a.detail.endpointId === endpoint.id)).toHaveLength(2);
    const trail = JSON.stringify([...rotations, ...(await audit.byAction("webhook.secret_overlap_ended"))]);
    for (const s of secrets) expect(trail).not.toContain(s.slice("whsec_".length));
  });

  it("never writes a secret or a signature to a log line", async () => {
    expect(secrets.length).toBeGreaterThan(3);
    const logs = [...api.logs, ...workerLogs].join("\n");
    expect(workerLogs.some((l) => l.includes("webhook delivered"))).toBe(true);
    for (const s of secrets) {
      expect(logs).not.toContain(s);
      expect(logs).not.toContain(s.slice("whsec_".length));
    }
    for (const r of receiver.requests) expect(logs).not.toContain(r.headers["webhook-signature"]!.slice(3));
  });
});
