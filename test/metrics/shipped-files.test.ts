import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { createMetrics, healthFromReport, METRICS } from "@intake/metrics";
import { familyOf, metricNamesIn } from "./promql-names.ts";

/**
 * What operators load into their own tools (infra/prometheus, infra/grafana): the alert
 * rules pass promtool's check and their unit tests, the example configuration is valid,
 * and every metric the rules and the dashboard read is one Intake exports.
 */
const run = promisify(execFile);
const PROMTOOL = process.env.PROMTOOL_BIN ?? "/usr/bin/promtool";
const root = join(import.meta.dirname, "../..");
const prometheusDir = join(root, "infra/prometheus");

/** Every family name the API's and a scanning worker's registries export, with every source given. */
function exportedFamilies(): Set<string> {
  const queue = { name: "q", getJobCounts: async () => ({}), getWaiting: async () => [] };
  const clamd = { version: async () => ({ signatures: "27000", signaturesDate: "Sat Nov 21 09:25:02 2026" }) };
  const health = healthFromReport(async () => ({ sqs: { deadLetters: null }, processing: { oldest: null, stuckAfterSeconds: 900 } }), 900);
  const api = createMetrics({ process: "api", env: "test", sources: { queues: [queue], clamd, signatureMaxAgeHours: 48, health } });
  const worker = createMetrics({ process: "worker", env: "test", sources: { clamd, signatureMaxAgeHours: 48 } });
  return new Set([...api.names(), ...worker.names(), "up"]);
}

function unknownNames(exprs: string[], families: Set<string>): string[] {
  return [...new Set(exprs.flatMap(metricNamesIn))].filter((n) => !families.has(familyOf(n, families)));
}

describe("shipped Prometheus rules and configuration", () => {
  it("promtool finds the alert rules valid", async () => {
    expect(existsSync(PROMTOOL), `${PROMTOOL} missing: install Debian's prometheus package`).toBe(true);
    const { stdout } = await run(PROMTOOL, ["check", "rules", "alerts.yml"], { cwd: prometheusDir });
    expect(stdout).toMatch(/SUCCESS: \d+ rules found/);
  });

  it("the alert rules pass their unit tests (promtool test rules alerts.test.yml)", async () => {
    const out = await run(PROMTOOL, ["test", "rules", "alerts.test.yml"], { cwd: prometheusDir }).catch((err: { stdout?: string; stderr?: string }) => {
      throw new Error(`promtool test rules failed:\n${err.stdout ?? ""}${err.stderr ?? ""}`);
    });
    expect(out.stdout).toMatch(/SUCCESS/);
  });

  it("every alert named in the rules has a unit test, and the required ones exist", () => {
    const rules = readFileSync(join(prometheusDir, "alerts.yml"), "utf8");
    const tests = readFileSync(join(prometheusDir, "alerts.test.yml"), "utf8");
    const alerts = [...rules.matchAll(/^\s*- alert: (\S+)/gm)].map((m) => m[1]!);
    for (const required of ["IntakeSignaturesTooOld", "IntakeTestSignaturesOnly", "IntakeDeadLetterQueueNotEmpty", "IntakeUploadsStuck", "IntakeClamdDown", "IntakeWebhookDeliveriesFailing", "IntakeQueueBacklogGrowing", "IntakeNoVerdictsWhileUploadsArrive"]) {
      expect(alerts).toContain(required);
    }
    for (const alert of alerts) expect(tests, `no test fires ${alert}`).toMatch(new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
  });

  it("the alert rules read only metrics Intake exports", () => {
    const rules = readFileSync(join(prometheusDir, "alerts.yml"), "utf8");
    const exprs = [...rules.matchAll(/expr: (\|\n(?:\s{10}.*\n)+|.*)/g)].map((m) => m[1]!.replace(/^\|/, ""));
    expect(exprs.length).toBeGreaterThan(10);
    expect(unknownNames(exprs, exportedFamilies())).toEqual([]);
  });

  it("promtool finds the example configuration valid", async () => {
    const dir = mkdtempSync(join(tmpdir(), "intake-promconfig-"));
    try {
      // The example names a token file on the Prometheus host; here, a file of our own.
      writeFileSync(join(dir, "token"), "a-token-for-the-check-only\n");
      copyFileSync(join(prometheusDir, "alerts.yml"), join(dir, "alerts.yml"));
      const config = readFileSync(join(prometheusDir, "prometheus.yml"), "utf8").replaceAll("/etc/prometheus/intake-metrics-token", join(dir, "token"));
      writeFileSync(join(dir, "prometheus.yml"), config);
      const { stdout } = await run(PROMTOOL, ["check", "config", "prometheus.yml"], { cwd: dir });
      expect(stdout).toMatch(/SUCCESS/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the Grafana dashboard", () => {
  const dashboard = JSON.parse(readFileSync(join(root, "infra/grafana/intake-dashboard.json"), "utf8")) as {
    uid: string;
    title: string;
    panels: { type: string; title: string; targets?: { expr: string; refId: string }[]; gridPos: { x: number; w: number } }[];
  };
  const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));

  it("parses, and every panel but the rows has a query on the Prometheus datasource", () => {
    expect(dashboard.uid).toBe("intake-pipeline");
    const panels = dashboard.panels.filter((p) => p.type !== "row");
    expect(panels.length).toBeGreaterThan(20);
    for (const p of panels) {
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
    }
  });

  it("reads only metrics Intake exports", () => {
    expect(unknownNames(exprs, exportedFamilies())).toEqual([]);
  });

  it("shows every intake_ metric of the definitions", () => {
    const used = new Set(exprs.flatMap(metricNamesIn).map((n) => familyOf(n, exportedFamilies())));
    const shown = Object.values(METRICS).map((m) => m.name).filter((n) => !used.has(n));
    // Exported for joins (process and environment), not a panel of its own.
    expect(shown).toEqual(["intake_process_info"]);
  });

  it("the name extractor it is checked with finds names and skips functions, labels and grouping", () => {
    expect(metricNamesIn('histogram_quantile(0.95, sum by (le, queue) (rate(intake_queue_wait_seconds_bucket{queue!="x"}[5m])))')).toEqual(["intake_queue_wait_seconds_bucket"]);
    expect(metricNamesIn("time() - max(intake_reaper_last_pass_timestamp_seconds) > 3600")).toEqual(["intake_reaper_last_pass_timestamp_seconds"]);
    expect(metricNamesIn("a_total / on(instance) group_left b_info")).toEqual(["a_total", "b_info"]);
  });
});
