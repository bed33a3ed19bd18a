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

  it("lists queued pending deliveries past the grace for the relay's sweep, in pages, and starts at most one new round", async () => {
    const ids = [await toDeciding("acme"), await toDeciding("acme")];
    for (const id of ids) await uploads.transition(id, "promote", "finalize");
    const mine = (await webhooks.listDeliveries({})).filter((d) => ids.includes(d.uploadId!) && d.status === "pending");
    expect(mine).toHaveLength(4); // two endpoints each
    const t0 = new Date(Date.now() + 3_600_000); // later than anything earlier tests queued
    for (const [i, d] of mine.entries()) await webhooks.markEnqueued(d.id, d.round, new Date(t0.getTime() + (i < 2 ? 0 : 1000))); // two share an instant
    const sweepable = async (before: Date) => (await webhooks.enqueuedPending(before, null, 100)).filter((r) => mine.some((d) => d.id === r.id));
    expect(await sweepable(t0)).toEqual([]); // inside the grace
    const all = await sweepable(new Date(t0.getTime() + 2000));
    expect(all.map((r) => r.id)).toEqual([...mine.slice(0, 2).map((d) => d.id).sort(), ...mine.slice(2).map((d) => d.id).sort()]);
    // Paged after a cursor, ties on enqueued_at broken by id: every row once, in order.
    const paged: string[] = [];
    let cursor: { id: string; enqueuedAt: Date } = { id: "", enqueuedAt: new Date(t0.getTime() - 1) }; // just before ours
    for (;;) {
      const page = await webhooks.enqueuedPending(new Date(t0.getTime() + 2000), cursor, 1);
      if (page.length === 0) break;
      paged.push(page[0]!.id);
      cursor = page[0]!;
    }
    expect(paged).toEqual(all.map((r) => r.id));

    const first = all[0]!;
    expect(await webhooks.startNewRound(first.id, first.round)).toBe(true);
    expect(await webhooks.startNewRound(first.id, first.round)).toBe(false); // a second sweep, the same round read
    expect(await webhooks.delivery(first.id)).toMatchObject({ status: "pending", round: first.round + 1, enqueuedAt: null });
    expect((await webhooks.unqueued()).find((r) => r.id === first.id)).toEqual({ id: first.id, round: first.round + 1 });
    // A delivery that meanwhile arrived is not started again.
    const second = all[1]!;
    await webhooks.recordDelivered(second.id, mine.find((d) => d.id === second.id)!.endpointId, { statusCode: 200, latencyMs: 5, error: null });
    expect(await webhooks.startNewRound(second.id, second.round)).toBe(false);
    // markRequeued moves the grace on, for the queued round only.
    const third = all[2]!;
    await webhooks.markRequeued(third.id, third.round + 1, new Date(t0.getTime() + 9_000_000));
    expect((await webhooks.delivery(third.id))?.enqueuedAt?.getTime()).toBe(t0.getTime() + 1000);
    await webhooks.markRequeued(third.id, third.round, new Date(t0.getTime() + 9_000_000));
    expect((await webhooks.delivery(third.id))?.enqueuedAt?.getTime()).toBe(t0.getTime() + 9_000_000);
  });
});
