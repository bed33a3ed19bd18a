import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminUserRepository } from "@intake/db";
import { objectKey, type Upload } from "@intake/domain";
import { createMetrics } from "@intake/metrics";
import { processRecheck, RecheckQueue, Reaper, ScannerVersionCache, createProducerConnection, type RecheckDeps, type Scanner } from "@intake/pipeline";
import { createClamdScanner } from "@intake/scanner";
import { createLogger } from "@intake/runtime";
import { freePort, waitFor } from "@intake/testkit";
import { eicar, png } from "./fixtures.ts";
import { auditOf, CHECKING_ROLES, exists, quarantined, quarantinedForScanError, review, workerWithClamdAway } from "./support/review.ts";
import { startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * The recheck of a released upload (packages/pipeline/src/recheck.ts) through the real
 * stack: fauxqs, PostgreSQL, Redis, the project's clamd. Releases are made through
 * QuarantineReview, as the admin routes make them (test/api/quarantine-actions.test.ts
 * covers the routes); the recheck runs in a real worker with the recheck role.
 */
describe("recheck of released uploads (fauxqs, pg)", () => {
  let s: PipelineStack;
  let adminA: string;
  let adminB: string;
  const silent = createLogger({ level: "silent", name: "test" });

  beforeAll(async () => {
    // One ingest worker for the whole file; the checking and recheck workers come and go.
    s = await startPipelineStack({ storage: "fauxqs", database: "pg", workerRoles: "ingest", env: { JOB_ATTEMPTS: "3", JOB_BACKOFF_MS: "100" } });
    const users = new AdminUserRepository(s.database.db);
    adminA = (await users.create({ email: "a@example.test", name: "Admin A", role: "admin", tenantIds: null })).id;
    adminB = (await users.create({ email: "b@example.test", name: "Admin B", role: "admin", tenantIds: null })).id;
  });
  afterAll(async () => s?.close());

  const quarantineKey = (u: Upload) => objectKey("quarantine", u.tenantId, u.id);
  const verifiedKey = (u: Upload) => objectKey("verified", u.tenantId, u.id);
  const queue = () => new RecheckQueue(createProducerConnection(s.config.redis), { prefix: s.env.QUEUE_PREFIX!, attempts: 3, backoffMs: 100 });

  async function release(u: Upload, justification = "scanner outage; bytes are fine"): Promise<void> {
    const done = await review(s).release(u, { id: adminA, justification });
    expect(done.applied).toBe(true);
    const q = queue();
    try {
      expect(await q.requeue(u.id)).toBe("queued");
    } finally {
      await q.close();
    }
  }

  it("promotes an upload quarantined for scan_error whose bytes are clean: object moved, new findings, release detail", async () => {
    const bytes = png(8, 8, 1);
    const caught = await quarantinedForScanError(s, bytes, "image/png", "photo.png");
    expect(await exists(s, quarantineKey(caught))).toBe(true);
    const worker = await s.startWorker("recheck");
    try {
      await release(caught);
      const done = await s.waitFor(caught.id, ["verified", "quarantined"]);
      expect(done).toMatchObject({ status: "verified", verdict: "clean", finalKey: verifiedKey(caught), reason: "scan_error" });
      expect(done.scannerVersion).toMatch(/^ClamAV /);
      expect(await exists(s, verifiedKey(caught))).toBe(true);
      expect(await exists(s, quarantineKey(caught))).toBe(false);
      const got = await s.download(caught.id);
      expect(got.status).toBe(200);
      expect(got.bytes.equals(bytes)).toBe(true);
      const detail = (await review(s).releaseDetail(caught.id))!;
      expect(detail.request).toMatchObject({ kind: "release", by: adminA, justification: "scanner outage; bytes are fine" });
      expect(detail.outcome).toMatchObject({ status: "verified", reason: null, acceptedSignature: null, originalSha256: null });
      expect(detail.outcome!.scanner).toMatch(/^ClamAV /);
      const rows = await auditOf(s, caught.id, "upload.verified");
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ actor: "recheck", stateBefore: "rechecking", stateAfter: "verified" });
      expect((await auditOf(s, caught.id, "upload.rechecking"))[0]).toMatchObject({ actor: "admin", actorId: adminA, justification: "scanner outage; bytes are fine", stateBefore: "quarantined" });
    } finally {
      await worker.close();
    }
  });

  it("holds a release while the signatures cannot back a clean verdict (test signatures not accepted): still rechecking, nothing promoted, until they can", async () => {
    const bytes = png(8, 8, 9);
    const caught = await quarantinedForScanError(s, bytes, "image/png", "held.png");
    const strict = await s.startWorker("recheck", {}, { ACCEPT_TEST_SIGNATURES: "false" });
    try {
      await release(caught);
      // Every attempt (3, 100 ms apart) finds it clean and waits: the job ends failed, the row stays.
      const deadline = Date.now() + 20_000;
      let attempts = 0;
      while (Date.now() < deadline && attempts < 3) {
        attempts = (await s.uploads.getById(caught.id))!.attempts ?? 0;
        await new Promise((r) => setTimeout(r, 200));
      }
      await new Promise((r) => setTimeout(r, 500));
      const row = (await s.uploads.getById(caught.id))!;
      expect(row.status).toBe("rechecking");
      expect(await exists(s, verifiedKey(caught))).toBe(false);
      expect(await exists(s, quarantineKey(caught))).toBe(true);
    } finally {
      await strict.close();
    }
    // Signatures that can back it (this stack accepts test signatures): the release goes through.
    const worker = await s.startWorker("recheck");
    try {
      const q = queue();
      try {
        await q.requeue(caught.id);
      } finally {
        await q.close();
      }
      const done = await s.waitFor(caught.id, ["verified", "quarantined"]);
      expect(done.status).toBe("verified");
      expect(done.scannerVersion).toMatch(/\/rules:/);
    } finally {
      await worker.close();
    }
  });

  it("fails closed: clamd down for every attempt of the recheck leaves it quarantined, object in place", async () => {
    const caught = await quarantinedForScanError(s, png(8, 8, 2), "image/png");
    const away = await workerWithClamdAway(s, "recheck");
    try {
      await release(caught);
      const after = await waitForOutcome(caught.id);
      expect(after.outcome).toMatchObject({ status: "quarantined", reason: "scan_error" });
      expect(after.outcome!.detail).toMatch(/recheck failed on every attempt/);
      expect(await s.uploads.getById(caught.id)).toMatchObject({ status: "quarantined", reason: "scan_error" });
      expect(await exists(s, quarantineKey(caught))).toBe(true);
      expect(await exists(s, verifiedKey(caught))).toBe(false);
    } finally {
      await away.close();
    }
  });

  it("quarantines again when the quarantined bytes are not the ones caught (sha256 bound), even under an approved override", async () => {
    const pipeline = await s.startWorker(CHECKING_ROLES);
    const caught = await quarantined(s, eicar(), "text/plain", "note.txt").finally(() => pipeline.close());
    expect(caught).toMatchObject({ reason: "malware" });
    // Someone with storage access swaps the quarantined object for innocent text of the same size.
    const swapped = Buffer.from(`${"a".repeat(eicar().length - 1)}\n`);
    await s.storage.store.put(quarantineKey(caught), swapped, { contentType: "application/octet-stream", contentDisposition: "attachment", metadata: {}, sha256Hex: createHash("sha256").update(swapped).digest("hex") });
    const worker = await s.startWorker("recheck");
    try {
      const o = await review(s).requestOverride(caught, { id: adminA, justification: "false positive per vendor" });
      await review(s).approveOverride(o.id, caught, { id: adminB, justification: "agreed" });
      const q = queue();
      await q.requeue(caught.id).finally(() => q.close());
      const after = await waitForOutcome(caught.id);
      expect(after.outcome).toMatchObject({ status: "quarantined", reason: "checksum_mismatch" });
      expect(await s.uploads.getById(caught.id)).toMatchObject({ status: "quarantined", reason: "checksum_mismatch" });
      expect(await exists(s, verifiedKey(caught))).toBe(false);
      expect(await exists(s, quarantineKey(caught))).toBe(true);
    } finally {
      await worker.close();
    }
  });

  it("streams a large object through the same checks (staging copy) and promotes it", async () => {
    const bytes = png(64, 64, 3);
    const caught = await quarantinedForScanError(s, bytes, "image/png");
    // ONE_PASS_MAX_BYTES=0: nothing is read into memory, the streamed path runs.
    const worker = await s.startWorker("recheck", {}, { ONE_PASS_MAX_BYTES: "0" });
    try {
      await release(caught);
      const done = await s.waitFor(caught.id, ["verified"]);
      expect(done.finalKey).toBe(verifiedKey(caught));
      expect((await s.download(caught.id)).bytes.equals(bytes)).toBe(true);
      expect(await exists(s, quarantineKey(caught))).toBe(false);
    } finally {
      await worker.close();
    }
  });

  /** The recheck's dependencies as the worker builds them, with the project's clamd unless told otherwise. */
  function recheckDeps(extra: Partial<RecheckDeps> = {}): RecheckDeps {
    const clamd: Scanner = extra.scanner ?? createClamdScanner({ host: s.config.clamd.host, port: s.config.clamd.port });
    return {
      repository: s.uploads,
      store: s.storage.store,
      queues: s.queues,
      logger: silent,
      scanner: clamd,
      scannerVersion: new ScannerVersionCache(clamd),
      clamdLimits: { maxFileSize: s.config.clamd.maxFileSize, maxScanSize: s.config.clamd.maxScanSize, maxRecursion: s.config.clamd.maxRecursion },
      heartbeatMs: 10_000,
      policy: s.config.policy,
      releases: review(s),
      inMemoryMaxBytes: s.config.worker.onePassMaxBytes,
      ...extra,
    };
  }

  it("is at-least-once safe: two runs of the same recheck at once give one verdict", async () => {
    const caught = await quarantinedForScanError(s, png(8, 8, 4), "image/png");
    expect((await review(s).release(caught, { id: adminA, justification: "twice" })).applied).toBe(true);
    const deps = recheckDeps();
    const job = { data: { v: 1 as const, uploadId: caught.id }, attemptsMade: 0, opts: { attempts: 3 } };
    const reports = await Promise.all([processRecheck(deps, job), processRecheck(deps, job)]);
    expect(reports.map((r) => r?.outcome).sort()).toEqual(["lost", "verified"]);
    expect(await auditOf(s, caught.id, "upload.verified")).toHaveLength(1);
    expect(await s.uploads.getById(caught.id)).toMatchObject({ status: "verified" });
    expect(await exists(s, verifiedKey(caught))).toBe(true);
    expect(await exists(s, quarantineKey(caught))).toBe(false);
    // A third, late run changes nothing.
    expect(await processRecheck(deps, job)).toBeUndefined();
  });

  it("counts each recheck's outcome once in intake_rechecks_total (the run that applied it) and never in intake_verdicts_total", async () => {
    const metrics = createMetrics({ process: "worker", env: "test" });
    const count = async (series: string) => {
      const line = (await metrics.scrape()).split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    const clean = await quarantinedForScanError(s, png(8, 8, 6), "image/png");
    expect((await review(s).release(clean, { id: adminA, justification: "counted once" })).applied).toBe(true);
    const deps = recheckDeps({ metrics: metrics.pipeline });
    const job = (id: string, attemptsMade = 0) => ({ data: { v: 1 as const, uploadId: id }, attemptsMade, opts: { attempts: 3 } });
    const reports = await Promise.all([processRecheck(deps, job(clean.id)), processRecheck(deps, job(clean.id))]);
    expect(reports.map((r) => r?.outcome).sort()).toEqual(["lost", "verified"]);
    expect(await processRecheck(deps, job(clean.id))).toBeUndefined(); // a late duplicate
    expect(await count('intake_rechecks_total{outcome="verified",reason="clean"}')).toBe(1);

    // clamd away on the last attempt: back to quarantine (fail closed), counted with its reason.
    const failing = await quarantinedForScanError(s, png(8, 8, 7), "image/png");
    expect((await review(s).release(failing, { id: adminA, justification: "clamd away" })).applied).toBe(true);
    const away = createClamdScanner({ host: "127.0.0.1", port: await freePort(), connectTimeoutMs: 500 });
    await expect(processRecheck({ ...deps, scanner: away, scannerVersion: new ScannerVersionCache(away) }, job(failing.id, 0))).rejects.toThrow(); // attempts left: retried, nothing counted
    expect(await count('intake_rechecks_total{outcome="quarantined",reason="scan_error"}')).toBe(0);
    expect((await processRecheck({ ...deps, scanner: away, scannerVersion: new ScannerVersionCache(away) }, job(failing.id, 2)))?.outcome).toBe("quarantined");
    expect(await count('intake_rechecks_total{outcome="quarantined",reason="scan_error"}')).toBe(1);
    expect(await count('intake_rechecks_total{outcome="verified",reason="clean"}')).toBe(1);
    // Both uploads were counted at their first verdict, by the workers that quarantined them.
    for (const reason of ["clean", "scan_error"]) expect(await count(`intake_verdicts_total{reason="${reason}"}`)).toBe(0);
  });

  it("the reaper queues a recheck whose job was lost", async () => {
    const caught = await quarantinedForScanError(s, png(8, 8, 5), "image/png");
    // Released, but the job never reached Redis (the API answered while Redis was away).
    expect((await review(s).release(caught, { id: adminA, justification: "lost job" })).applied).toBe(true);
    const worker = await s.startWorker("recheck");
    const rechecks = queue();
    try {
      const reaper = new Reaper({ repository: s.uploads, audit: s.audit, store: s.storage.store, queues: s.queues, rechecks, logger: silent, settings: { ...s.config.reaper } });
      const summary = await reaper.reap(new Date(Date.now() + (s.config.reaper.stuckAfterSeconds + 1) * 1000));
      expect(summary.requeued).toBeGreaterThanOrEqual(1);
      expect((await auditOf(s, caught.id, "reaper.requeued"))[0]?.detail).toMatchObject({ status: "rechecking", stage: "recheck" });
      expect((await s.waitFor(caught.id, ["verified"])).finalKey).toBe(verifiedKey(caught));
    } finally {
      await rechecks.close();
      await worker.close();
    }
  });

  async function waitForOutcome(id: string) {
    return waitFor(
      async () => {
        const d = await review(s).releaseDetail(id);
        const u = await s.uploads.getById(id);
        return d?.outcome && u?.status !== "rechecking" ? d : null;
      },
      { timeoutMs: 30_000, intervalMs: 50, message: `the recheck of ${id} to finish` },
    );
  }
});
