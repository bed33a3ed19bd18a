import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { IntakeClient } from "@intake/client/node";
import { ApiKeyRepository, WebhookRepository } from "@intake/db";
import { freshDatabase, type TestDatabase } from "@intake/db/testing";
import { connectRedis, deleteKeysUnder, parseStagingKey, stagingKey } from "@intake/pipeline";
import { loadConfig } from "@intake/runtime";
import { createS3Client, createSqsClient, provisionStorage } from "@intake/storage";
import { freePort, testQueuePrefix, testRedisEnv, waitFor } from "@intake/testkit";
import { API_MAIN, Fleet, MIGRATE_MAIN, REPO_ROOT, sharedServiceCpu, WORKER_MAIN, type FleetProcess } from "./fleet.ts";
import { bytesOf, planUploads, type PlannedUpload } from "./workload.ts";
import { checkRun, type RunFindings } from "./checks.ts";

/**
 * One scale-out run (issue 13 §5): N API processes and `perRole` worker processes per role
 * against one Redis, one PostgreSQL database made for the run, one local S3+SQS process
 * (fauxqs behind the event emitter, infra/local/src/main.ts, shared by all) and the shared
 * clamd; concurrent clients drive the planned uploads; halfway (by verdicts) one process of
 * each worker role is SIGKILLed and a replacement started. Then the database and the
 * bucket are read back (checks.ts) and the run's timings and CPU per kind of process reported.
 */
export const ROLES = ["ingest", "inspect", "scan", "finalize", "reaper"] as const;
export type Role = (typeof ROLES)[number];

export interface ScaleRunOptions {
  uploads: number;
  clients: number;
  perRole: number;
  apis?: number;
  /** SIGKILL one process of each role once half the uploads have a verdict, and start a replacement. */
  kill: boolean;
  /** How long after the last upload was sent every verdict may take. */
  verdictDeadlineMs?: number;
  log?: (line: string) => void;
}

export interface Kill {
  role: string;
  name: string;
  atVerdicts: number;
  replacement: string;
}

export interface ScaleRunReport extends RunFindings {
  options: Required<Omit<ScaleRunOptions, "log">>;
  clientErrors: string[];
  kills: Kill[];
  /**
   * A staging copy planted at the start for an upload that has no row, as a run killed long
   * ago leaves one: the reapers must have swept it (it would be a stray object otherwise).
   */
  plantedStagingCopy: string;
  /** Staging copies still there when the run ended (after the wait for the reapers' sweep). */
  stagingCopiesLeft: string[];
  /** CPU seconds per kind of process over the workload (from /proc). */
  cpu: Record<string, number>;
  loadAverage: [number, number, number];
  /** Cores the whole machine kept busy over the workload (/proc/stat), ours and anyone else's. */
  machineBusyCores: number;
  logDir: string;
}

const TENANTS = ["scale-a", "scale-b", "scale-c", "scale-d"];
const STAGING_SWEEP_AFTER_SECONDS = 30;
const MiB = 1024 * 1024;

function clamdLimitsEnv(): Record<string, string> {
  // What infra/clamd/up.sh configured (as infra/bin/dev reads it): the workers' limits probe checks clamd against it.
  const path = join(REPO_ROOT, ".data/clamd/limits.env");
  if (!existsSync(path)) return {};
  return Object.fromEntries(
    readFileSync(path, "utf8")
      .split("\n")
      .map((l) => /^([A-Z_]+)=(.*)$/.exec(l.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
}

export async function runScaleOut(o: ScaleRunOptions): Promise<ScaleRunReport> {
  const options = { apis: 2, verdictDeadlineMs: 300_000, ...o } as Required<ScaleRunOptions>;
  const log = o.log ?? (() => undefined);
  const runId = `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`;
  const logDir = join(REPO_ROOT, ".data/scale", runId);
  mkdirSync(logDir, { recursive: true });
  const fleet = new Fleet(logDir);
  let database: TestDatabase | undefined;
  let s3: S3Client | undefined;
  const prefix = testQueuePrefix("scale");
  let env: Record<string, string> = {};
  try {
    // Storage: one process for the whole run, as a deployment has one S3 and one SQS.
    const storagePort = await freePort();
    const bucket = "intake-scale";
    const queueName = `scale-events-${randomBytes(3).toString("hex")}`;
    const credentials = { accessKeyId: "scale", secretAccessKey: "scale" };
    await fleet.start("storage", "infra/local/src/main.ts", { FAUXQS_PORT: String(storagePort), DATA_DIR: join(logDir, "storage"), S3_BUCKET: bucket, SQS_QUEUE_NAME: queueName, LOCAL_S3_TEST_EVENT: "true" }, /\[local-s3\] ready/);
    const endpoint = `http://127.0.0.1:${storagePort}`;
    s3 = createS3Client({ region: "us-east-1", endpoint, forcePathStyle: true, credentials });
    const sqs = createSqsClient({ region: "us-east-1", endpoint, credentials });
    const { queueUrl } = await provisionStorage(s3, sqs, { bucket, queueName, region: "us-east-1", corsOrigins: [] });
    sqs.destroy();

    database = await freshDatabase("pg", { migrated: false });
    env = {
      NODE_ENV: "production",
      LOG_LEVEL: "info",
      DATA_DIR: logDir,
      DATABASE_URL: (database.settings as { url: string }).url,
      MIGRATE_ON_START: "false",
      DATABASE_POOL_MAX: "4",
      ...testRedisEnv(),
      QUEUE_PREFIX: prefix,
      STORAGE_KIND: "intake-local",
      S3_ENDPOINT: endpoint,
      S3_FORCE_PATH_STYLE: "true",
      S3_BUCKET: bucket,
      SQS_ENDPOINT: endpoint,
      SQS_QUEUE_URL: queueUrl,
      SQS_QUEUE_NAME: queueName,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      ...clamdLimitsEnv(),
      // Multipart and the staged path must run: 6-12 MiB files go multipart in 5 MiB parts
      // (S3's minimum; the local store takes bodies up to 11 MiB) and past the 8 MiB one-pass bound.
      MULTIPART_THRESHOLD_BYTES: String(5 * MiB),
      PART_SIZE_BYTES: String(5 * MiB),
      // The machine's clamd runs the generated test signatures only (no official database
      // can be fetched here); production would hold every clean verdict on them.
      ACCEPT_TEST_SIGNATURES: "true",
      HOLD_ON_STALE_SIGNATURES: "false",
      // The clients are one address and four keys sending thousands of requests a minute.
      RATE_LIMIT_PER_KEY: "100000000",
      RATE_LIMIT_PER_ADDRESS: "100000000",
      QUOTA_PENDING_UPLOADS: "1000000",
      QUOTA_UPLOADS_PER_DAY: "1000000",
      // The reaper's re-queue of uploads whose job is gone, soon enough for the run's deadline.
      // It must exceed the clamd timeout (a scan may rightly go that long untouched): 20 s is
      // ample for the run's largest object (12 MiB) on a loaded machine.
      STUCK_AFTER_SECONDS: "30",
      CLAMD_TIMEOUT_MS: "20000",
      REAPER_EVERY_SECONDS: "5",
      // Staging copies a SIGKILL leaves are swept once this old (at least STUCK_AFTER_SECONDS):
      // the run waits for that at the end.
      STAGING_SWEEP_AFTER_SECONDS: String(STAGING_SWEEP_AFTER_SECONDS),
      WORKER_METRICS_PORT: "0",
      PORT: "0",
    };

    // A staging copy no process will ever remove: its upload has no row (packages/pipeline staging-sweep.ts).
    const plantedStagingCopy = stagingKey({ tenantId: TENANTS[0]!, id: `000000000000${randomBytes(16).toString("hex")}` }, randomUUID());
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: plantedStagingCopy, Body: Buffer.from("left by a run killed long ago"), ContentType: "application/octet-stream" }));

    // Migrations once, by the one-shot command; every process then only checks the schema.
    const migrated = await fleet.run("migrate", MIGRATE_MAIN, env);
    if (migrated.code !== 0) throw new Error(`the migration command failed (${migrated.code}): ${migrated.output}`);
    const keys = new ApiKeyRepository(database.db);
    const apiKeys = new Map<string, string>();
    for (const t of TENANTS) apiKeys.set(t, (await keys.create(t, "scale")).key);
    // A webhook endpoint per tenant: each verdict writes one outbox event in its own
    // transaction, a third count of verdicts beside the status and the audit trail. No
    // webhooks role runs, so nothing is sent to the (closed) address.
    const hooks = new WebhookRepository(database.db);
    for (const t of TENANTS) await hooks.createEndpoint({ tenantId: t, url: "http://127.0.0.1:9/scale", events: ["upload.verified", "upload.quarantined"], secret: `whsec_${randomBytes(24).toString("base64")}` });

    log(`starting ${options.apis} API processes and ${options.perRole} per role (${ROLES.join(", ")}); logs in ${logDir}`);
    const apis = await Promise.all(Array.from({ length: options.apis }, () => fleet.start("api", API_MAIN, { ...env, DATABASE_POOL_MAX: "6" }, /Intake API listening on/)));
    const apiUrls = apis.map((a) => /listening on (http:\/\/[0-9.:]+)/.exec(a.output())![1]!);
    const startWorker = (role: Role): Promise<FleetProcess> => fleet.start(role, WORKER_MAIN, { ...env, WORKER_ROLES: role }, /"worker started"/, 180_000);
    await Promise.all(ROLES.flatMap((r) => Array.from({ length: options.perRole }, () => startWorker(r))));

    const plan = planUploads(options.uploads);
    const ids = new Map<number, string>();
    const clientErrors: string[] = [];
    const kills: Kill[] = [];
    const cpuFrom = fleet.cpuSnapshot();
    const sharedFrom = sharedServiceCpu();
    const selfFrom = process.cpuUsage();
    const machineFrom = machineTicks();

    // Halfway by verdicts: one process of each role SIGKILLed, a replacement started.
    let killing: Promise<void> | null = null;
    const verdicts = async () => Number((await database!.db("uploads").whereIn("status", ["verified", "quarantined"]).count({ n: "*" }))[0]!.n);
    const monitor = setInterval(() => {
      if (!options.kill || killing) return;
      void verdicts().then((n) => {
        if (killing || n < options.uploads / 2) return;
        killing = (async () => {
          for (const role of ROLES) {
            const victim = fleet.live(role)[0]!;
            await fleet.kill(victim);
            log(`SIGKILL ${victim.name} (pid ${victim.pid}) at ${n} verdicts`);
            kills.push({ role, name: victim.name, atVerdicts: n, replacement: "" });
          }
          await Promise.all(kills.map(async (k) => (k.replacement = (await startWorker(k.role as Role)).name)));
        })();
      }, () => undefined);
    }, 250);

    let next = 0;
    const send = async (client: IntakeClient, apiUrl: string, apiKey: string, p: PlannedUpload) => {
      const { bytes, contentType, filename } = bytesOf(p);
      if (p.via === "sdk") {
        const out = await client.upload(bytes, { filename, contentType });
        return out.upload.id;
      }
      // A presigned PUT and nothing else: the storage event is the only arrival signal.
      const res = await fetch(`${apiUrl}/v1/uploads`, { method: "POST", headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" }, body: JSON.stringify({ filename, contentType, size: bytes.length }) });
      const created = (await res.json()) as { upload: { id: string }; url: string; headers: Record<string, string> };
      if (res.status !== 201) throw new Error(`create ${res.status}: ${JSON.stringify(created)}`);
      const put = await fetch(created.url, { method: "PUT", headers: created.headers, body: bytes });
      if (put.status !== 200) throw new Error(`PUT ${put.status}: ${await put.text()}`);
      return created.upload.id;
    };
    await Promise.all(
      Array.from({ length: options.clients }, async (_, c) => {
        const apiUrl = apiUrls[c % apiUrls.length]!;
        const tenant = TENANTS[c % TENANTS.length]!;
        const apiKey = apiKeys.get(tenant)!;
        const client = new IntakeClient({ baseUrl: apiUrl, apiKey, multipartThresholdBytes: 5 * MiB });
        while (next < plan.length) {
          const p = plan[next++]!;
          try {
            ids.set(p.index, await send(client, apiUrl, apiKey, p));
          } catch (err) {
            clientErrors.push(`upload ${p.index} (${p.kind}, ${p.size} B, ${p.via}): ${(err as Error).message}`);
          }
        }
      }),
    );
    log(`all ${plan.length} uploads sent (${clientErrors.length} client errors); waiting for verdicts`);
    const wanted = [...ids.values()];
    let last = 0;
    await waitFor(
      async () => {
        if (options.kill && !killing) return false;
        const done = Number((await database!.db("uploads").whereIn("id", wanted).whereIn("status", ["verified", "quarantined"]).count({ n: "*" }))[0]!.n);
        last = done;
        return done === wanted.length;
      },
      { timeoutMs: options.verdictDeadlineMs, intervalMs: 500, message: `a verdict for each of the ${wanted.length} uploads`, describeLast: () => `${last} verdicts` },
    ).catch((err: Error) => log(`verdict deadline: ${err.message}`));
    clearInterval(monitor);
    await killing;
    const cpuTo = fleet.cpuSnapshot();
    const sharedTo = sharedServiceCpu();
    const self = process.cpuUsage(selfFrom);
    const machineTo = machineTicks();

    // A verdict is written before the pending object is deleted: give the last deletions a moment.
    await waitFor(async () => (await listKeys(s3!, bucket, "pending/")).length === 0, { timeoutMs: 15_000, intervalMs: 500, message: "nothing left under pending/" }).catch(() => undefined);
    // The staging copies the kills left: swept by the reapers once STAGING_SWEEP_AFTER_SECONDS
    // old (a pass every REAPER_EVERY_SECONDS). Wait for that, with a deadline.
    const stagingLeft = async () => (await listKeys(s3!, bucket, "quarantine/")).filter((k) => parseStagingKey(k) !== null);
    let stagingCopiesLeft = await stagingLeft();
    log(`${stagingCopiesLeft.length} staging copies left at the last verdict; waiting for the reapers' sweep`);
    await waitFor(async () => (stagingCopiesLeft = await stagingLeft()).length === 0, { timeoutMs: (STAGING_SWEEP_AFTER_SECONDS + 60) * 1000, intervalMs: 1000, message: "the reapers' sweep of staging copies", describeLast: () => stagingCopiesLeft.join(", ") }).catch((err: Error) => log(err.message));
    const findings = await checkRun(database.db, plan, ids, await listKeys(s3, bucket, ""));

    const cpu: Record<string, number> = { ...fleet.cpuByKind(cpuFrom, cpuTo), clients: (self.user + self.system) / 1e6 };
    for (const k of Object.keys(sharedTo)) cpu[k] = sharedTo[k]! - sharedFrom[k]!;
    return {
      ...findings,
      options: { uploads: options.uploads, clients: options.clients, perRole: options.perRole, apis: options.apis, kill: options.kill, verdictDeadlineMs: options.verdictDeadlineMs },
      clientErrors,
      kills,
      plantedStagingCopy,
      stagingCopiesLeft,
      cpu,
      loadAverage: loadavg() as [number, number, number],
      machineBusyCores: (cpus().length * (machineTo.busy - machineFrom.busy)) / (machineTo.total - machineFrom.total),
      logDir,
    };
  } finally {
    await fleet.stopAll();
    s3?.destroy();
    // The objects (a GiB or more at full size); the processes' logs stay for a look afterwards.
    rmSync(join(logDir, "storage"), { recursive: true, force: true });
    await database?.drop().catch(() => undefined);
    if (env.QUEUE_PREFIX) {
      // The run's queues under its own prefix (the Redis is shared: never FLUSHALL).
      const redis = connectRedis(loadConfig(env).redis, "worker");
      await deleteKeysUnder(redis, prefix).catch(() => undefined);
      redis.disconnect();
    }
  }
}

async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
    for (const o of page.Contents ?? []) keys.push(o.Key!);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** The machine's CPU ticks so far, all cores (the first line of /proc/stat): busy and total. */
function machineTicks(): { busy: number; total: number } {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  const idle = f[3]! + (f[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}
