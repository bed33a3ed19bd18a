import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uploadView } from "@intake/domain";
import { DATABASE_KINDS, freshDatabase, type TestDatabase } from "./testing.ts";
import { ApiKeyRepository, atomically, AuditLog, UploadRepository, WebhookRepository, writeVerdictEvents, type NewUpload } from "./index.ts";

function newUpload(tenantId: string): NewUpload {
  const id = randomUUID().replace(/-/g, "");
  return { id, tenantId, filename: "report.pdf", declaredType: "application/pdf", declaredSize: 1234, metadata: { source: "test" }, objectKey: `pending/${tenantId}/${id}`, multipart: null, urlExpiresAt: new Date(Date.now() + 600_000) };
}

describe.each(DATABASE_KINDS)("webhook outbox on %s", (kind) => {
  let t: TestDatabase;
  let uploads: UploadRepository;
  let webhooks: WebhookRepository;
  const count = async (table: string) => Number(((await t.db(table).count({ n: "*" })) as { n: number | string }[])[0]!.n);

  async function toDeciding(tenant: string) {
    const { upload } = await uploads.create(newUpload(tenant));
    await uploads.transition(upload.id, "arrived", "ingest", { storedSize: 1234 });
    await uploads.transition(upload.id, "inspect", "inspect", { sniffedType: "application/pdf" });
    await uploads.transition(upload.id, "decide", "scan", { verdict: "clean" });
    return upload.id;
  }

  async function toQuarantined(tenant: string) {
    const id = await toDeciding(tenant);
    const r = await uploads.transition(id, "quarantine", "finalize", { verdict: "quarantine", reason: "type_not_allowed" });
    expect(r.applied).toBe(true);
    return id;
  }

  beforeAll(async () => {
    t = await freshDatabase(kind);
    uploads = new UploadRepository(t.db);
    webhooks = new WebhookRepository(t.db);
    const keys = new ApiKeyRepository(t.db);
    for (const tenant of ["acme", "quiet", "filtered"]) await keys.ensureTenant(tenant);
    await webhooks.createEndpoint({ tenantId: "acme", url: "https://a.example/hook", events: ["upload.verified", "upload.quarantined", "upload.expired"], secret: "whsec_AAAA" });
    await webhooks.createEndpoint({ tenantId: "acme", url: "https://b.example/hook", events: ["upload.verified"], secret: "whsec_BBBB" });
    const off = await webhooks.createEndpoint({ tenantId: "acme", url: "https://c.example/hook", events: ["upload.verified"], secret: "whsec_CCCC" });
    await webhooks.setEnabled(off.id, false, "test");
    await webhooks.createEndpoint({ tenantId: "filtered", url: "https://d.example/hook", events: ["upload.expired"], secret: "whsec_DDDD" });
  });
  afterAll(async () => t?.drop());

  it("writes the event and one delivery per subscribed, enabled endpoint in the transition's unit", async () => {
    let nudged = 0;
    uploads.onOutboxWritten(() => nudged++);
    const id = await toDeciding("acme");
    expect(await t.db("webhook_events").where({ upload_id: id }).first()).toBeUndefined(); // no event before a verdict
    const promoted = await uploads.transition(id, "promote", "finalize", { finalKey: `verified/acme/${id}` });
    expect(promoted.applied).toBe(true);
    const event = await t.db("webhook_events").where({ upload_id: id }).first();
    expect(event.id).toMatch(/^msg_[A-Za-z0-9_-]{22}$/);
    const payload = JSON.parse(event.payload);
    expect(payload).toEqual({ type: "upload.verified", version: 1, timestamp: expect.any(String), data: uploadView(promoted.upload!) });
    expect(JSON.stringify(payload.data)).not.toMatch(/pending\/|verified\/|objectKey|storageUploadId/);
    const deliveries = await webhooks.listDeliveries({ eventId: event.id });
    expect(deliveries).toHaveLength(2); // a (all events) and b (verified); c is disabled
    expect(new Set(deliveries.map((d) => d.id.length))).toEqual(new Set([39]));
    expect(deliveries.every((d) => d.status === "pending" && d.enqueuedAt === null && d.tenantId === "acme")).toBe(true);
    expect(nudged).toBe(1);
    // Repeating the transition changes nothing and writes no second event.
    const again = await uploads.transition(id, "promote", "finalize");
    expect(again.applied).toBe(false);
    expect(await t.db("webhook_events").where({ upload_id: id })).toHaveLength(1);
  });

  it("respects the event filter and writes nothing for a tenant without endpoints", async () => {
    const quarantined = await toQuarantined("filtered");
    expect(await t.db("webhook_events").where({ upload_id: quarantined })).toHaveLength(0); // subscribed to expired only
    const expired = await uploads.create(newUpload("filtered"));
    await uploads.transition(expired.upload.id, "expire", "reaper");
    const [event] = await t.db("webhook_events").where({ upload_id: expired.upload.id });
    expect(event.type).toBe("upload.expired");
    const quiet = await toDeciding("quiet");
    expect((await uploads.transition(quiet, "promote", "finalize")).applied).toBe(true);
    expect(await t.db("webhook_events").where({ tenant_id: "quiet" })).toHaveLength(0);
  });

  it("rolls the outbox back with the unit that wrote it", async () => {
    const id = await toDeciding("acme");
    const before = [await count("webhook_events"), await count("webhook_deliveries")];
    const upload = await uploads.getById(id);
    if (!upload) throw new Error("upload vanished");
    await expect(
      atomically(t.db, async (tx) => {
        expect(await writeVerdictEvents(tx, { ...upload, status: "verified" })).toBe(2);
        throw new Error("the state change failed after the outbox was written");
      }),
    ).rejects.toThrow(/state change failed/);
    expect([await count("webhook_events"), await count("webhook_deliveries")]).toEqual(before);
    // A transition that does not apply (wrong status) writes no event either.
    expect((await uploads.transition(id, "expire", "reaper")).applied).toBe(false);
    expect([await count("webhook_events"), await count("webhook_deliveries")]).toEqual(before);
  });

  it("disables an endpoint after the configured run of failed deliveries, with an audit row, and a success resets the run", async () => {
    const ep = await webhooks.createEndpoint({ tenantId: "acme", url: "https://e.example/hook", events: ["upload.quarantined"], secret: "whsec_EEEE" });
    const deliveryIds: string[] = [];
    for (let i = 0; i < 4; i++) {
      const uploadId = await toQuarantined("acme");
      const [d] = (await webhooks.listDeliveries({ endpointId: ep.id })).filter((x) => x.uploadId === uploadId);
      deliveryIds.push(d!.id);
    }
    const attempt = { statusCode: 500, latencyMs: 3, error: "HTTP 500" };
    expect(await webhooks.recordFailed(deliveryIds[0]!, ep.id, attempt, 2)).toEqual({ disabled: false, consecutiveFailures: 1 });
    await webhooks.recordDelivered(deliveryIds[1]!, ep.id, { statusCode: 204, latencyMs: 2, error: null });
    expect((await webhooks.endpoint(ep.id))!.consecutiveFailures).toBe(0);
    expect(await webhooks.recordFailed(deliveryIds[2]!, ep.id, attempt, 2)).toEqual({ disabled: false, consecutiveFailures: 1 });
    expect(await webhooks.recordFailed(deliveryIds[3]!, ep.id, attempt, 2)).toEqual({ disabled: true, consecutiveFailures: 2 });
    const endpoint = (await webhooks.endpoint(ep.id))!;
    expect(endpoint.disabledAt).not.toBeNull();
    expect(endpoint.disabledReason).toBe("2 failed deliveries in a row");
    const [row] = await new AuditLog(t.db).byAction("webhook.endpoint_disabled");
    expect(row).toMatchObject({ actor: "webhooks", tenantId: "acme", detail: { endpointId: ep.id, consecutiveFailures: 2 } });
    expect(JSON.stringify(row)).not.toContain("whsec_");
    expect((await webhooks.attempts(deliveryIds[3]!)).map((a) => a.statusCode)).toEqual([500]);
  });

  it("redelivers a finished delivery as a new round of the same event, and never one still in flight", async () => {
    const [d] = await webhooks.listDeliveries({ status: "delivered" });
    const again = await webhooks.redeliver(d!.id);
    expect(again).toMatchObject({ id: d!.id, eventId: d!.eventId, status: "pending", round: d!.round + 1, enqueuedAt: null });
    await expect(webhooks.redeliver(d!.id)).rejects.toMatchObject({ code: "delivery_in_flight" });
    expect((await webhooks.unqueued()).find((r) => r.id === d!.id)).toEqual({ id: d!.id, round: again.round });
  });
});
