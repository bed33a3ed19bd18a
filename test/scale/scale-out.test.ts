import { rmSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { runScaleOut, type ScaleRunReport } from "./support/scale-run.ts";

/**
 * Scale-out on one machine (issue 13 §5), the CI-sized run: 2 API processes and 2 worker
 * processes per role (ingest, inspect, scan, finalize, reaper), started as production
 * starts them, against one Redis, one fresh PostgreSQL database, one local S3+SQS process and
 * the shared clamd; 300 uploads from 16 concurrent clients (SDK and plain presigned PUTs,
 * single and multipart, one-pass and staged, clean and EICAR); halfway one process of each
 * role is SIGKILLed and a replacement started. Whatever was in flight in the killed
 * processes (SQS messages an ingest had received, jobs a stage held the lock of) must still
 * reach exactly one verdict. The full-size run and its throughput figures:
 * test/bench/scale-out.ts and BENCHMARKS.md.
 */
describe("many API and worker processes against one Redis, PostgreSQL and S3/SQS", () => {
  it("bring 300 uploads to exactly one verdict each, through a SIGKILL of one process per role", async () => {
    const report: ScaleRunReport = await runScaleOut({ uploads: 300, clients: 16, perRole: 2, kill: true, verdictDeadlineMs: 240_000, log: (l) => console.log(`[scale] ${l}`) });
    const summary = { ...report, cpu: undefined };
    expect(report.clientErrors, JSON.stringify(summary)).toEqual([]);
    expect(report.kills.map((k) => k.role), "one kill per role, after half the verdicts").toEqual(["ingest", "inspect", "scan", "finalize", "reaper"]);
    for (const k of report.kills) {
      expect(k.atVerdicts).toBeGreaterThanOrEqual(150);
      expect(k.atVerdicts, "the kill came before the run was over").toBeLessThan(300);
      expect(k.replacement).not.toBe("");
    }
    expect(report.sent).toBe(300);
    expect(report.notFinal, "no upload lost or stuck").toEqual({});
    expect(report.wrongVerdicts).toEqual({});
    expect(report.doubleVerdicts, "one verdict each in the audit trail and the outbox").toEqual({});
    expect(report.pendingObjects).toEqual([]);
    expect(report.misplacedObjects).toEqual({});
    expect(report.strayObjects).toEqual([]);
    // A killed finalize (concurrency 8) or scan (4) may leave the staging copy of each run it
    // had in flight: the reapers sweep them (and the one planted for no upload) before the end.
    expect(report.orphanStagingCopies, "staging copies left after the reapers' sweep").toEqual([]);
    expect(report.stagingCopiesLeft).toEqual([]);
    expect(report.strayObjects).not.toContain(report.plantedStagingCopy);
    expect(report.verified + report.quarantined).toBe(300);
    expect(report.quarantined).toBe(15); // every twentieth upload carries EICAR
    // The run exercised what it claims to: multipart and staged uploads, and uploads only the storage event announced.
    expect(report.multipart).toBeGreaterThanOrEqual(3);
    expect(report.staged).toBeGreaterThanOrEqual(1);
    expect(report.putOnly).toBeGreaterThanOrEqual(100);
    // The processes' logs (~120 MB at info) are kept only when something above failed.
    rmSync(report.logDir, { recursive: true, force: true });
  }, 600_000);
});
