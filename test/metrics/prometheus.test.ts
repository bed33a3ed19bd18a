import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, waitFor } from "@intake/testkit";
import { eicar, plainText, png } from "../pipeline/fixtures.ts";
import { startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";
import { startPrometheus, type RunningPrometheus } from "./prometheus-server.ts";

const ALERTS = readFileSync(join(import.meta.dirname, "../../infra/prometheus/alerts.yml"), "utf8");

/**
 * Issue 10 section 5, end to end: a real Prometheus scrapes the real API's /metrics and a
 * real worker's listener (both with the bearer token) every second while clean and EICAR
 * uploads go through the whole pipeline (fauxqs, SQLite, Redis, clamd), and the counters
 * are read back through Prometheus's query API, as a dashboard or an alert would read them.
 */
describe("metrics scraped by a real Prometheus during a run of clean and infected uploads", () => {
  const token = randomBytes(24).toString("hex");
  let stack: PipelineStack;
  let prometheus: RunningPrometheus;
  let workerMetricsPort: number;

  beforeAll(async () => {
    workerMetricsPort = await freePort();
    stack = await startPipelineStack({
      storage: "fauxqs",
      database: "sqlite",
      // Uploads above 2 KiB go through the stage queues one by one, the rest in one pass:
      // both paths are timed.
      env: { METRICS_TOKEN: token, WORKER_METRICS_HOST: "127.0.0.1", WORKER_METRICS_PORT: String(workerMetricsPort), ONE_PASS_MAX_BYTES: "2048" },
    });
    const api = new URL(stack.apiUrl).host;
    const target = (job: string, host: string, credentials: string) => `
  - job_name: ${job}
    scrape_interval: 1s
    scrape_timeout: 900ms
    authorization: { type: Bearer, credentials: "${credentials}" }
    static_configs: [{ targets: ["${host}"] }]`;
    prometheus = await startPrometheus(
      `global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: [alerts.yml]
scrape_configs:${target("intake-api", api, token)}${target("intake-workers", `127.0.0.1:${workerMetricsPort}`, token)}${target("intake-api-wrong-token", api, "not-the-token-0123456789")}
`,
      { "alerts.yml": ALERTS },
    );
  });
  afterAll(async () => {
    await prometheus?.stop();
    await stack?.close();
  });

  /** Waits until `expr` has a sample satisfying `ok` (Prometheus scrapes every second). */
  const eventually = async (expr: string, ok: (v: number) => boolean, what: string) => {
    let last: unknown;
    return waitFor(
      async () => {
        const r = await prometheus.query(expr);
        last = r;
        return r.length > 0 && r.every((s) => ok(s.value)) ? r : null;
      },
      { timeoutMs: 20_000, intervalMs: 250, message: `${what} (${expr})`, describeLast: () => last },
    );
  };

  it("counts uploads created, verdicts by reason, stage and verdict times, queue waits; shows queue depth and clamd", async () => {
    const clean = [plainText(), png(64, 64)];
    expect(clean[1]!.length).toBeGreaterThan(2048); // the staged path
    const ids = [
      (await stack.upload(clean[0]!, { contentType: "text/plain", filename: "notes.txt" })).id,
      (await stack.upload(clean[1]!, { contentType: "image/png", filename: "picture.png" })).id,
      (await stack.upload(eicar(), { contentType: "text/plain", filename: "eicar.txt" })).id,
    ];
    const done = await Promise.all(ids.map((id) => stack.waitFor(id, ["verified", "quarantined"])));
    expect(done.map((u) => [u.status, u.reason])).toEqual([
      ["verified", null],
      ["verified", null],
      ["quarantined", "malware"],
    ]);

    await eventually('intake_uploads_created_total{job="intake-api",kind="single"}', (v) => v === 3, "uploads created, from the API");
    await eventually('intake_verdicts_total{job="intake-workers",reason="clean"}', (v) => v === 2, "clean verdicts");
    await eventually('intake_verdicts_total{job="intake-workers",reason="malware"}', (v) => v === 1, "malware verdicts");
    await eventually('sum(intake_verdicts_total{job="intake-workers",reason!~"clean|malware"})', (v) => v === 0, "no other verdict");

    // Histograms: one observation per upload for the time to verdict; per path for stages.
    await eventually('sum(intake_upload_to_verdict_seconds_count{job="intake-workers"})', (v) => v === 3, "upload-to-verdict observations");
    await eventually('intake_upload_to_verdict_seconds_count{job="intake-workers",outcome="quarantine"}', (v) => v === 1, "quarantine verdict times");
    await eventually('sum(intake_upload_to_final_seconds_count{job="intake-workers"})', (v) => v === 3, "upload-to-final observations");
    await eventually('intake_stage_duration_seconds_count{job="intake-workers",stage="scan",path="one_pass"}', (v) => v === 2, "one-pass scans timed");
    await eventually('intake_stage_duration_seconds_count{job="intake-workers",stage="inspect",path="staged"}', (v) => v === 1, "staged inspection timed");
    await eventually('intake_stage_duration_seconds_count{job="intake-workers",stage="scan",path="staged"}', (v) => v === 1, "staged scan timed");
    await eventually('histogram_quantile(0.5, sum by (le) (intake_upload_to_verdict_seconds_bucket{job="intake-workers"}))', (v) => v > 0 && v < 60, "a median time to verdict");
    // First attempts of every stage job were picked up from their queue; the jobs completed.
    // Scan jobs: the two one-pass checks and the staged upload's scan (which promotes from
    // its own copy, so no finalize job).
    await eventually('intake_queue_wait_seconds_count{job="intake-workers",queue="intake-scan"}', (v) => v === 3, "scan jobs' queue waits");
    await eventually('intake_queue_wait_seconds_count{job="intake-workers",queue="intake-inspect"}', (v) => v === 1, "inspect job's queue wait");
    await eventually('intake_jobs_total{job="intake-workers",queue="intake-scan",outcome="completed"}', (v) => v === 3, "scan jobs completed");
    // SQS receive lag: each batch ingest received (its SentTimestamp), as the health page shows it.
    await eventually('intake_storage_event_lag_seconds_count{job="intake-workers"}', (v) => v >= 1, "SQS receive lag observed");

    // Read when scraped: queue depth from the API (every watched queue, every state), clamd.
    const depth = await eventually('intake_queue_jobs{job="intake-api"}', (v) => v >= 0, "queue depth gauges");
    const queues = new Set(depth.map((s) => s.metric.queue));
    for (const q of ["intake-inspect", "intake-scan", "intake-finalize", "intake-reaper", "intake-webhooks"]) expect(queues).toContain(q);
    expect(new Set(depth.map((s) => s.metric.state))).toEqual(new Set(["waiting", "active", "delayed", "failed"]));
    await eventually('intake_queue_oldest_waiting_seconds{job="intake-api",queue="intake-scan"}', (v) => v >= 0, "oldest waiting job's age");
    await eventually("intake_redis_up", (v) => v === 1, "Redis up");
    const clamd = await eventually("intake_clamd_up", (v) => v === 1, "clamd up");
    expect(new Set(clamd.map((s) => s.metric.job))).toEqual(new Set(["intake-api", "intake-workers"]));
    // This machine's clamd runs the generated test database: flagged, as it must be.
    await eventually("intake_clamd_test_signatures_only", (v) => v === 1, "test signatures flagged");
    await eventually('intake_clamd_signature_max_age_seconds{job="intake-api"}', (v) => v === stack.config.signatures.maxAgeHours * 3600, "the configured signature age limit");
    await eventually('intake_processing_oldest_idle_seconds{job="intake-api"}', (v) => v === 0, "nothing idle in processing");
    // Node's process metrics from both.
    const cpu = await eventually("process_cpu_user_seconds_total", (v) => v > 0, "process CPU");
    expect(new Set(cpu.map((s) => s.metric.job))).toEqual(new Set(["intake-api", "intake-workers"]));
  });

  it("scrapes with the token, and a scrape with a wrong token is refused (401)", async () => {
    const targets = await waitFor(
      async () => {
        const t = await prometheus.get<{ activeTargets: { labels: { job: string }; health: string; lastError: string }[] }>("/api/v1/targets");
        return t.activeTargets.length === 3 && t.activeTargets.every((x) => x.health !== "unknown") ? t.activeTargets : null;
      },
      { timeoutMs: 10_000, message: "every target scraped once" },
    );
    const byJob = Object.fromEntries(targets.map((t) => [t.labels.job, t]));
    expect(byJob["intake-api"]).toMatchObject({ health: "up", lastError: "" });
    expect(byJob["intake-workers"]).toMatchObject({ health: "up", lastError: "" });
    expect(byJob["intake-api-wrong-token"]!.health).toBe("down");
    expect(byJob["intake-api-wrong-token"]!.lastError).toMatch(/401/);
  });

  it("loads the shipped alert rules, and flags this machine's test signatures as pending", async () => {
    const rules = await prometheus.get<{ groups: { rules: { name: string; health: string; state: string }[] }[] }>("/api/v1/rules");
    const all = rules.groups.flatMap((g) => g.rules);
    expect(all.map((r) => r.name)).toEqual(expect.arrayContaining(["IntakeClamdDown", "IntakeTestSignaturesOnly", "IntakeSignaturesTooOld", "IntakeDeadLetterQueueNotEmpty", "IntakeUploadsStuck", "IntakeWebhookDeliveriesFailing"]));
    expect(all.filter((r) => r.health !== "ok" && r.health !== "unknown")).toEqual([]);
    await waitFor(
      async () => {
        const a = await prometheus.get<{ alerts: { labels: { alertname: string }; state: string }[] }>("/api/v1/alerts");
        return a.alerts.some((x) => x.labels.alertname === "IntakeTestSignaturesOnly" && x.state === "pending");
      },
      { timeoutMs: 10_000, message: "IntakeTestSignaturesOnly pending (its for: 5m keeps it from firing here)" },
    );
  });
});
