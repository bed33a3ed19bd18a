import { createLogger, loadConfigOrExit } from "@intake/runtime";
import { startWorker } from "@intake/worker";

/**
 * A worker process (config from the environment, as services/worker/src/main.ts) whose
 * BullMQ locks last LOCK_MS instead of production's 30 s, so that after a test kills it
 * with SIGKILL another worker's stalled-job check takes its job back within seconds.
 * Nothing else differs from the real program: no signal handling, as SIGKILL allows none.
 */
const config = loadConfigOrExit();
const logger = createLogger({ level: config.logLevel, name: "worker" });
const lockDurationMs = Number(process.env.LOCK_MS ?? "3000");
await startWorker(config, { logger, lockDurationMs, stalledIntervalMs: 1000 }).catch((err: unknown) => {
  logger.fatal({ err }, "worker failed to start");
  process.exit(1);
});
