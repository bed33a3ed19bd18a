import type { Worker } from "bullmq";
import { VerdictCacheRepository } from "@intake/db";
import { AuditLog, openDatabase, prepareSchema, QuarantineReview, RescanRunRepository, UploadRepository, WebhookRepository } from "@intake/db";
import {
  createProducerConnection,
  createWorkerConnection,
  dataNodes,
  isCluster,
  untilReady,
  type RedisConnection,
  processRecheck,
  processRescanJob,
  RecheckQueue,
  RescanPlanner,
  RescanQueue,
  RescanShare,
  stageQueueLoad,
  startRescanWorker,
  type RescanDeps,
  type SignatureWatch,
  startRecheckWorker,
  type RecheckDeps,
  IngestLoop,
  RedisReceiveLag,
  processFinalize,
  processInspect,
  processScan,
  Reaper,
  ImageStripper,
  StageQueues,
  startReaperSchedule,
  startStageWorker,
  type ReaperSchedule,
  type Scanner,
  type Stage,
  type StageDeps,
} from "@intake/pipeline";
import type { VerdictCache } from "@intake/pipeline";
import { createLogger, type Config, type Logger } from "@intake/runtime";
import { createClamdScanner, loadsTestSignaturesOnly, ScanFailedError, TEST_SIGNATURES_WARNING, withLimitsProbe, type ProbedScanner } from "@intake/scanner";
import { createS3Client, createSqsClient, resolveQueueUrl, S3ObjectStore, SqsEventQueue, STORE_KINDS, type EventQueue, type ObjectStore } from "@intake/storage";
import { OutboxRelay, startWebhookWorker, strandedGraceMs, WebhookQueue, type DeliveryDeps } from "@intake/webhooks";
import { createMetrics, observingReceiveLag, type ClamdSource } from "@intake/metrics";
import { checkMetricsListenerConfig, startMetricsListener } from "./metrics-listener.ts";
import { startSignatureWatch } from "./signature-watch.ts";


/** clamd does not behave as the configuration says (limits, alerts, signatures): the worker does not start. */
export class ScannerMisconfiguredError extends Error {
  readonly code = "scanner_misconfigured" as const;
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`clamd does not behave as configured:\n  - ${problems.join("\n  - ")}`);
    this.name = "ScannerMisconfiguredError";
    this.problems = problems;
  }
}

const probedScanners = new Map<string, ProbedScanner>();

/**
 * The worker's own clamd scanner, checked at start against clamd's real behaviour
 * (@intake/scanner limits-probe): a clamd that would let content past CLAMD_MAX_FILE_SIZE
 * through without an alert, or lacks the container signatures, stops the worker here. A
 * clamd that cannot be asked yet is not fatal: every scan waits for the probe to pass.
 */
async function probedClamd(config: Config, logger: Logger): Promise<ProbedScanner> {
  const { host, port, timeoutMs, maxStreamBytes, maxFileSize } = config.clamd;
  // Once per process and clamd: the probe makes clamd inflate MaxFileSize bytes (~2 s at
  // 1000 MiB on an idle machine here, 10-30 s on a loaded one), and a process that starts
  // several workers (tests, restarts after a lost Redis) need not pay it each time.
  const key = `${host}:${port}:${maxFileSize}:${maxStreamBytes}:${timeoutMs}`;
  let scanner = probedScanners.get(key);
  if (!scanner) {
    scanner = withLimitsProbe(createClamdScanner({ host, port, timeoutMs, maxStreamBytes }), { maxFileSize });
    probedScanners.set(key, scanner);
  }
  try {
    const probe = await scanner.limitsProbe();
    if (!probe.ok) throw new ScannerMisconfiguredError(probe.problems);
    logger.info({ durationMs: probe.durationMs, maxFileSize: config.clamd.maxFileSize }, "clamd limits probe passed");
  } catch (err) {
    if (!(err instanceof ScanFailedError)) throw err;
    logger.error({ err, clamd: `${config.clamd.host}:${config.clamd.port}` }, "clamd limits probe could not run; scans wait until it passes");
  }
  return scanner;
}

/** Rechecks are a reviewer's action, one at a time per reviewer: a small fixed concurrency serves them. */
const RECHECK_CONCURRENCY = 2;

export const ROLES = ["ingest", "inspect", "scan", "finalize", "reaper", "recheck", "webhooks", "rescan"] as const;
export type Role = (typeof ROLES)[number];

export function resolveRoles(configured: readonly string[]): Role[] {
  if (configured.includes("all")) return [...ROLES];
  return ROLES.filter((r) => configured.includes(r));
}

export interface WorkerOptions {
  logger?: Logger;
  /** Test seams: replace an adapter (a counting store, a scanner behind a proxy...). */
  store?: ObjectStore;
  events?: EventQueue;
  scanner?: Scanner;
  /** BullMQ lock settings; defaults (30 s) suit production, tests shorten them. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** How long close() lets in-flight jobs finish before it stops waiting. */
  drainTimeoutMs?: number;
  /** Observer of webhook deliveries by outcome (metrics). */
  onWebhookDelivery?: DeliveryDeps["onDelivery"];
  /** How often the webhook relay reads the outbox without a nudge (default 1 s). */
  webhookRelayPollMs?: number;
  /** Test seam of the rescan role: called between the steps of a move to quarantine/. */
  onRescanMoveStep?: RescanDeps["onMoveStep"];
}

export interface RunningWorker {
  roles: Role[];
  scannerVersion: string | null;
  /** The rescan role's planner (absent without the role): operators' runs, a tick now. */
  rescan?: RescanPlanner;
  /** This process's /metrics (metrics-listener.ts), or null when it serves none. */
  metricsUrl: string | null;
  close(): Promise<void>;
}

/**
 * One worker process: the roles picked from config.worker.roles, each a BullMQ worker (or
 * the SQS loop, or the reaper's schedule) over shared adapters built once here.
 */
export async function startWorker(config: Config, opts: WorkerOptions = {}): Promise<RunningWorker> {
  const logger = opts.logger ?? createLogger({ level: config.logLevel, name: "worker" });
  const roles = resolveRoles(config.worker.roles);
  // Before anything starts: metrics open to the network without a token stop the worker here.
  checkMetricsListenerConfig({ host: config.metrics.workerHost, port: config.metrics.workerPort, token: config.metrics.token });
  const cleanups: (() => Promise<unknown>)[] = [];
  const closeAll = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => logger.warn({ err }, "shutdown step failed"));
  };
  try {
    const db = openDatabase(config.database);
    cleanups.push(() => db.destroy());
    // Migrates outside production; in production checks the schema and refuses an older one.
    await prepareSchema(db, { migrateOnStart: config.migrateOnStart });
    const repository = new UploadRepository(db);
    const audit = new AuditLog(db);

    let store = opts.store;
    if (!store) {
      // Credentials come from the SDK's default chain; the config carries no secrets.
      const s3 = createS3Client({ region: config.storage.region, endpoint: config.storage.endpoint, forcePathStyle: config.storage.forcePathStyle });
      cleanups.push(async () => s3.destroy());
      store = new S3ObjectStore(s3, config.storage.bucket, STORE_KINDS[config.storage.kind]);
    }

    const connection = createWorkerConnection(config.redis);
    connection.on("error", (err: Error) => logger.debug({ code: (err as { code?: string }).code }, "redis connection error"));
    cleanups.push(async () => connection.disconnect());
    await warnUnlessNoEviction(connection, logger);
    if (config.env === "production") await warnUnlessPersistent(connection, logger);
    const queues = new StageQueues({ redis: config.redis, prefix: config.redis.prefix, attempts: config.worker.attempts, backoffMs: config.worker.backoffMs });
    cleanups.push(() => queues.close());
    // This process's metrics (@intake/metrics): the stages report through metrics.pipeline;
    // clamd's gauges (up, signature age) are read when scraped, by workers that scan.
    let clamd: ClamdSource | undefined;
    const scans = roles.includes("scan") || roles.includes("recheck") || roles.includes("rescan");
    const metrics = createMetrics({
      process: "worker",
      env: config.env,
      sources: scans ? { clamd: { version: () => (clamd ? clamd.version() : Promise.reject(new Error("no scanner yet"))) }, signatureMaxAgeHours: config.signatures.maxAgeHours } : {},
      onCollectError: (collector, err) => logger.debug({ collector, err: { message: (err as Error).message } }, "a metrics collection failed"),
    });
    const stageDeps: StageDeps = { repository, store, queues, logger, onePassMaxBytes: config.worker.onePassMaxBytes, finalizesInline: roles.includes("finalize"), metrics: metrics.pipeline };
    // The roles that promote strip images for uploads that ask for it (libvips loaded only here).
    // clamd scans each stripped copy before it is served (stripped-promotion.ts scanServed).
    if (roles.includes("finalize") || roles.includes("recheck")) stageDeps.images = await ImageStripper.create(config.worker.images, opts.scanner ?? (await probedClamd(config, logger)));

    let scannerVersion: string | null = null;
    let signatureWatch: SignatureWatch | null = null;
    let nudgeRescan: (() => void) | undefined;
    const workers: Worker[] = [];
    const bull = { connection, prefix: config.redis.prefix, logger, lockDurationMs: opts.lockDurationMs, stalledIntervalMs: opts.stalledIntervalMs };
    const start = (stage: Stage, process: Parameters<typeof startStageWorker>[1]) =>
      workers.push(startStageWorker(stage, process, { ...bull, concurrency: config.worker.concurrency[stage], metrics: metrics.pipeline }));

    if (roles.includes("inspect")) start("inspect", (job) => processInspect({ ...stageDeps, policy: config.policy }, job));
    if (roles.includes("scan")) {
      const scanner = opts.scanner ?? (await probedClamd(config, logger));
      clamd = scanner;
      // The signature version each verdict records, and the hold on clean results made with
      // stale (or unaccepted test) signatures; held uploads resume when fresh ones load.
      // The verdict cache (packages/pipeline/src/verdict-cache.ts): a signature change drops
      // the entries it leaves without standing (lookups never reuse them anyway).
      const verdictCache = config.verdictCache.enabled ? verdictCacheFor(config, db) : undefined;
      const forget = (version: string) =>
        verdictCache?.entries
          .forgetAfterSignatureChange(version)
          .then((n) => logger.info({ version, ...n }, "verdict cache: entries the new signatures do not back were dropped"))
          .catch((err: unknown) => logger.warn({ err: { message: (err as Error).message } }, "verdict cache: could not drop entries after a signature change (lookups skip them anyway)"));
      const signatures = startSignatureWatch(config, { scanner, repository, queues, logger, metrics: metrics.pipeline, onVersionChange: (v) => {
        void forget(v);
        nudgeRescan?.(); // the rescan role's planner in this process: a run starts now, not at its next tick
      } });
      cleanups.push(async () => signatures.stop());
      const version = signatures.watch;
      signatureWatch = version;
      try {
        const v = await version.details();
        scannerVersion = v.raw;
        if (loadsTestSignaturesOnly(v)) logger.warn({ scanner: v.raw }, TEST_SIGNATURES_WARNING);
      } catch (err) {
        // Not fatal: scans fail (and retry) until clamd answers; nothing is promoted meanwhile.
        logger.error({ err, clamd: `${config.clamd.host}:${config.clamd.port}` }, "clamd is not answering; scans will retry until it does");
      }
      start("scan", (job) => processScan({ ...stageDeps, signatures: version, scanner, scannerVersion: version, clamdLimits: { maxFileSize: config.clamd.maxFileSize, maxScanSize: config.clamd.maxScanSize, maxRecursion: config.clamd.maxRecursion }, activeContentAllowed: config.policy.activeContentAllow, heartbeatMs: (config.reaper.stuckAfterSeconds * 1000) / 3, policy: config.policy, ...(verdictCache ? { verdictCache: verdictCache.cache } : {}) }, job));
    }
    if (roles.includes("finalize")) start("finalize", (job) => processFinalize(stageDeps, job));
    /** The process's one signature watch: the scan role's when it runs here, else one started for the roles that need it. */
    const sharedSignatureWatch = (scanner: Scanner): SignatureWatch => {
      if (signatureWatch) return signatureWatch;
      const own = startSignatureWatch(config, { scanner, repository, queues, logger, metrics: metrics.pipeline, onVersionChange: () => nudgeRescan?.() });
      cleanups.push(async () => own.stop());
      return (signatureWatch = own.watch);
    };
    if (roles.includes("recheck")) {
      // Released uploads, checked again with today's signatures (packages/pipeline/src/recheck.ts).
      const scanner = opts.scanner ?? (await probedClamd(config, logger));
      clamd ??= scanner;
      // The same signature watch as the scan stage: a release is promoted only with signatures
      // fresh enough to issue a clean verdict, and records the same signature version.
      const watch = sharedSignatureWatch(scanner);
      const recheckDeps: RecheckDeps = {
        ...stageDeps,
        scanner,
        scannerVersion: watch,
        signatures: watch,
        clamdLimits: { maxFileSize: config.clamd.maxFileSize, maxScanSize: config.clamd.maxScanSize, maxRecursion: config.clamd.maxRecursion },
        activeContentAllowed: config.policy.activeContentAllow,
        heartbeatMs: (config.reaper.stuckAfterSeconds * 1000) / 3,
        policy: config.policy,
        releases: new QuarantineReview(db, repository),
        inMemoryMaxBytes: config.worker.onePassMaxBytes,
      };
      workers.push(startRecheckWorker((job) => processRecheck(recheckDeps, job), { ...bull, concurrency: RECHECK_CONCURRENCY }));
    }
    /**
     * Rescans after signature updates (@intake/pipeline rescan.ts): its own queue and
     * concurrency, the share limiter over the stage queues, and the planner on a timer and
     * on the signature watch's change.
     */
    const startRescanRole = async (): Promise<RescanPlanner> => {
      const scanner = opts.scanner ?? (await probedClamd(config, logger));
      clamd ??= scanner;
      const watch = sharedSignatureWatch(scanner);
      const runs = new RescanRunRepository(db);
      const producer = createProducerConnection(config.redis);
      cleanups.push(async () => producer.disconnect());
      const queue = new RescanQueue(producer, { prefix: config.redis.prefix, attempts: config.worker.attempts, backoffMs: config.worker.backoffMs });
      cleanups.push(() => queue.close());
      const deps: RescanDeps = {
        repository,
        runs,
        store: store!,
        scanner,
        signatures: watch,
        share: new RescanShare({ load: stageQueueLoad(queues), share: config.rescan.maxShare }),
        logger,
        quarantineRetentionDays: config.reaper.quarantineRetentionDays,
        onItem: (outcome, bytes) => metrics.pipeline.rescanItem(outcome, bytes),
        ...(opts.onRescanMoveStep ? { onMoveStep: opts.onRescanMoveStep } : {}),
      };
      workers.push(startRescanWorker((job) => processRescanJob(deps, job), { ...bull, concurrency: config.rescan.concurrency }));
      const planner = new RescanPlanner({
        runs,
        queue,
        signatures: watch,
        logger,
        windowDays: config.rescan.windowDays,
        pageSize: config.rescan.pageSize,
        automatic: config.rescan.onSignatureChange,
        catchUpAfterMs: 2 * config.signatures.checkSeconds * 1000,
        moveStuckAfterMs: Math.max(60_000, config.reaper.stuckAfterSeconds * 1000),
      });
      const tick = () => void planner.tick().catch((err: unknown) => logger.warn({ err: { message: (err as Error).message } }, "rescan planner pass failed; the next tick tries again"));
      nudgeRescan = tick;
      const timer = setInterval(tick, config.rescan.tickSeconds * 1000);
      timer.unref();
      cleanups.push(async () => {
        clearInterval(timer);
        nudgeRescan = undefined;
        await planner.idle();
      });
      tick();
      return planner;
    };
    let rescan: RescanPlanner | undefined;
    if (roles.includes("rescan")) rescan = await startRescanRole();
    cleanups.push(() => drain(workers, opts.drainTimeoutMs ?? 60_000, logger));

    let schedule: ReaperSchedule | null = null;
    if (roles.includes("reaper")) {
      // Its own fail-fast connection, as the stage queues have: a lost recheck is queued again.
      const recheckConnection = createProducerConnection(config.redis);
      cleanups.push(async () => recheckConnection.disconnect());
      const rechecks = new RecheckQueue(recheckConnection, { prefix: config.redis.prefix, attempts: config.worker.attempts, backoffMs: config.worker.backoffMs });
      cleanups.push(() => rechecks.close());
      const reaper = new Reaper({ repository, audit, store, queues, rechecks, logger, settings: config.reaper, onePassMaxBytes: config.worker.onePassMaxBytes, metrics: metrics.pipeline });
      schedule = await startReaperSchedule(reaper, { connection, prefix: config.redis.prefix, everySeconds: config.reaper.everySeconds, logger });
      // The verdict cache's entries past their maximum age go at the reaper's pace.
      if (config.verdictCache.enabled) {
        const entries = new VerdictCacheRepository(db);
        const { cleanMaxAgeHours: clean, malwareMaxAgeHours: malware } = config.verdictCache;
        const prune = setInterval(() => void entries.pruneOlderThan(new Date(), { clean, malware }).catch((err: unknown) => logger.warn({ err: { message: (err as Error).message } }, "verdict cache prune failed")), config.reaper.everySeconds * 1000);
        prune.unref();
        cleanups.push(async () => clearInterval(prune));
      }
      const s = schedule;
      cleanups.push(() => s.close());
    }

    if (roles.includes("ingest")) {
      let events = opts.events;
      if (!events) {
        const sqs = createSqsClient({ region: config.storage.region, endpoint: config.storage.sqsEndpoint });
        cleanups.push(async () => sqs.destroy());
        events = new SqsEventQueue(sqs, config.storage.queueUrl ?? (await resolveQueueUrl(sqs, config.storage.queueName)));
      }
      // receiveLag: each batch's SQS receive lag, left in Redis for the operators' health page.
      const loop = new IngestLoop({ events, repository, audit, store, queues, logger, onePassMaxBytes: config.worker.onePassMaxBytes, receiveLag: observingReceiveLag(new RedisReceiveLag(connection, config.redis.prefix), metrics.pipeline) });
      loop.start();
      // Stopped first on close (cleanups run in reverse): no new events while jobs drain.
      cleanups.push(() => loop.stop());
    }

    if (roles.includes("webhooks")) {
      // Verdict webhooks: the relay moves the outbox (written with each verdict) to the
      // queue, nudged by this process's own transitions and polling for everyone else's.
      const webhooks = new WebhookRepository(db);
      const webhookQueue = new WebhookQueue({ connection, prefix: config.redis.prefix, attempts: config.webhooks.attempts, backoffMs: config.webhooks.backoffMs });
      cleanups.push(() => webhookQueue.close());
      const relay = new OutboxRelay({ webhooks, queue: webhookQueue, logger, sweepGraceMs: strandedGraceMs(config.webhooks.timeoutMs), ...(opts.webhookRelayPollMs ? { pollMs: opts.webhookRelayPollMs } : {}) });
      repository.onOutboxWritten(() => relay.nudge());
      relay.start();
      const { allowAddresses, timeoutMs, disableAfterFailures, concurrency } = config.webhooks;
      const deliveryDeps: DeliveryDeps = { webhooks, logger, requireHttps: config.env === "production", allowAddresses, timeoutMs, disableAfterFailures, onDelivery: (outcome, latencyMs) => {
        metrics.webhooks.delivery(outcome, latencyMs);
        opts.onWebhookDelivery?.(outcome, latencyMs);
      } };
      const webhookWorker = startWebhookWorker(deliveryDeps, { connection, prefix: config.redis.prefix, concurrency });
      // Drained with the stage workers (registered above); the relay stops before them.
      workers.push(webhookWorker);
      cleanups.push(() => relay.stop());
    }

    // Last to start, first to stop (cleanups run in reverse).
    const listener = await startMetricsListener({ host: config.metrics.workerHost, port: config.metrics.workerPort, token: config.metrics.token, metrics, logger });
    if (listener) cleanups.push(() => listener.close());

    logger.info({ roles, concurrency: config.worker.concurrency, scanner: scannerVersion, queuePrefix: config.redis.prefix }, "worker started");
    return { roles, scannerVersion, metricsUrl: listener?.url ?? null, close: closeAll, ...(rescan ? { rescan } : {}) };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/**
 * worker.close() waits for active jobs with no timeout of its own. Past the deadline the
 * workers are closed without waiting: their jobs' locks expire and another worker (or the
 * reaper) picks them up, so nothing is lost, only delayed.
 */
async function drain(workers: Worker[], timeoutMs: number, logger: Logger): Promise<void> {
  const graceful = Promise.all(workers.map((w) => w.close()));
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    graceful.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    logger.warn({ timeoutMs }, "in-flight jobs did not finish in time; closing without them (they will be retried)");
    await Promise.all(workers.map((w) => w.close(true)));
  }
}

/**
 * Each data node's answer to `read` (a cluster's masters, or the one server); null for a node
 * whose CONFIG is refused (managed Redis often forbids it: said, loudly, rather than assumed),
 * or for all when a cluster is not ready yet.
 */
async function perDataNode<T>(redis: RedisConnection, logger: Logger, what: { setting: string; wanted: string }, read: (node: DataNode) => Promise<T>): Promise<{ where: Record<string, string>; value: T | null }[] | null> {
  // A cluster client knows its masters once it is ready (it has read the slot map).
  if (isCluster(redis) && !(await untilReady(redis, 10_000))) {
    logger.warn({}, `could not read Redis ${what.setting} (the cluster is not ready): make sure every node's ${what.wanted}`);
    return null;
  }
  const answers: { where: Record<string, string>; value: T | null }[] = [];
  for (const node of dataNodes(redis)) {
    const where: Record<string, string> = isCluster(redis) ? { node: `${node.options.host}:${node.options.port}` } : {};
    try {
      answers.push({ where, value: await read(node) });
    } catch (err) {
      logger.warn({ err, ...where }, `could not read Redis ${what.setting} (CONFIG GET refused?): make sure it ${what.wanted}`);
      answers.push({ where, value: null });
    }
  }
  return answers;
}

type DataNode = ReturnType<typeof dataNodes>[number];
const configValue = async (node: DataNode, name: string) => ((await node.config("GET", name)) as string[])[1] ?? null;

/**
 * BullMQ keeps jobs as ordinary keys: a Redis that evicts under memory pressure silently
 * drops jobs, schedulers and locks. noeviction makes Redis refuse writes instead. On a
 * cluster each master holds the queues whose hash tag falls in its slots, so each is asked.
 * Returns the policy (the first one that is not noeviction), or null when one could not be read.
 */
export async function warnUnlessNoEviction(redis: RedisConnection, logger: Logger): Promise<string | null> {
  const answers = await perDataNode(redis, logger, { setting: "maxmemory-policy", wanted: "is noeviction" }, (node) => configValue(node, "maxmemory-policy"));
  if (!answers) return null;
  let found: string | null = "noeviction";
  for (const { where, value } of answers) {
    if (value === null) {
      if (found === "noeviction") found = null;
    } else if (value !== "noeviction") {
      logger.error({ policy: value, ...where }, `!!! Redis maxmemory-policy is ${value}, not noeviction: under memory pressure Redis will EVICT queued jobs and the pipeline loses work. Set maxmemory-policy noeviction.`);
      if (found === "noeviction") found = value;
    }
  }
  return found;
}

/**
 * A Redis that neither appends (AOF) nor snapshots loses every queued job, lock and schedule
 * on a restart: the reaper brings the uploads back from the database, but only after its
 * stuck threshold, and rate-limit and sign-in state starts over (RUNBOOK "Redis"). Said once
 * at start in production, per node; returns false when some node persists nothing.
 */
export async function warnUnlessPersistent(redis: RedisConnection, logger: Logger): Promise<boolean | null> {
  const answers = await perDataNode(redis, logger, { setting: "persistence settings", wanted: "appends (appendonly yes)" }, async (node) => ({ aof: await configValue(node, "appendonly"), save: await configValue(node, "save") }));
  if (!answers) return null;
  let persistent: boolean | null = true;
  for (const { where, value } of answers) {
    if (value === null) {
      if (persistent) persistent = null;
    } else if (value.aof !== "yes" && !value.save) {
      logger.error({ appendonly: value.aof, save: value.save, ...where }, "!!! Redis persists nothing (appendonly no, no save points): a Redis restart loses every queued job; the reaper re-queues the uploads only after STUCK_AFTER_SECONDS. Set appendonly yes.");
      persistent = false;
    }
  }
  return persistent;
}

/** The scan stage's verdict cache over the database's table, with the config's settings. */
function verdictCacheFor(config: Config, db: ConstructorParameters<typeof UploadRepository>[0]): { cache: VerdictCache; entries: VerdictCacheRepository } {
  const entries = new VerdictCacheRepository(db);
  return { entries, cache: { store: entries, settings: config.verdictCache, deploymentRules: config.policy, maxStreamBytes: config.clamd.maxStreamBytes } };
}
