import { randomUUID } from "node:crypto";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "@intake/testkit";
import { startPipelineStack, type PipelineStack } from "./support/stack.ts";
import { startClamdTap, type ClamdTap } from "./support/clamd-tap.ts";
import { startSmallClamd, type SmallClamd } from "../support/small-clamd.ts";

/**
 * A scan that spans a signature change. clamd's RELOAD swaps the engine under scans already
 * running, which finish with the old one: a scan whose answer arrives after the worker saw
 * the new signatures was made with the old ones. Recorded under the new version it would
 * claim a clearance the new signatures never gave: the rescan for that version skips it
 * (already cleared), and the verdict cache serves the same bytes again under the new version
 * without clamd, so a rule added for exactly these bytes would never see them.
 *
 * The tap in front of a clamd of the test's own holds clamd's answer (clamd has scanned the
 * bytes with the old rules: "OK") while the test loads a YARA rule that matches them and
 * waits for the worker to see it, then lets the answer through.
 */
const CLI = fileURLToPath(new URL("../../services/worker/src/signatures-cli.ts", import.meta.url));
const final = ["verified", "quarantined", "held"] as const;

const notes = (marker: string, kib: number) => {
  const line = "Minutes of the meeting; nothing unusual.\n";
  return Buffer.from(`${marker}\n${line.repeat(Math.ceil((kib * 1024) / line.length))}`);
};

describe("a scan that spans a signature change is not recorded under the new signatures", () => {
  let clamd: SmallClamd;
  let tap: ClamdTap;
  let s: PipelineStack;
  let rulesDir: string;
  beforeAll(async () => {
    clamd = await startSmallClamd({ maxFileSize: 10 * 1024 * 1024 });
    rulesDir = join(clamd.dataDir, "rules");
    mkdirSync(rulesDir);
    tap = await startClamdTap({ host: "127.0.0.1", port: clamd.port });
    s = await startPipelineStack({
      storage: "fauxqs",
      database: "sqlite",
      env: { ...clamd.env, CLAMD_PORT: String(tap.port), VERDICT_CACHE: "true", SIGNATURE_CHECK_SECONDS: "1", ONE_PASS_MAX_BYTES: "32768", JOB_BACKOFF_MS: "200", WORKER_METRICS_PORT: "0" },
    });
  }, 120_000);
  afterAll(async () => {
    await s?.close();
    await tap?.close();
    clamd?.close();
  });

  it("one pass and staged: the old engine's OK that arrives after the new rule loaded is scanned again and caught; the same bytes again are caught too (no clean cache entry)", async () => {
    const small = `RACE-SMALL-${randomUUID().slice(0, 8)}`;
    const large = `RACE-LARGE-${randomUUID().slice(0, 8)}`;
    const smallBytes = notes(small, 4); // one pass
    const largeBytes = notes(large, 96); // staged (above ONE_PASS_MAX_BYTES)
    const holds = [tap.holdReply(small), tap.holdReply(large)];
    const ids = [(await s.upload(smallBytes, { contentType: "text/plain" })).id, (await s.upload(largeBytes, { contentType: "text/plain" })).id];
    // clamd has answered both with its old rules (no rule matches yet).
    await Promise.all(holds.map((h) => h.held));

    writeFileSync(join(rulesDir, "race.yar"), `rule Race_Notes\n{\n  strings:\n    $a = "${small}"\n    $b = "${large}"\n  condition:\n    any of them\n}\n`);
    const reload = spawnSync(process.execPath, [CLI, "reload"], { env: { ...process.env, ...clamd.env, DATA_DIR: clamd.dataDir, CLAMD_PORT: String(clamd.port), CLAMD_CUSTOM_RULES_DIR: rulesDir, LOG_LEVEL: "silent" }, encoding: "utf8", timeout: 120_000 });
    expect(reload.status, `${reload.stdout}${reload.stderr}`).toBe(0);
    const digest = /\(set ([0-9a-f]{16})\)/.exec(`${reload.stdout}${reload.stderr}`)?.[1];
    expect(digest).toMatch(/^[0-9a-f]{16}$/);
    await waitFor(async () => (s.workerLogs.some((l) => l.includes("clamd's signatures changed") && l.includes(`rules:${digest}`)) ? true : null), { timeoutMs: 15_000, intervalMs: 100, message: `the worker to see rule set ${digest}` });
    for (const h of holds) h.release();

    for (const id of ids) {
      const u = await s.waitFor(id, [...final]);
      expect(u, `upload ${id}`).toMatchObject({ status: "quarantined", reason: "malware", signature: "YARA.Race_Notes.UNOFFICIAL" });
      expect(u.scannerVersion).toContain(`rules:${digest}`);
    }
    // Nothing under the new version vouches for these bytes: uploaded again, they are caught again.
    for (const bytes of [smallBytes, largeBytes]) {
      const again = await s.waitFor((await s.upload(bytes, { contentType: "text/plain" })).id, [...final]);
      expect(again).toMatchObject({ status: "quarantined", reason: "malware", signature: "YARA.Race_Notes.UNOFFICIAL" });
    }
  }, 180_000);
});
