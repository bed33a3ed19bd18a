import { Queue, UnrecoverableError, Worker, type Job } from "bullmq";
import { connectRedis, type RedisConnection, type RedisEndpoint } from "./redis-connections.ts";
import type { PipelineLogger, PipelineMetrics } from "./deps.ts";
import { UploadGoneError, type StageJob } from "./progress.ts";
import type { Reaper } from "./reaper.ts";
import { queueName, type Stage, type StageJobData } from "./stage-queues.ts";

/**
 * Thin BullMQ wiring: one Worker per stage queue, one for the reaper's schedule. The
 * processors themselves know nothing of BullMQ beyond the StageJob shape.
 */

/** Workers block on Redis: their connections must never give up a command (BullMQ requires null). */
export function createWorkerConnection(endpoint: RedisEndpoint): RedisConnection {
  return connectRedis(endpoint, "worker");
}

export interface StageWorkerOptions {
  connection: RedisConnection;
  prefix: string;
  concurrency: number;
  logger: PipelineLogger;
  /** Lock held while a job runs; renewed at half of it. A dead worker's job is retried after it. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** Queue wait and job outcomes, per queue (@intake/metrics); absent: nowhere. */
  metrics?: Pick<PipelineMetrics, "jobPicked" | "jobFinished">;
}

/** BullMQ settings every worker over upload jobs shares (the stages, the recheck, the rescan). */
export function uploadWorkerSettings(o: Pick<StageWorkerOptions, "connection" | "prefix" | "concurrency" | "lockDurationMs" | "stalledIntervalMs">) {
  return {
    connection: o.connection,
    prefix: o.prefix,
    concurrency: o.concurrency,
    ...(o.lockDurationMs ? { lockDuration: o.lockDurationMs } : {}),
    ...(o.stalledIntervalMs ? { stalledInterval: o.stalledIntervalMs } : {}),
    // A job whose worker died (SIGKILL, OOM) is picked up again after the lock expires; a
    // second stall in a row fails it, and the reaper's reconcile takes over from there.
    maxStalledCount: 2,
  };
}

export function startStageWorker(stage: Stage, process: (job: StageJob) => Promise<unknown>, o: StageWorkerOptions): Worker<StageJobData> {
  return startJobWorker(queueName(stage), stage, process, o);
}

/**
 * A worker for one of the pipeline's upload queues (a stage's, or the release recheck's):
 * jobs name an upload and nothing else, the database holds the rest.
 */
export function startJobWorker(queue: string, label: string, process: (job: StageJob) => Promise<unknown>, o: StageWorkerOptions): Worker<StageJobData> {
  // The processors' "never retry" error becomes BullMQ's own: no attempts are spent on it.
  // What a processor returns (a one-pass run's per-stage timings) is kept as the job's
  // return value, where an operator's dashboard shows it, at no extra Redis round trip.
  const run = async (job: Job<StageJobData>) => {
    // First attempts only: a retry's wait includes its backoff, which is on purpose.
    if (o.metrics && job.attemptsMade === 0 && job.processedOn) o.metrics.jobPicked(queue, job.processedOn - job.timestamp - (job.opts.delay ?? 0));
    try {
      return await process(job);
    } catch (err) {
      if (err instanceof UploadGoneError) throw new UnrecoverableError(err.message);
      throw err;
    }
  };
  const worker = new Worker<StageJobData>(queue, run, uploadWorkerSettings(o));
  worker.on("failed", (job, err) => {
    const attempts = job?.opts.attempts ?? 1;
    const final = !job || job.attemptsMade >= attempts || err.name === "UnrecoverableError";
    o.logger[final ? "error" : "warn"]({ stage: label, jobId: job?.id, uploadId: job?.data.uploadId, attemptsMade: job?.attemptsMade, attempts, err: { name: err.name, message: err.message } }, final ? "job failed for good" : "job failed; will retry");
    o.metrics?.jobFinished(queue, final ? "failed" : "retried");
  });
  if (o.metrics) worker.on("completed", () => o.metrics!.jobFinished(queue, "completed"));
  worker.on("error", (err) => o.logger.error({ stage: label, err }, "worker error"));
  return worker;
}

export const REAPER_QUEUE = "intake-reaper";
/** One fixed scheduler id: every replica upserts the same schedule instead of adding its own. */
export const REAPER_SCHEDULER_ID = "intake-reaper";

export interface ReaperSchedule {
  worker: Worker;
  close(): Promise<void>;
}

/**
 * Runs the reaper on a BullMQ job scheduler. Redis without persistence loses schedulers on
 * restart (and a flush loses them too), so the schedule is upserted again periodically
 * and whenever the connection comes back: upserting an existing scheduler is a no-op.
 */
export async function startReaperSchedule(reaper: Reaper, o: { connection: RedisConnection; prefix: string; everySeconds: number; logger: PipelineLogger }): Promise<ReaperSchedule> {
  const queue = new Queue(REAPER_QUEUE, { connection: o.connection, prefix: o.prefix });
  const upsert = () =>
    queue
      .upsertJobScheduler(REAPER_SCHEDULER_ID, { every: o.everySeconds * 1000 }, { name: "reap", data: { v: 1 }, opts: { removeOnComplete: 100, removeOnFail: 100 } })
      .then(() => undefined)
      .catch((err: unknown) => o.logger.warn({ err }, "could not upsert the reaper schedule; will try again"));
  await upsert();
  const refresh = setInterval(upsert, Math.max(o.everySeconds, 30) * 1000);
  refresh.unref();
  o.connection.on("ready", upsert);
  const worker = new Worker(REAPER_QUEUE, async () => reaper.reap(), { connection: o.connection, prefix: o.prefix, concurrency: 1 });
  worker.on("failed", (_job, err) => o.logger.error({ err }, "reaper pass failed; the next one retries"));
  worker.on("error", (err) => o.logger.error({ err }, "reaper worker error"));
  return {
    worker,
    close: async () => {
      clearInterval(refresh);
      o.connection.off("ready", upsert);
      await worker.close();
      await queue.close();
    },
  };
}
