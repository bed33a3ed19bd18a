import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startHttpTap } from "@intake/test";
import { waitFor, waitForEvent } from "@intake/testkit";
import { zip } from "./fixtures.ts";
import { startClamdProxy, type ClamdProxy } from "./support/clamd-proxy.ts";
import { MiB, sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";
import type { RunningWorker } from "@intake/worker";

/**
 * Failures in the middle of the pipeline: clamd going away during a scan (a TCP proxy in
 * front of the shared clamd, cut by the test: see support/clamd-proxy.ts), a worker
 * process killed with SIGKILL mid-scan, a worker stopped with SIGTERM mid-scan, and Redis
 * losing every job (this stack's queue prefix deleted, as a restart without persistence
 * would). Whatever happens, nothing is verified without a complete clean scan, and every
 * upload still reaches a verdict.
 */
const WORKER_MAIN = fileURLToPath(new URL("../../services/worker/src/main.ts", import.meta.url));

/** A ZIP holding random (incompressible, stored) bytes: passes inspection, scans for a while. */
const bigZip = (size: number) => zip([{ name: "payload.bin", data: randomBytes(size) }]);

describe("pipeline resilience", () => {
  let s: PipelineStack;
  let proxy: ClamdProxy;
  let child: ChildProcess | null = null;
  let ingest: RunningWorker;
  // One ingest for the whole file, the other roles per test: a stopped ingest aborts its
  // SQS long poll, and a message the server hands to that abandoned poll only comes back
  // after the visibility timeout (60 s), which would slow the next test down.
  const PROCESSING = "inspect,scan,finalize";
  beforeAll(async () => {
    proxy = await startClamdProxy();
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", workerRoles: null, env: { CLAMD_PORT: String(proxy.port), JOB_ATTEMPTS: "30", JOB_BACKOFF_MS: "100" } });
    ingest = await s.startWorker("ingest");
  });
  afterEach(async () => {
    await s.stopWorkers([ingest]);
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
    child = null;
    proxy.throttle(0);
    await proxy.restore();
  });
  afterAll(async () => {
    await s?.close();
    await proxy?.close();
  });

  /**
   * A worker process, once it has started: its clamd limits probe runs first and sends clamd
   * bytes of its own, which must not be taken for the scan's.
   */
  async function startedWorker(env: Record<string, string> = {}): Promise<{ proc: ChildProcess; output: string[] }> {
    const worker = spawnWorker(env);
    await waitFor(
      () => {
        if (worker.proc.exitCode !== null) throw new Error(`worker exited: ${worker.output.join("")}`);
        return worker.output.join("").includes("worker started");
      },
      { timeoutMs: 60_000, message: "the worker process to start (after its clamd probe)", describeLast: () => worker.output.join("").slice(-500) },
    );
    return worker;
  }

  function spawnWorker(env: Record<string, string> = {}): { proc: ChildProcess; output: string[] } {
    const output: string[] = [];
    const proc = spawn(process.execPath, [WORKER_MAIN], {
      env: { ...process.env, ...s.env, WORKER_ROLES: PROCESSING, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    proc.stdout!.on("data", (d: Buffer) => output.push(d.toString()));
    proc.stderr!.on("data", (d: Buffer) => output.push(d.toString()));
    child = proc;
    return { proc, output };
  }

  it("retries a scan cut by clamd going away, never verifies meanwhile, and reaches a verdict once clamd is back", async () => {
    await s.startWorker(PROCESSING);
    const bytes = bigZip(8 * MiB);
    const cut = proxy.cutAfter(2 * MiB);
    const { id } = await s.upload(bytes, { contentType: "application/zip" });
    await cut; // clamd "died" in the middle of the INSTREAM

    // clamd stays down: the scan fails and is retried with backoff, the upload waits.
    const retries = () => s.workerLogs.filter((l) => l.includes('"stage":"scan"') && l.includes(id) && l.includes("job failed; will retry")).length;
    await waitFor(() => retries() >= 3, { timeoutMs: 20_000, message: `three failed scan attempts of ${id} while clamd is down`, describeLast: () => `${retries()} retries` });
    const waiting = await s.uploads.getById(id);
    expect(waiting?.status).toBe("scanning");
    expect(await s.auditActions(id)).not.toContain("upload.verified");

    await proxy.restore();
    const done = await s.waitFor(id, ["verified", "quarantined"], 60_000);
    expect(done).toMatchObject({ status: "verified", sha256: sha256Of(bytes) });
    expect(done.attempts).toBeGreaterThanOrEqual(3);
    expect((await s.auditActions(id)).filter((a) => a === "upload.verified")).toHaveLength(1);
  });

  // A job's attempts are fixed by whoever queues it: the ingest for a one-pass check, the
  // inspect stage for a scan. This file's ingest gives thirty, so each case runs on a stack
  // of its own whose ingest gives three (a restarted ingest would lose its first message to
  // the long poll it abandoned, for a visibility timeout).
  it.each([
    ["checked in one pass", {}, /^the check failed on every attempt: /],
    ["going through the stages", { ONE_PASS_MAX_BYTES: "0" }, /^scan failed on every attempt: /],
  ] as const)("quarantines with scan_error when clamd stays down until the retries run out (%s)", async (_, routing, detail) => {
    const own = await startPipelineStack({ storage: "fauxqs", database: "sqlite", workerRoles: "all", env: { CLAMD_PORT: String(proxy.port), JOB_ATTEMPTS: "3", JOB_BACKOFF_MS: "100", ...routing } });
    try {
      proxy.cut();
      const bytes = bigZip(64 * 1024);
      const { id } = await own.upload(bytes, { contentType: "application/zip" });
      const done = await own.waitFor(id, ["verified", "quarantined"], 30_000);
      expect({ status: done.status, reason: done.reason }).toEqual({ status: "quarantined", reason: "scan_error" });
      expect(done.reasonDetail).toMatch(detail);
    } finally {
      await own.close();
    }
  });

  it("reaches a verdict after the worker process is killed with SIGKILL in the middle of a scan", async () => {
    const { proc } = await startedWorker();
    proxy.throttle(2 * MiB); // ~5 s of scanning for a 10 MiB object
    const bytes = bigZip(10 * MiB);
    const { id } = await s.upload(bytes, { contentType: "application/zip" });
    await s.waitFor(id, ["scanning"], 20_000);
    const before = proxy.forwarded;
    await waitFor(() => proxy.forwarded - before >= 2 * MiB, { timeoutMs: 20_000, message: "2 MiB of the scan to reach clamd", describeLast: () => `${proxy.forwarded - before} bytes` });
    proc.kill("SIGKILL");
    await once(proc, "exit");
    expect((await s.uploads.getById(id))?.status).toBe("scanning");

    // Another worker: BullMQ's stalled-job check (every second here) moves the job back once
    // the dead worker's lock expires. The reaper runs too, but leaves a job BullMQ still
    // holds alone: it re-queues only uploads whose job is gone or finished.
    proxy.throttle(0);
    await s.startWorker(`${PROCESSING},reaper`, { stalledIntervalMs: 1000 }, { STUCK_AFTER_SECONDS: "10", CLAMD_TIMEOUT_MS: "9000", REAPER_EVERY_SECONDS: "1" });
    const done = await s.waitFor(id, ["verified", "quarantined"], 60_000);
    expect(done).toMatchObject({ status: "verified", sha256: sha256Of(bytes) });
    expect((await s.auditActions(id)).filter((a) => a === "upload.verified")).toHaveLength(1);
    // Two worker starts, each with its clamd limits probe (an inflate of MaxFileSize in clamd).
  }, 120_000);

  it("drains the in-flight scan on SIGTERM and exits 0 without losing the upload", async () => {
    const { proc, output } = await startedWorker();
    proxy.throttle(4 * MiB);
    const bytes = bigZip(8 * MiB);
    const { id } = await s.upload(bytes, { contentType: "application/zip" });
    await s.waitFor(id, ["scanning"], 20_000);
    const before = proxy.forwarded;
    await waitFor(() => proxy.forwarded - before >= 1 * MiB, { timeoutMs: 20_000, message: "1 MiB of the scan to reach clamd", describeLast: () => `${proxy.forwarded - before} bytes` });
    proc.kill("SIGTERM");
    const [code] = await once(proc, "exit");
    expect(code).toBe(0);
    // The scan that was in flight finished before the process left: its verdict is written.
    const after = await s.uploads.getById(id);
    expect(["deciding", "verified"]).toContain(after?.status);
    expect(after?.verdict).toBe("clean");
    expect(output.join("")).toContain("stopping: SQS loop first, then draining in-flight jobs");

    proxy.throttle(0);
    await s.startWorker(PROCESSING);
    expect((await s.waitFor(id, ["verified", "quarantined"])).status).toBe("verified");
  });

  it("stops its SQS long poll at once on SIGTERM instead of waiting out the 20 s poll", async () => {
    // The worker's SQS calls go through a tap, so the test knows when its long poll is in
    // flight (the request reached the tap) instead of sleeping and hoping it is.
    const tap = await startHttpTap(s.env.SQS_ENDPOINT!);
    try {
      const queueUrl = new URL(s.env.SQS_QUEUE_URL!);
      const polling = waitForEvent<[{ headers: Record<string, string> }]>(tap, "request", {
        timeoutMs: 20_000,
        message: "the ingest worker's SQS ReceiveMessage",
        match: (r) => /ReceiveMessage/.test(String(r.headers["x-amz-target"] ?? "")),
      });
      const { proc, output } = spawnWorker({ WORKER_ROLES: "ingest", SQS_ENDPOINT: tap.endpoint, SQS_QUEUE_URL: `${tap.endpoint}${queueUrl.pathname}` });
      await polling;
      const t0 = Date.now();
      proc.kill("SIGTERM");
      const [code] = await once(proc, "exit");
      expect(code).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(output.join("")).toContain("stopping: SQS loop first, then draining in-flight jobs");
    } finally {
      await tap.close();
    }
  });

  it("brings an upload to a verdict through the reaper after Redis lost every job", async () => {
    const bytes = bigZip(1000);
    const { id } = await s.upload(bytes, { contentType: "application/zip" });
    await s.waitFor(id, ["uploaded"]);
    // Small enough to be checked in one pass: its one job is the scan stage's.
    expect(await s.queues.queue("scan").getJob(`scan-${id}`)).toBeTruthy();
    expect(await s.flushQueues()).toBeGreaterThan(0);
    expect(await s.queues.queue("scan").getJob(`scan-${id}`)).toBeUndefined();

    await s.startWorker(`${PROCESSING},reaper`, {}, { STUCK_AFTER_SECONDS: "10", CLAMD_TIMEOUT_MS: "9000", REAPER_EVERY_SECONDS: "1" });
    const done = await s.waitFor(id, ["verified", "quarantined"], 40_000);
    expect(done.status).toBe("verified");
    const actions = await s.auditActions(id);
    expect(actions).toContain("reaper.requeued");
    expect(actions.filter((a) => a === "upload.verified")).toHaveLength(1);
  });
});
