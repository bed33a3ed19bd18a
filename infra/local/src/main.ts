// Runnable local S3+SQS for `infra/bin/dev`: fauxqs behind the event-emitting proxy.
// The bucket and queues are created by product code (provisionStorage), not here, so the
// same code path provisions AWS, RGW and this stand-in.
import { fileURLToPath } from "node:url";
import { dirname, join, resolve } from "node:path";
import { startLocalObjectStorage } from "./local-object-storage.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const env = process.env;
const port = Number(env.FAUXQS_PORT ?? 4566);
const dataRoot = resolve(env.DATA_DIR ?? join(repoRoot, ".data"));

const storage = await startLocalObjectStorage({
  port,
  host: env.LOCAL_S3_BIND ?? "127.0.0.1",
  dataDir: join(dataRoot, "object-storage"),
  bucket: env.S3_BUCKET ?? "intake-uploads",
  eventQueueName: env.SQS_QUEUE_NAME ?? "intake-events",
  region: env.AWS_REGION ?? "us-east-1",
  prefix: env.S3_EVENT_PREFIX ?? "pending/",
  // Like S3 after PutBucketNotificationConfiguration: consumers must skip this message.
  sendTestEvent: (env.LOCAL_S3_TEST_EVENT ?? "true") !== "false",
  // Browsers upload straight to this stand-in (Uppy, the demo page): the configured API
  // origins when set, else any origin (it only ever runs in development).
  corsOrigins: env.CORS_ORIGINS ? env.CORS_ORIGINS.split(",").map((o) => o.trim()).filter(Boolean) : "*",
}).catch((err: Error) => {
  console.error(`[local-s3] failed to start: ${err.message}`);
  process.exit(1);
});

console.log(
  `[local-s3] ready endpoint=${storage.endpoint} bucket=${env.S3_BUCKET ?? "intake-uploads"} ` +
    `events=${env.SQS_QUEUE_NAME ?? "intake-events"} prefix=${env.S3_EVENT_PREFIX ?? "pending/"} data=${join(dataRoot, "object-storage")}`,
);

let stopping = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    storage.stop().then(
      () => process.exit(0),
      (err: Error) => {
        console.error(`[local-s3] stop failed: ${err.message}`);
        process.exit(1);
      },
    );
  });
}
