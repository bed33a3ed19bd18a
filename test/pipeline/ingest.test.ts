import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { objectKey } from "@intake/domain";
import { IngestLoop, StageQueues, stageJobId } from "@intake/pipeline";
import { createLogger } from "@intake/runtime";
import { pdf, png } from "./fixtures.ts";
import { waitFor } from "@intake/testkit";
import { fastRedrive, objectCreatedBody, queueDepth, receiveBodies, send } from "./support/events.ts";
import { startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * Ingest against fauxqs SQS with the emitter: duplicates collapse into one job and one
 * verdict, malformed messages never stop the loop, and a message is deleted only once its
 * job is in Redis.
 */
describe("ingest", () => {
  let s: PipelineStack;
  let queueUrl: string;
  beforeAll(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", workerRoles: null });
    queueUrl = s.storage.env.SQS_QUEUE_URL!;
  });
  afterAll(async () => s?.close());

  async function jobsFor(stage: "inspect" | "scan" | "finalize", uploadId: string) {
    const jobs = await s.queues.queue(stage).getJobs(["completed", "active", "waiting", "delayed", "failed", "prioritized"]);
    return jobs.filter((j) => j.data.uploadId === uploadId);
  }

  it("keeps the SQS message while Redis is unreachable, and enqueues once Redis is back", async () => {
    const deadRedis = new StageQueues({ redis: { url: "redis://127.0.0.1:1" }, prefix: s.config.redis.prefix, attempts: 1, backoffMs: 10 });
    const logs: string[] = [];
    const logger = createLogger({ level: "info", name: "ingest", destination: { write: (l: string) => void logs.push(l) } });
    const loop = new IngestLoop({ events: s.storage.events!, repository: s.uploads, audit: s.audit, store: s.storage.store, queues: deadRedis, logger });
    await fastRedrive(s.storage.sqs!, queueUrl, `${s.storage.queueName}-dlq`, 50);
    const bytes = png();
    loop.start();
    const { id } = await s.upload(bytes, { contentType: "image/png" });
    await s.waitFor(id, ["uploaded"]);
    await waitFor(() => logs.some((l) => l.includes("stays in the queue")), { timeoutMs: 10_000, message: "ingest to log that the event stays in the queue while Redis is down" });
    await loop.stop();
    await deadRedis.close();
    expect(await jobsFor("inspect", id)).toHaveLength(0);

    // The same message, delivered again, now reaches a working Redis.
    await s.startWorker("all");
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done.status).toBe("verified");
  });

  it("makes one job and one verdict of an event delivered twice plus the client's complete", async () => {
    const bytes = pdf("duplicates");
    const { id } = await s.upload(bytes, { contentType: "application/pdf", complete: true });
    const key = objectKey("pending", s.tenant, id);
    await send(s.storage.sqs!, queueUrl, objectCreatedBody(s.storage.bucket, key, bytes.length));
    await send(s.storage.sqs!, queueUrl, objectCreatedBody(s.storage.bucket, key, bytes.length));
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done.status).toBe("verified");
    // A late duplicate after the verdict changes nothing either.
    await send(s.storage.sqs!, queueUrl, objectCreatedBody(s.storage.bucket, key, bytes.length));
    // Handled once ingest deleted it: nothing visible or in flight on the queue any more.
    await waitFor(async () => (await queueDepth(s.storage.sqs!, queueUrl)) === 0, { timeoutMs: 15_000, message: "ingest to take and delete the late duplicate" });

    const actions = await s.auditActions(id);
    expect(actions.filter((a) => a === "upload.verified")).toHaveLength(1);
    expect(actions.filter((a) => a === "upload.uploaded")).toHaveLength(1);
    expect(actions.filter((a) => a === "upload.deciding")).toHaveLength(1);
    expect(actions).not.toContain("object.stray_deleted");
    // Checked in one pass: one scan job did every stage (its return value says so), and
    // neither the complete call nor the duplicates made a second one.
    expect((await jobsFor("scan", id)).map((j) => j.id)).toEqual([stageJobId("scan", id)]);
    expect((await jobsFor("scan", id))[0]!.returnvalue).toMatchObject({ path: "one-pass", verdict: "clean" });
    expect(await jobsFor("finalize", id)).toHaveLength(0);
    expect((await s.uploads.getById(id))?.status).toBe("verified");
  });

  it("handles malformed and foreign messages without stopping the loop", async () => {
    const dlqUrl = await fastRedrive(s.storage.sqs!, queueUrl, `${s.storage.queueName}-dlq`, 2);
    const notJson = "this is not json {";
    const notS3 = JSON.stringify({ hello: "world" });
    await send(s.storage.sqs!, queueUrl, notJson);
    await send(s.storage.sqs!, queueUrl, notS3);
    await send(s.storage.sqs!, queueUrl, JSON.stringify({ Service: "Amazon S3", Event: "s3:TestEvent", Time: new Date().toISOString(), Bucket: s.storage.bucket }));
    await send(s.storage.sqs!, queueUrl, objectCreatedBody(s.storage.bucket, "verified/acme/somebody-elses", 10));
    await send(s.storage.sqs!, queueUrl, objectCreatedBody("another-bucket", "pending/acme/x", 10));
    // An object under pending/ that no upload row claims (a forged key): the emitter's own
    // event reports it, like any S3 PUT.
    const forged = "pending/acme/forged0123456789";
    await s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: forged, Body: png() }));
    // A key with a space, URL-encoded with '+' by S3, that is not one of ours either.
    await s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: "pending/acme/with space", Body: "x" }));

    // The loop is still running: a real upload after all that is verified.
    const bytes = png(5, 5);
    const { id } = await s.upload(bytes, { contentType: "image/png" });
    expect((await s.waitFor(id, ["verified", "quarantined"])).status).toBe("verified");

    await waitFor(async () => (await s.storage.store.head(forged)) === null, { timeoutMs: 15_000, intervalMs: 100, message: `ingest to delete the forged object ${forged}` });
    expect(await s.storage.store.head("pending/acme/with space")).toBeNull();
    const strays = await s.audit.byAction("object.stray_deleted");
    expect(strays.map((r) => r.objectKey).sort()).toEqual([forged, "pending/acme/with space"]);
    expect(strays[0]!.detail.reason).toMatch(/no upload row/);

    // The two it could not understand went to the dead-letter queue through the redrive
    // policy; the understood ones (TestEvent, foreign keys and buckets) were deleted.
    const dead = await receiveBodies(s.storage.sqs!, dlqUrl, 2, 15_000);
    expect(dead.sort()).toEqual([notS3, notJson].sort());
    const logText = s.workerLogs.join("");
    expect(logText).toContain("body is not JSON: left for the dead-letter queue");
    expect(logText).toContain("event for a key outside pending/ ignored");
    expect(logText).toContain("event for another bucket ignored");
  });
});
