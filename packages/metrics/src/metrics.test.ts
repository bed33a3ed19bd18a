import { randomBytes } from "node:crypto";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeClamd, type FakeClamd } from "@intake/testkit";
import { createClamdScanner } from "@intake/scanner";
import { checkMetricsBearer } from "./bearer.ts";
import { readQueues, signatureDate } from "./collectors.ts";
import { METRICS, VERDICT_REASONS } from "./definitions.ts";
import { createMetrics } from "./registry.ts";
import { healthFromReport } from "./sources.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const sample = (text: string, series: string) => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe("the metric definitions", () => {
  it("are all intake_ names Prometheus accepts, with bounded label names only", () => {
    for (const m of Object.values(METRICS)) {
      expect(m.name).toMatch(/^intake_[a-z0-9_]+$/);
      if (m.type === "counter") expect(m.name).toMatch(/_total$/);
      if (m.type === "histogram") expect(m.name).toMatch(/_seconds$/);
      for (const label of m.labelNames) expect(["kind", "reason", "outcome", "stage", "path", "queue", "state", "action", "collector", "process", "env"]).toContain(label);
    }
  });
});

describe("the registry and the pipeline's hooks", () => {
  it("starts every verdict reason at 0 and counts a finished upload once, with its times", async () => {
    const m = createMetrics({ process: "worker", env: "test" });
    let text = await m.scrape();
    for (const reason of VERDICT_REASONS) expect(sample(text, `intake_verdicts_total{reason="${reason}"}`)).toBe(0);
    const uploadedAt = new Date("2026-01-01T00:00:00Z");
    m.pipeline.uploadFinished({ status: "quarantined", reason: "malware", createdAt: new Date("2025-12-31T23:59:00Z"), uploadedAt, decidedAt: new Date(uploadedAt.getTime() + 1500), finishedAt: new Date(uploadedAt.getTime() + 2000) });
    m.pipeline.uploadFinished({ status: "verified", reason: null, createdAt: uploadedAt, uploadedAt: null, decidedAt: new Date(uploadedAt.getTime() + 40), finishedAt: new Date(uploadedAt.getTime() + 50) });
    m.pipeline.uploadFinished({ status: "expired", reason: null, createdAt: uploadedAt, uploadedAt: null, decidedAt: null, finishedAt: null });
    m.pipeline.uploadFinished({ status: "quarantined", reason: "a-reason-nobody-knows", createdAt: uploadedAt, uploadedAt, decidedAt: null, finishedAt: null });
    text = await m.scrape();
    expect(sample(text, 'intake_verdicts_total{reason="malware"}')).toBe(1);
    expect(sample(text, 'intake_verdicts_total{reason="clean"}')).toBe(1);
    expect(sample(text, 'intake_verdicts_total{reason="unknown"}')).toBe(1); // bounded: never the raw value
    expect(sample(text, 'intake_upload_to_verdict_seconds_sum{outcome="quarantine"}')).toBe(1.5);
    expect(sample(text, 'intake_upload_to_verdict_seconds_bucket{le="2",outcome="quarantine"}')).toBe(1);
    expect(sample(text, 'intake_upload_to_final_seconds_sum{outcome="clean"}')).toBe(0.05);
  });

  it("counts a recheck's outcome in intake_rechecks_total, from 0, and never again in intake_verdicts_total", async () => {
    const m = createMetrics({ process: "worker", env: "test" });
    let text = await m.scrape();
    expect(sample(text, 'intake_rechecks_total{outcome="verified",reason="clean"}')).toBe(0);
    for (const reason of VERDICT_REASONS.filter((r) => r !== "clean")) expect(sample(text, `intake_rechecks_total{outcome="quarantined",reason="${reason}"}`)).toBe(0);
    // A released upload promoted keeps the reason it was first quarantined for: the recheck's is clean.
    m.pipeline.recheckFinished({ status: "verified", reason: "scan_error" });
    m.pipeline.recheckFinished({ status: "quarantined", reason: "malware" });
    m.pipeline.recheckFinished({ status: "quarantined", reason: "a-reason-nobody-knows" });
    m.pipeline.recheckFinished({ status: "rechecking", reason: "malware" }); // not an end: not counted
    text = await m.scrape();
    expect(sample(text, 'intake_rechecks_total{outcome="verified",reason="clean"}')).toBe(1);
    expect(sample(text, 'intake_rechecks_total{outcome="verified",reason="scan_error"}')).toBeUndefined();
    expect(sample(text, 'intake_rechecks_total{outcome="quarantined",reason="malware"}')).toBe(1);
    expect(sample(text, 'intake_rechecks_total{outcome="quarantined",reason="unknown"}')).toBe(1);
    for (const reason of VERDICT_REASONS) expect(sample(text, `intake_verdicts_total{reason="${reason}"}`)).toBe(0);
    expect(sample(text, 'intake_upload_to_verdict_seconds_count{outcome="clean"}')).toBe(0);
    // The API exports no recheck counter; its observer's hook does nothing.
    const api = createMetrics({ process: "api", env: "test" });
    api.pipeline.recheckFinished({ status: "verified", reason: null });
    expect(await api.scrape()).not.toMatch(/intake_rechecks_total/);
  });

  it("times stages, queue waits, job outcomes, the reaper's actions, receive lag and webhook deliveries", async () => {
    const m = createMetrics({ process: "worker", env: "test" });
    expect(await m.scrape()).not.toMatch(/^intake_reaper_last_pass_timestamp_seconds /m); // no pass yet: no sample
    m.pipeline.stageDone("scan", "staged", 250);
    m.pipeline.jobPicked("intake-scan", -5); // clock skew: never a negative wait
    m.pipeline.jobFinished("intake-scan", "retried");
    m.pipeline.reaperPass({ expired: 2, arrivedLate: 0, multipartAborted: 1, orphansAborted: 0, requeued: 3, purged: 0, stagingSwept: 5, inProgress: 4 });
    m.pipeline.storageEventReceived(1200);
    m.webhooks.delivery("delivered", 30);
    m.webhooks.delivery("something-new", 10);
    const text = await m.scrape();
    expect(sample(text, 'intake_stage_duration_seconds_sum{stage="scan",path="staged"}')).toBe(0.25);
    expect(sample(text, 'intake_stage_duration_seconds_count{stage="inspect",path="one_pass"}')).toBe(0);
    expect(sample(text, 'intake_queue_wait_seconds_sum{queue="intake-scan"}')).toBe(0);
    expect(sample(text, 'intake_jobs_total{queue="intake-scan",outcome="retried"}')).toBe(1);
    expect(sample(text, 'intake_reaper_actions_total{action="expired"}')).toBe(2);
    expect(sample(text, 'intake_reaper_actions_total{action="requeued"}')).toBe(3);
    expect(sample(text, 'intake_reaper_actions_total{action="purged"}')).toBe(0);
    expect(sample(text, 'intake_reaper_actions_total{action="staging_swept"}')).toBe(5);
    expect(sample(text, "intake_reaper_in_progress_uploads")).toBe(4);
    expect(Math.abs(sample(text, "intake_reaper_last_pass_timestamp_seconds")! - Date.now() / 1000)).toBeLessThan(5);
    expect(sample(text, "intake_storage_event_lag_seconds_sum")).toBe(1.2);
    expect(sample(text, 'intake_webhook_deliveries_total{outcome="delivered"}')).toBe(1);
    expect(sample(text, 'intake_webhook_deliveries_total{outcome="other"}')).toBe(1);
  });

  it("exports per process what that process knows: no queue or clamd gauge without a source", async () => {
    const worker = createMetrics({ process: "worker", env: "test" });
    const text = await worker.scrape();
    for (const absent of ["intake_uploads_created_total", "intake_clamd_up", "intake_queue_jobs", "intake_redis_up", "intake_dlq_messages"]) expect(text).not.toMatch(new RegExp(`^${absent}`, "m"));
    expect(text).toMatch(/^intake_process_info\{process="worker",env="test"\} 1$/m);
    const api = createMetrics({ process: "api", env: "production" });
    api.uploads.uploadCreated("multipart");
    const apiText = await api.scrape();
    expect(sample(apiText, 'intake_uploads_created_total{kind="multipart"}')).toBe(1);
    expect(sample(apiText, 'intake_uploads_created_total{kind="single"}')).toBe(0);
    expect(apiText).not.toMatch(/^intake_verdicts_total/m);
  });
});

describe("scrape-time gauges", () => {
  let redis: Redis;
  let clamd: FakeClamd;
  const prefix = `m${randomBytes(5).toString("hex")}`;
  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    clamd = await startFakeClamd("ClamAV 1.4.6/27441/Tue Jan  6 09:00:00 2026");
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await clamd?.close();
  });

  it("reads each queue's depth by state and its oldest waiting job's age from Redis", async () => {
    const queue = new Queue("intake-scan", { connection: redis, prefix });
    try {
      await queue.add("scan", { v: 1 }, { timestamp: Date.now() - 30_000 });
      await queue.add("scan", { v: 1 });
      await queue.add("scan", { v: 1 }, { delay: 60_000 });
      const [r] = await readQueues([queue]);
      expect(r!.queue).toBe("intake-scan");
      expect(r!.counts).toEqual({ waiting: 2, active: 0, delayed: 1, failed: 0 });
      expect(r!.oldestWaitingSeconds).toBeGreaterThanOrEqual(29);
      expect(r!.oldestWaitingSeconds).toBeLessThan(60);

      const m = createMetrics({ process: "api", env: "test", sources: { queues: [queue] } });
      const text = await m.scrape();
      expect(sample(text, 'intake_queue_jobs{queue="intake-scan",state="waiting"}')).toBe(2);
      expect(sample(text, 'intake_queue_jobs{queue="intake-scan",state="delayed"}')).toBe(1);
      expect(sample(text, "intake_redis_up")).toBe(1);
    } finally {
      await queue.close();
    }
  });

  it("a Redis that does not answer: redis_up 0, no depth at all, an error counted, and the scrape still ends in time", async () => {
    // A worker-style connection never gives up a command: only the collector's deadline ends the wait.
    const dead = new Redis("redis://127.0.0.1:1", { maxRetriesPerRequest: null, lazyConnect: true, retryStrategy: () => 200 });
    dead.on("error", () => undefined);
    const queue = new Queue("intake-scan", { connection: dead, prefix });
    queue.on("error", () => undefined);
    try {
      const m = createMetrics({ process: "api", env: "test", sources: { queues: [queue] } });
      const started = Date.now();
      const text = await m.scrape();
      expect(Date.now() - started).toBeLessThan(5000);
      expect(sample(text, "intake_redis_up")).toBe(0);
      expect(text).not.toMatch(/^intake_queue_jobs\{/m);
      expect(sample(await m.scrape(), 'intake_metrics_collect_errors_total{collector="queues"}')).toBeGreaterThanOrEqual(1);
    } finally {
      await queue.close().catch(() => undefined);
      dead.disconnect();
    }
  });

  it("reads clamd's VERSION: up, signature version and age; a stopped clamd is down with no age", async () => {
    const scanner = createClamdScanner({ host: "127.0.0.1", port: clamd.port, connectTimeoutMs: 1000 });
    const m = createMetrics({ process: "worker", env: "test", sources: { clamd: scanner, signatureMaxAgeHours: 48 } });
    const text = await m.scrape();
    expect(sample(text, "intake_clamd_up")).toBe(1);
    expect(sample(text, "intake_clamd_signature_version")).toBe(27441);
    expect(sample(text, "intake_clamd_test_signatures_only")).toBe(0);
    expect(sample(text, "intake_clamd_signature_max_age_seconds")).toBe(48 * 3600);
    const age = sample(text, "intake_clamd_signature_age_seconds")!;
    expect(Math.abs(age - (Date.now() - Date.parse("2026-01-06T09:00:00Z")) / 1000)).toBeLessThan(5);

    const down = createMetrics({ process: "worker", env: "test", sources: { clamd: createClamdScanner({ host: "127.0.0.1", port: 1, connectTimeoutMs: 500 }) } });
    const downText = await down.scrape();
    expect(sample(downText, "intake_clamd_up")).toBe(0);
    expect(downText).not.toMatch(/^intake_clamd_signature_age_seconds /m); // unknown is not fresh
    expect(downText).not.toMatch(/^intake_clamd_test_signatures_only /m);
  });

  it("flags test signatures (no database named) and reads no age from them", async () => {
    const test = await startFakeClamd("ClamAV 1.4.6");
    try {
      const m = createMetrics({ process: "worker", env: "test", sources: { clamd: createClamdScanner({ host: "127.0.0.1", port: test.port }) } });
      const text = await m.scrape();
      expect(sample(text, "intake_clamd_test_signatures_only")).toBe(1);
      expect(sample(text, "intake_clamd_signature_version")).toBe(0);
      expect(text).not.toMatch(/^intake_clamd_signature_age_seconds /m);
    } finally {
      await test.close();
    }
  });

  it("the health facts: dead letters and the oldest idle upload, or no sample when unknown", async () => {
    let report = { sqs: { deadLetters: { depth: 2, inFlight: 1 } as { depth: number; inFlight: number } | null }, processing: { oldest: { ageSeconds: 1234 } as { ageSeconds: number } | null, stuckAfterSeconds: 900, error: undefined as string | undefined } };
    const m = createMetrics({ process: "api", env: "test", sources: { health: healthFromReport(async () => report, 900) } });
    let text = await m.scrape();
    expect(sample(text, "intake_dlq_messages")).toBe(3);
    expect(sample(text, "intake_processing_oldest_idle_seconds")).toBe(1234);
    expect(sample(text, "intake_stuck_after_seconds")).toBe(900);
    report = { sqs: { deadLetters: null }, processing: { oldest: null, stuckAfterSeconds: 900, error: "timeout" } };
    await new Promise((r) => setTimeout(r, 1100)); // past the per-scrape reuse of a reading
    text = await m.scrape();
    expect(text).not.toMatch(/^intake_dlq_messages /m);
    expect(text).not.toMatch(/^intake_processing_oldest_idle_seconds /m);
  });

  it("reads clamd's ctime date as UTC", () => {
    expect(signatureDate({ signaturesDate: "Sat Nov 21 09:25:02 2026" })).toBe(Date.parse("2026-11-21T09:25:02Z"));
    expect(signatureDate({ raw: "ClamAV 1.4.6/27441/Tue Jan  6 09:00:00 2026" })).toBe(Date.parse("2026-01-06T09:00:00Z"));
    expect(signatureDate({ raw: "ClamAV 1.4.6" })).toBeNull();
    expect(signatureDate({ signaturesDate: "not a date" })).toBeNull();
  });
});

describe("the metrics bearer rule", () => {
  const token = "0123456789abcdef0123456789abcdef";
  it.each([
    [undefined, token, "absent"],
    ["", token, "absent"],
    [`Bearer ${token}`, token, "valid"],
    [`bearer ${token}`, token, "valid"],
    [`Bearer ${token}x`, token, "invalid"],
    [`Bearer ${token.slice(1)}`, token, "invalid"],
    [`Basic ${token}`, token, "invalid"],
    [token, token, "invalid"],
    [`Bearer ${token} extra`, token, "invalid"],
    [`Bearer ${token}`, undefined, "invalid"],
    ["Bearer ", undefined, "invalid"],
  ] as const)("%s against %s: %s", (header, configured, expected) => {
    expect(checkMetricsBearer(header, configured)).toBe(expected);
  });
});
