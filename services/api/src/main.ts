import { createLogger, loadConfigOrExit } from "@intake/runtime";
import { startApi } from "./server.ts";

/**
 * The API process: configuration parsed once (a bad variable is named and the process exits
 * non-zero), adapters wired by startApi, graceful close on SIGTERM/SIGINT so in-flight
 * requests finish and the database and Redis connections close cleanly.
 */
const config = loadConfigOrExit();
const logger = createLogger({ level: config.logLevel, name: "api" });

let api: Awaited<ReturnType<typeof startApi>>;
try {
  api = await startApi(config, { logger });
} catch (err) {
  logger.fatal({ err }, "the API could not start");
  process.exit(1);
}
// Not `url`: the logger redacts fields of that name (they usually hold presigned URLs).
logger.info({ address: api.url }, `Intake API listening on ${api.url}`);

let closing = false;
for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, "shutting down");
    // A hung dependency must not keep the process alive forever after a SIGTERM.
    setTimeout(() => {
      logger.error("shutdown took longer than 15 s; exiting");
      process.exit(1);
    }, 15_000).unref();
    api.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  });
}
