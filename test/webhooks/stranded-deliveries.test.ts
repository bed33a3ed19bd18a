import { randomUUID } from "node:crypto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { connectRedis, type RedisConnection } from "@intake/pipeline";
import { ApiKeyRepository, openDatabase, UploadRepository, WebhookRepository } from "@intake/db";
import { freshDatabase, type TestDatabase } from "@intake/db/testing";
import { createLogger, loadConfig } from "@intake/runtime";
import { testQueuePrefix, testRedisEnv, waitFor } from "@intake/testkit";
import { generateSecret, OutboxRelay, startWebhookWorker, WebhookQueue, webhookJobId, type DeliveryDeps } from "@intake/webhooks";
import type { Worker } from "bullmq";
import { beforeAllOrFailEach } from "../support/suite.ts";
import { startReceiver, type Receiver } from "./receiver.ts";

/**
 * At least once past Redis and past a failed outcome: a delivery marked queued whose BullMQ
 * job was lost (removed, the queue obliterated) or finished without recording an outcome (the
 * database was down on its last attempt) is found by the relay's sweep and arrives, with the
 * same webhook-id; a job still waiting or delayed is never doubled. Real Redis, the real
 * BullMQ worker of the webhook queue, SQLite and PostgreSQL, a local receiver.
 */
const WAIT = 15_000;

describe.each(["sqlite", "pg"] as const)("stranded webhook deliveries on %s", (kind) => {
  let t: TestDatabase;
  let receiver: Receiver;
  let redis: RedisConnection;
  let webhooks: WebhookRepository;
  let uploads: UploadRepository;
  // The test Redis (the local server, or the cluster with INTAKE_TEST_REDIS=cluster).
  const prefix = testQueuePrefix("t");
  const logs: string[] = [];
  const logger = createLogger({ level: "debug", name: "webhooks", destination: { write: (line: string) => void logs.push(line) } });
  const running: { close(): Promise<void> }[] = [];

  beforeAllOrFailEach(async () => {
    receiver = await startReceiver();
    redis = connectRedis(loadConfig({ S3_BUCKET: "unused-by-the-webhooks", ...testRedisEnv(), QUEUE_PREFIX: prefix }).redis, "worker");
    t = await freshDatabase(kind);
    webhooks = new WebhookRepository(t.db);
    uploads = new UploadRepository(t.db);
  }, 60_000);
  afterEach(async () => {
    for (const r of running.splice(0).reverse()) await r.close();
  });
  afterAll(async () => {
    const q = new WebhookQueue({ connection: redis, prefix, attempts: 1, backoffMs: 10 });
    await q.queue.obliterate({ force: true }).catch(() => undefined);
    await q.close();
    redis?.disconnect();
    await t?.drop();
    await receiver?.close();
  });

  function queue(attempts = 1, backoffMs = 10): WebhookQueue {
    const q = new WebhookQueue({ connection: redis, prefix, attempts, backoffMs });
    running.push(q);
    return q;
  }
  /** A relay sweeping every 100 ms with a 200 ms grace (production: 30 s and at least 5 minutes). */
  function relay(q: WebhookQueue, repo = webhooks, start = true): OutboxRelay {
    const r = new OutboxRelay({ webhooks: repo, queue: q, logger, pollMs: 50, sweepEveryMs: 100, sweepGraceMs: 200 });
    running.push({ close: () => r.stop() });
    if (start) r.start();
    return r;
  }
  function worker(repo = webhooks): Worker {
    const deps: DeliveryDeps = { webhooks: repo, logger, requireHttps: false, allowAddresses: ["loopback"], timeoutMs: 2000, disableAfterFailures: 100 };
    const w = startWebhookWorker(deps, { connection: redis, prefix, concurrency: 2 });
    running.push({ close: () => w.close() });
    return w;
  }

  /** A verified upload of a tenant of its own, with one endpoint at `path`: its delivery, written by the transition. */
  async function deliveryTo(path: string) {
    const tenant = `s${randomUUID().slice(0, 8)}`;
    await new ApiKeyRepository(t.db).ensureTenant(tenant);
    const endpoint = await webhooks.createEndpoint({ tenantId: tenant, url: `${receiver.url}${path}`, events: ["upload.verified"], secret: generateSecret() });
    const id = randomUUID().replace(/-/g, "");
    await uploads.create({ id, tenantId: tenant, filename: "a.pdf", declaredType: "application/pdf", declaredSize: 10, metadata: {}, objectKey: `pending/${tenant}/${id}`, multipart: null, urlExpiresAt: new Date(Date.now() + 60_000) });
    for (const [event, actor] of [["arrived", "ingest"], ["inspect", "inspect"], ["decide", "scan"], ["promote", "finalize"]] as const) await uploads.transition(id, event, actor);
    const [delivery] = await webhooks.listDeliveries({ endpointId: endpoint.id });
    expect(delivery?.status).toBe("pending");
    return delivery!;
  }
  const received = (path: string, n: number) => waitFor(() => receiver.to(path).length >= n && receiver.to(path), { timeoutMs: WAIT, message: `${n} request(s) at ${path}`, describeLast: () => receiver.to(path).length });
  const settled = (id: string, status: "delivered" | "failed") =>
    waitFor(async () => {
      const d = await webhooks.delivery(id);
      return d?.status === status && d;
    }, { timeoutMs: WAIT, message: `delivery ${id} ${status}`, describeLast: () => webhooks.delivery(id) });

  it("queues a delivery again when its job was removed from Redis, and it arrives with the same webhook-id", async () => {
    const d = await deliveryTo("/removed");
    const q = queue();
    await relay(q, webhooks, false).pass(); // handed over, with no worker yet: the job waits
    expect((await webhooks.delivery(d.id))?.enqueuedAt).not.toBeNull();
    expect(await q.state(d.id, 0)).toBe("waiting");
    await q.queue.remove(webhookJobId(d.id, 0)); // an operator's removal in the dashboard
    expect(await q.state(d.id, 0)).toBe("unknown");

    relay(q);
    worker();
    const [req] = await received("/removed", 1);
    expect(req!.headers["webhook-id"]).toBe(d.eventId);
    const done = await settled(d.id, "delivered");
    expect(done.round).toBe(0); // the removed job's id was free: the same round
    expect(logs.some((l) => l.includes(d.id) && l.includes("missing from the queue"))).toBe(true);
  });

  it("delivers what an obliterated queue held (Redis flushed or failed over without persistence)", async () => {
    const ds = [await deliveryTo("/flushed-a"), await deliveryTo("/flushed-b")];
    const q = queue();
    await relay(q, webhooks, false).pass();
    await q.queue.obliterate({ force: true });
    for (const d of ds) expect(await q.state(d.id, 0)).toBe("unknown");

    relay(q);
    worker();
    const [a] = await received("/flushed-a", 1);
    const [b] = await received("/flushed-b", 1);
    expect([a!.headers["webhook-id"], b!.headers["webhook-id"]]).toEqual(ds.map((d) => d.eventId));
    for (const d of ds) await settled(d.id, "delivered");
  });

  it("gives a new round to a delivery whose job failed because the database was down on its last attempt", async () => {
    const d = await deliveryTo("/db-down");
    const q = queue();
    // A worker whose database connection is gone: its only attempt cannot read or record
    // anything, so BullMQ fails the job while the row stays pending.
    const gone = openDatabase(t.settings);
    await gone.destroy();
    const down = worker(new WebhookRepository(gone));
    const failed = new Promise<void>((resolve) => down.on("failed", (job) => job?.id === d.id && resolve()));
    await relay(q, webhooks, false).pass();
    await failed;
    await down.close();
    expect(await q.state(d.id, 0)).toBe("failed");
    expect((await webhooks.delivery(d.id))?.status).toBe("pending");
    expect(receiver.to("/db-down")).toHaveLength(0);

    relay(q);
    worker();
    const [req] = await received("/db-down", 1);
    expect(req!.headers["webhook-id"]).toBe(d.eventId);
    const done = await settled(d.id, "delivered");
    expect(done.round).toBe(1); // the failed job keeps id `d.id`: a round of its own
    expect(await q.state(d.id, 1)).toBe("completed");
  });

  it("never doubles a job still waiting or delayed, and leaves a delivery inside its grace alone", async () => {
    const waiting = await deliveryTo("/waiting");
    const q = queue();
    const r = relay(q, webhooks, false);
    await r.pass();
    expect(await r.sweep()).toMatchObject({ checked: 0 }); // inside the grace: not even looked up
    await waitFor(async () => (await r.sweep()).checked >= 1, { timeoutMs: WAIT, message: "the waiting delivery swept" });
    expect(await q.state(waiting.id, 0)).toBe("waiting");
    expect(await webhooks.delivery(waiting.id)).toMatchObject({ round: 0, status: "pending" });
    expect(await q.queue.getJobCounts("waiting", "delayed")).toMatchObject({ waiting: 1, delayed: 0 });

    // A delayed retry: the receiver failed the first attempt and the backoff is long.
    const delayed = await deliveryTo("/delayed");
    receiver.on("/delayed", (n) => ({ status: n === 1 ? 503 : 200 }));
    const slow = queue(2, 60_000);
    const r2 = relay(slow, webhooks, false);
    worker();
    await r2.pass();
    await received("/delayed", 1);
    await waitFor(async () => (await slow.state(delayed.id, 0)) === "delayed", { timeoutMs: WAIT, message: "the retry delayed" });
    await waitFor(async () => {
      const swept = await r2.sweep();
      return swept.checked >= 1 && swept;
    }, { timeoutMs: WAIT, message: "the delayed delivery swept" });
    expect(await slow.state(delayed.id, 0)).toBe("delayed");
    expect(await webhooks.delivery(delayed.id)).toMatchObject({ round: 0, status: "pending" });
    // The waiting one ran once its worker came up, exactly once.
    await settled(waiting.id, "delivered");
    expect(receiver.to("/waiting")).toHaveLength(1);
    expect(receiver.to("/delayed")).toHaveLength(1);
  });
});
