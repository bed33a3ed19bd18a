import { randomBytes } from "node:crypto";
import { UnrecoverableError, Worker } from "bullmq";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createWorkerConnection, queueName, Reaper, stageJobId, type ReapSummary, type Scanner } from "@intake/pipeline";
import { createLogger } from "@intake/runtime";
import { Readable } from "node:stream";
import { createClamdScanner, SIGNATURE_SET_PROBE } from "@intake/scanner";
import { beforeAllOrFailEach } from "@intake/test";
import { png, zip } from "./fixtures.ts";
import { startClamdProxy, type ClamdProxy } from "./support/clamd-proxy.ts";
import { MiB, startPipelineStack, type PipelineStack } from "./support/stack.ts";

// These uploads go through the stages (ONE_PASS_MAX_BYTES 0): what is tested here is the
// window between inspect, scan and finalize that only the staged path has (one-pass.test.ts
// covers the one-pass check).
const STAGED = { ONE_PASS_MAX_BYTES: "0" };

/**
 * The reaper re-queues uploads whose job is lost, never work in progress. The incident:
 * an upload re-queued eleven times while it was being scanned (four scans of one object at
 * once), because the row alone cannot tell "stuck" from "busy". The job's own state can:
 * BullMQ keeps a running job's lock alive, and waiting or delayed jobs are queued work.
 *
 * The reaper is driven with a clock moved past the stuck threshold (the same code path as
 * the schedule), so every row it looks at counts as stuck: whatever keeps it from
 * re-queuing is the job-state check, not the threshold.
 */
// Generous, as in production: the shared clamd may be busy with other test files' scans.
// The passes below move their clock past the threshold instead of waiting for it.
const STUCK_AFTER_SECONDS = 120;
const CLAMD_TIMEOUT_MS = 60_000;
// Each pass a stuck threshold later than the one before: a re-queue touches the row at the
// reaper's clock, and the next pass must still see it as stuck.
let clock = Date.now();
const pastStuck = () => new Date((clock = Math.max(clock, Date.now()) + (STUCK_AFTER_SECONDS + 5) * 1000));
const silent = createLogger({ level: "silent", name: "reaper" });

function reaperFor(s: PipelineStack): Reaper {
  return new Reaper({ repository: s.uploads, audit: s.audit, store: s.storage.store, queues: s.queues, logger: silent, settings: s.config.reaper });
}

/**
 * Counts the scans of uploads clamd is asked for, and how many run at once. The worker's
 * signature watch scans a fixed probe through the same scanner (which rule set is loaded):
 * that scan is passed on uncounted, recognised by its bytes.
 */
function countingScanner(inner: Scanner) {
  const state = { calls: 0, inFlight: 0, maxInFlight: 0 };
  const scanner: Scanner = {
    version: () => inner.version(),
    scan: async (input) => {
      const iterator = input[Symbol.asyncIterator]();
      const first = await iterator.next();
      const chunks = async function* () {
        if (!first.done) yield first.value;
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
      };
      const stream = Readable.from(chunks());
      if (!first.done && Buffer.from(first.value).equals(SIGNATURE_SET_PROBE)) return inner.scan(stream);
      state.calls++;
      state.maxInFlight = Math.max(state.maxInFlight, ++state.inFlight);
      try {
        return await inner.scan(stream);
      } finally {
        state.inFlight--;
      }
    },
  };
  return { scanner, state };
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("the reaper and work in progress", () => {
  let s: PipelineStack;
  let proxy: ClamdProxy;
  beforeAllOrFailEach(async () => {
    proxy = await startClamdProxy();
    s = await startPipelineStack({
      storage: "fauxqs",
      database: "sqlite",
      workerRoles: null,
      env: { ...STAGED, CLAMD_PORT: String(proxy.port), STUCK_AFTER_SECONDS: String(STUCK_AFTER_SECONDS), CLAMD_TIMEOUT_MS: String(CLAMD_TIMEOUT_MS) },
    });
  });
  afterEach(async () => {
    proxy.throttle(0);
    await s.stopWorkers();
  });
  afterAll(async () => {
    await s?.close();
    await proxy?.close();
  });

  it("never re-queues an upload while it is being scanned, however often it runs: one scan, one verdict", async () => {
    const counted = countingScanner(createClamdScanner({ port: proxy.port, timeoutMs: CLAMD_TIMEOUT_MS }));
    await s.startWorker("inspect,scan,finalize", { scanner: counted.scanner });
    proxy.throttle(1 * MiB); // a scan of ~3 s: clamd is fed slowly, never stalled past its timeout
    const bytes = zip([{ name: "payload.bin", data: randomBytes(3 * MiB) }]);
    const { id } = await s.upload(bytes, { contentType: "application/zip", complete: true });
    await until("the scan to start", () => counted.state.inFlight === 1, 60_000);
    const fedBefore = proxy.forwarded;

    // A reaper pass every 20 ms while the scan runs, each seeing the row as stuck. It stops
    // while clamd still has a tenth of the bytes to come, so no pass overlaps the moment the
    // verdict is written and finalize is queued (a pass then would queue finalize itself,
    // under the same job id as the scan stage's own enqueue: harmless, but not this test).
    const reaper = reaperFor(s);
    const passes: ReapSummary[] = [];
    while (counted.state.inFlight > 0 && proxy.forwarded - fedBefore < bytes.length * 0.9) {
      passes.push(await reaper.reap(pastStuck()));
      await new Promise((r) => setTimeout(r, 20));
    }
    const done = await s.waitFor(id, ["verified", "quarantined"]);

    expect({ calls: counted.state.calls, maxInFlight: counted.state.maxInFlight }).toEqual({ calls: 1, maxInFlight: 1 });
    expect(passes.reduce((n, p) => n + p.requeued, 0)).toBe(0);
    expect(passes.length).toBeGreaterThanOrEqual(20);
    expect(passes.every((p) => p.inProgress === 1)).toBe(true);
    expect({ status: done.status, attempts: done.attempts }).toEqual({ status: "verified", attempts: 0 });
    const actions = await s.auditActions(id);
    expect(actions).not.toContain("reaper.requeued");
    expect(actions.filter((a) => a === "upload.verified")).toHaveLength(1);
  });

  it("leaves a waiting job alone, re-queues a lost one and one that failed for good, once each", async () => {
    // No workers: the complete call leaves a waiting inspect job.
    const { id } = await s.upload(png(4, 4), { contentType: "image/png", complete: true });
    await until("the upload to arrive", async () => (await s.uploads.getById(id))?.status === "uploaded");
    const reaper = reaperFor(s);
    const queue = s.queues.queue("inspect");
    const jobState = async () => (await queue.getJob(stageJobId("inspect", id)))?.getState() ?? "missing";
    expect(await jobState()).toBe("waiting");
    expect(await reaper.reap(pastStuck())).toMatchObject({ requeued: 0, inProgress: 1 });

    // Redis lost it: re-queued under the same deterministic id.
    await s.flushQueues();
    expect(await jobState()).toBe("missing");
    expect(await reaper.reap(pastStuck())).toMatchObject({ requeued: 1 });
    expect(await jobState()).toBe("waiting");
    expect(await reaper.reap(pastStuck())).toMatchObject({ requeued: 0, inProgress: 1 });

    // It failed for good (its attempts spent): the kept failed job would make a plain add a
    // silent no-op, so it is removed and added again.
    const connection = createWorkerConnection(s.config.redis);
    const failing = new Worker(queueName("inspect"), async () => { throw new UnrecoverableError("gave up"); }, { connection, prefix: s.config.redis.prefix });
    try {
      await until("the job to fail", async () => (await jobState()) === "failed");
    } finally {
      await failing.close();
      connection.disconnect();
    }
    expect(await reaper.reap(pastStuck())).toMatchObject({ requeued: 1 });
    expect(await jobState()).toBe("waiting");

    expect((await s.auditActions(id)).filter((a) => a === "reaper.requeued")).toHaveLength(2);
    expect((await s.uploads.getById(id))?.attempts).toBe(2);
    // And a worker now brings it to its verdict.
    await s.startWorker("inspect,scan,finalize");
    const done = await s.waitFor(id, ["verified", "quarantined"], 60_000);
    expect({ status: done.status, reason: done.reason, detail: done.reasonDetail }).toEqual({ status: "verified", reason: null, detail: null });
  });

  it("leaves a delayed job (a retry backing off) alone, and re-queues one that completed without moving the upload", async () => {
    const { id } = await s.upload(png(5, 5), { contentType: "image/png", complete: true });
    await until("the upload to arrive", async () => (await s.uploads.getById(id))?.status === "uploaded");
    const reaper = reaperFor(s);
    const queue = s.queues.queue("inspect");
    const jobId = stageJobId("inspect", id);
    const jobState = async () => (await queue.getJob(jobId))?.getState() ?? "missing";
    // The same job id, backing off for a minute (what a retry's exponential backoff leaves).
    await (await queue.getJob(jobId))!.remove();
    await queue.add("inspect", { v: 1, uploadId: id }, { jobId, delay: 60_000 });
    expect(await jobState()).toBe("delayed");
    expect(await reaper.reap(pastStuck())).toMatchObject({ requeued: 0, inProgress: 1 });
    expect(await jobState()).toBe("delayed");

    // Completed while the row stayed where it was (the kept completed job holds the id).
    await (await queue.getJob(jobId))!.remove();
    await queue.add("inspect", { v: 1, uploadId: id }, { jobId, removeOnComplete: false });
    const connection = createWorkerConnection(s.config.redis);
    const idle = new Worker(queueName("inspect"), async () => undefined, { connection, prefix: s.config.redis.prefix });
    try {
      await until("the job to complete", async () => (await jobState()) === "completed");
    } finally {
      await idle.close();
      connection.disconnect();
    }
    expect(await reaper.reap(pastStuck())).toMatchObject({ requeued: 1 });
    expect(await jobState()).toBe("waiting");
    expect((await s.auditActions(id)).filter((a) => a === "reaper.requeued")).toHaveLength(1);
    // Its verdict, so no row of this test is left for the next one's reaper.
    await s.startWorker("inspect,scan,finalize");
    expect((await s.waitFor(id, ["verified", "quarantined"], 60_000)).status).toBe("verified");
  });

  it("finds a lost job behind more than a page of uploads whose jobs are live", async () => {
    // 120 uploads waiting in the queue (a backlog), and behind them, idle the shortest, one whose job is gone.
    const ids: string[] = [];
    for (let i = 0; i < 121; i++) {
      const id = `backlog${String(i).padStart(3, "0")}${randomBytes(8).toString("hex")}`;
      await s.uploads.create({ id, tenantId: s.tenant, filename: "b.png", declaredType: "image/png", declaredSize: 10, metadata: {}, objectKey: `pending/${s.tenant}/${id}`, multipart: null, urlExpiresAt: new Date(Date.now() + 600_000) });
      expect((await s.uploads.transition(id, "arrived", "api", { storedSize: 10 })).applied).toBe(true);
      if (i < 120) await s.queues.enqueue("inspect", id);
      ids.push(id);
    }
    const lost = ids.at(-1)!;
    const summary = await reaperFor(s).reap(pastStuck());
    expect({ requeued: summary.requeued, inProgress: summary.inProgress }).toEqual({ requeued: 1, inProgress: 120 });
    expect(await s.auditActions(lost)).toContain("reaper.requeued");
    expect(await (await s.queues.queue("inspect").getJob(stageJobId("inspect", lost)))?.getState()).toBe("waiting");
  });
});

/**
 * A Redis flushed (or restarted without persistence) in the middle of a scan takes the
 * job's own state with it: the worker goes on scanning, but to the reaper the job is gone.
 * Only the row can then say that the work is alive, so a running scan keeps its row's
 * updatedAt fresh (a heartbeat, at a third of STUCK_AFTER_SECONDS). Real time here, not a
 * moved clock: the heartbeat is what is under test.
 */
describe("the reaper after Redis lost a running scan's job", () => {
  let s: PipelineStack;
  let proxy: ClamdProxy;
  const STUCK = 10;
  beforeAllOrFailEach(async () => {
    proxy = await startClamdProxy();
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", workerRoles: null, env: { ...STAGED, CLAMD_PORT: String(proxy.port), STUCK_AFTER_SECONDS: String(STUCK), CLAMD_TIMEOUT_MS: "9000" } });
  });
  afterAll(async () => {
    proxy?.throttle(0);
    await s?.close();
    await proxy?.close();
  });

  it("does not start a second scan of an upload whose scan is still running", async () => {
    const counted = countingScanner(createClamdScanner({ port: proxy.port, timeoutMs: 9000 }));
    await s.startWorker("inspect,scan,finalize", { scanner: counted.scanner });
    proxy.throttle(320 * 1024); // 10 MiB: well over 16 s of scan, longer than STUCK_AFTER_SECONDS
    const bytes = zip([{ name: "payload.bin", data: randomBytes(10 * MiB) }]);
    const { id } = await s.upload(bytes, { contentType: "application/zip", complete: true });
    await until("the scan to start", () => counted.state.inFlight === 1, 60_000);
    const startedAt = (await s.uploads.getById(id))!.updatedAt.getTime();
    expect(await s.flushQueues()).toBeGreaterThan(0);

    const reaper = reaperFor(s);
    const passes: ReapSummary[] = [];
    // Passes on the real clock until well past the threshold measured from the scan's start.
    while (counted.state.inFlight > 0 && Date.now() < startedAt + (STUCK + 3) * 1000) {
      passes.push(await reaper.reap(new Date()));
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(Date.now()).toBeGreaterThanOrEqual(startedAt + (STUCK + 3) * 1000); // the scan outlived the threshold
    proxy.throttle(0);
    const done = await s.waitFor(id, ["verified", "quarantined"], 60_000);
    expect({ requeued: passes.reduce((n, p) => n + p.requeued, 0), calls: counted.state.calls, maxInFlight: counted.state.maxInFlight }).toEqual({ requeued: 0, calls: 1, maxInFlight: 1 });
    expect({ status: done.status, reason: done.reason }).toEqual({ status: "verified", reason: null });
    expect(await s.auditActions(id)).not.toContain("reaper.requeued");
  });
});
