import { createLogger, loadConfigOrExit } from "@intake/runtime";
import { startWorker } from "./worker.ts";

/**
 * The worker program: `node services/worker/src/main.ts`, roles from WORKER_ROLES (all |
 * ingest | inspect | scan | finalize | reaper | recheck | webhooks | rescan, comma-separated), so each can be scaled on
 * its own. SIGTERM stops the SQS loop (unhandled messages stay in SQS), drains in-flight
 * jobs (bounded), then exits. After a SIGKILL, BullMQ's stalled-job check or the reaper
 * brings the interrupted upload to a verdict.
 */
const config = loadConfigOrExit();
const logger = createLogger({ level: config.logLevel, name: "worker" });

// Handlers first: a SIGTERM that arrives while the worker is still starting must not kill
// the process with the default action halfway through; it stops once started.
const started = startWorker(config, { logger });
let stopping = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping: SQS loop first, then draining in-flight jobs");
    // A backstop beyond the drain timeout, should a close step hang.
    setTimeout(() => {
      logger.error({}, "shutdown took too long; exiting");
      process.exit(1);
    }, 90_000).unref();
    started.then((worker) => worker.close()).then(
      () => {
        logger.info({}, "stopped");
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}

await started.catch((err: unknown) => {
  logger.fatal({ err }, "worker failed to start");
  process.exit(1);
});
