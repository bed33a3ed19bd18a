/**
 * Pipeline benchmark (issue 3 section 6, issue 9):
 *   node test/bench/pipeline.ts [--files 120] [--scan-concurrency 4] [--storage fauxqs|rgw] [--sizes-kib 64,256,1024,4096,10240] [--rate 100]
 *
 * The baseline is the least work any pipeline must do (issue 9): a bare loop that, for each
 * file, streams one GET through sha256 into clamd INSTREAM, then makes one CopyObject and
 * one DeleteObject, with the same S3 client and scanner and the same concurrency, and no
 * database or queue. It runs in the same process right after the backlog drain, on the
 * same files, so the two see the same machine.
 *
 * --rate N: the end-to-end phase sends N uploads per second (open loop, as clients do)
 * instead of four at a time, so PUT-end -> verdict is measured at a known arrival rate.
 *
 * --storage fauxqs (default): the dev stack's storage, fauxqs + the S3 event emitter in a
 * child process; uploads reach the workers through S3 events -> SQS -> ingest.
 * --storage rgw: Ceph RGW from infra/rgw (RGW_ENDPOINT etc. set, as infra/bin/test sets
 * them), a real S3 implementation written in C++; RGW sends no events here, so each upload
 * reaches the workers through the client's POST .../complete, as in the RGW tests.
 *
 * 1. End to end: uploads of mixed sizes through the whole stack (API -> presigned PUT ->
 *    fauxqs + S3 event emitter -> SQS -> ingest -> inspect -> scan (clamd) -> finalize),
 *    workers in this process; files/s, MB/s and p50/p99 from the end of each PUT to its
 *    verdict; then raw clamd INSTREAM of the same files at the same concurrency, and the
 *    ratio (target >= 0.7).
 * 2. Bytes the workers read per upload, counted on the ObjectStore read path (target:
 *    <= size + 64 KiB).
 * 3. Peak worker RSS on the largest accepted object: test/bench/scan-memory.ts.
 */
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { startApi } from "@intake/api";
import { ApiKeyRepository, UploadRepository } from "@intake/db";
import { createLogger, loadConfig } from "@intake/runtime";
import { createClamdScanner } from "@intake/scanner";
import { freshDatabase } from "@intake/test";
import { startWorker } from "@intake/worker";
import { queueName, STAGES } from "@intake/pipeline";
import { Queue } from "bullmq";
import { Session } from "node:inspector/promises";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { zip } from "../pipeline/fixtures.ts";
import { clamdPid, countingStore, cpuSeconds, percentile, startRgwProcesses, startStorageProcess } from "./pipeline-support.ts";

const MiB = 1024 * 1024;
const argText = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const arg = (name: string, fallback: number) => Number(argText(name, String(fallback)));
const STORAGE = argText("storage", "fauxqs");
if (STORAGE !== "fauxqs" && STORAGE !== "rgw") throw new Error(`--storage must be fauxqs or rgw, not ${STORAGE}`);
const FILES = arg("files", 120);
const SCAN_CONCURRENCY = arg("scan-concurrency", 4);
// KiB; fauxqs takes single PUTs up to 11 MiB.
const SIZES = argText("sizes-kib", "64,256,1024,4096,10240").split(",").map((k) => Number(k) * 1024);
const PUT_CONCURRENCY = 4;
const RATE = arg("rate", 0);
// --profile DIR: CPU profiles (.cpuprofile, for Chrome DevTools or speedscope) of this
// process during the backlog drain and during the bare loop, each on its own.
const PROFILE_DIR = argText("profile", "");

// Storage runs in its own process, as it would in any deployment: fauxqs (plus the S3 event
// emitter) sharing this process's event loop with the workers would measure contention
// between the two, not the pipeline.
const storage = STORAGE === "fauxqs" ? await startStorageProcess() : await startRgwProcesses();
const database = await freshDatabase("sqlite");
process.env.AWS_ACCESS_KEY_ID = storage.credentials.accessKeyId;
process.env.AWS_SECRET_ACCESS_KEY = storage.credentials.secretAccessKey;
const env = {
  ...storage.env,
  SQLITE_PATH: (database.settings as { filename: string }).filename,
  PORT: "0",
  QUEUE_PREFIX: `bench${randomBytes(4).toString("hex")}`,
  LOG_LEVEL: "warn",
  MULTIPART_THRESHOLD_BYTES: String(5 * 1024 * MiB),
  SCAN_CONCURRENCY: String(SCAN_CONCURRENCY),
};
const config = loadConfig(env);
const silent = createLogger({ level: "warn", name: "bench", destination: { write: () => undefined } });
const api = await startApi(config, { logger: silent });
const apiKey = (await new ApiKeyRepository(database.db).create("bench", "bench")).key;
const uploads = new UploadRepository(database.db);
const counted = countingStore(storage.store);
// Ingest in a worker of its own, so the stages can be stopped and restarted (1b) while
// storage events keep flowing into BullMQ.
const ingest = storage.events ? await startWorker(loadConfig({ ...env, WORKER_ROLES: "ingest" }), { logger: silent, store: counted.store, events: storage.events }) : null;
const stagesConfig = loadConfig({ ...env, WORKER_ROLES: "inspect,scan,finalize" });
const worker = await startWorker(stagesConfig, { logger: silent, store: counted.store });
const scanConcurrency = config.worker.concurrency.scan;

// Real ZIP files (stored, random payload: incompressible, so clamd reads every byte).
const files = Array.from({ length: FILES }, (_, i) => zip([{ name: `payload-${i}.bin`, data: randomBytes(SIZES[i % SIZES.length]!) }]));
const totalBytes = files.reduce((n, f) => n + f.length, 0);
console.log(`# pipeline bench on ${STORAGE}: ${FILES} ZIP files, ${(totalBytes / MiB).toFixed(1)} MiB, sizes ${SIZES.map((s) => s / 1024 + "K").join("/")}; scan concurrency ${scanConcurrency}; ${worker.scannerVersion}`);

async function createAndPut(bytes: Buffer): Promise<{ id: string; putEnd: number; size: number }> {
  const res = await fetch(`${api.url}/v1/uploads`, { method: "POST", headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" }, body: JSON.stringify({ filename: "f.zip", contentType: "application/zip", size: bytes.length }) });
  const c = (await res.json()) as { upload: { id: string }; url: string; headers: Record<string, string> };
  const put = await fetch(c.url, { method: "PUT", headers: c.headers, body: bytes });
  if (put.status !== 200) throw new Error(`PUT ${put.status}`);
  const putEnd = Date.now();
  if (!storage.events) {
    // No S3 events from RGW: the client's complete call hands the upload to the pipeline.
    const done = await fetch(`${api.url}/v1/uploads/${c.upload.id}/complete`, { method: "POST", headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" }, body: "{}" });
    if (done.status !== 200) throw new Error(`complete ${done.status}: ${await done.text()}`);
  }
  return { id: c.upload.id, putEnd, size: bytes.length };
}

async function pool<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  }));
  return out;
}

/** Starts one upload every 1/rate s, whatever the earlier ones are doing (an open loop). */
async function paced<R>(items: Buffer[], rate: number, fn: (b: Buffer) => Promise<R>): Promise<R[]> {
  const t0 = Date.now();
  return Promise.all(items.map(async (item, i) => {
    const wait = t0 + (i * 1000) / rate - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    return fn(item);
  }));
}

/** Profiles `work` when --profile is given: the phase's own CPU profile, nothing before or after. */
async function profiled<T>(name: string, work: () => Promise<T>): Promise<T> {
  if (!PROFILE_DIR) return work();
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  try {
    return await work();
  } finally {
    const { profile } = await session.post("Profiler.stop");
    mkdirSync(PROFILE_DIR, { recursive: true });
    writeFileSync(join(PROFILE_DIR, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

// --- 1. end to end ------------------------------------------------------------------------
const started = Date.now();
const sent = RATE > 0 ? await paced(files, RATE, createAndPut) : await pool(files, PUT_CONCURRENCY, createAndPut);
const pendingIds = new Set(sent.map((s) => s.id));
const finishedAt = new Map<string, number>();
while (pendingIds.size > 0) {
  const rows = await database.db("uploads").whereIn("id", [...pendingIds]).whereNotNull("finished_at").select("id", "finished_at", "status", "reason");
  for (const r of rows) {
    if (r.status !== "verified") throw new Error(`upload ${r.id} ended ${r.status} (${r.reason})`);
    finishedAt.set(r.id, Number(r.finished_at));
    pendingIds.delete(r.id);
  }
  if (Date.now() - started > 600_000) throw new Error("timed out waiting for verdicts");
  await new Promise((r) => setTimeout(r, 100));
}
const wall = (Math.max(...finishedAt.values()) - started) / 1000;
const latencies = sent.map((s) => finishedAt.get(s.id)! - s.putEnd).sort((a, b) => a - b);
const e2eMBs = totalBytes / 1e6 / wall;
console.log(`end-to-end${RATE > 0 ? ` at ${RATE} uploads/s offered` : ""}: ${FILES} files in ${wall.toFixed(2)} s = ${(FILES / wall).toFixed(2)} files/s, ${e2eMBs.toFixed(1)} MB/s; PUT-end -> verdict p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms`);

// Where the time goes, from the per-transition timestamps the repository records.
{
  const rows = await database.db("uploads").whereIn("id", sent.map((x) => x.id)).select("id", "uploaded_at", "inspected_at", "scanned_at", "decided_at", "finished_at");
  const putEnd = new Map(sent.map((x) => [x.id, x.putEnd]));
  const avg = (f: (r: Record<string, number>) => number) => (rows.reduce((n, r) => n + f(r as Record<string, number>), 0) / rows.length).toFixed(0);
  // One-pass rows have no scanned_at: inspecting -> deciding is their read, sniff and scan.
  const scanStart = (r: Record<string, number>) => Number(r.scanned_at ?? r.inspected_at);
  console.log(`  mean ms: PUT-end -> uploaded ${avg((r) => Number(r.uploaded_at) - putEnd.get(r.id as unknown as string)!)}, uploaded -> inspecting (queued) ${avg((r) => Number(r.inspected_at) - Number(r.uploaded_at))}, inspecting -> scan start ${avg((r) => scanStart(r) - Number(r.inspected_at))}, scan (one pass: read + inspect + scan) ${avg((r) => Number(r.decided_at) - scanStart(r))}, finalize ${avg((r) => Number(r.finished_at) - Number(r.decided_at))}`);
}

// --- raw clamd, same files, same concurrency ---------------------------------------------------
const scanner = createClamdScanner({ host: config.clamd.host, port: config.clamd.port });
const clamd = clamdPid();
const rawCpu0 = { clamd: cpuSeconds(clamd), self: cpuSeconds("self") };
const rawStart = Date.now();
await pool(files, scanConcurrency, async (f) => {
  const r = await scanner.scan(Readable.from([f]));
  if (r.outcome !== "clean") throw new Error(`raw scan: ${r.outcome}`);
});
const rawWall = (Date.now() - rawStart) / 1000;
const rawMBs = totalBytes / 1e6 / rawWall;
const rawCpu = { clamd: cpuSeconds(clamd) - rawCpu0.clamd, self: cpuSeconds("self") - rawCpu0.self };
const MiBs = totalBytes / MiB;
const perMiB = (seconds: number) => `${((seconds * 1000) / MiBs).toFixed(2)} ms/MiB`;
console.log(`raw clamd INSTREAM: ${FILES} files in ${rawWall.toFixed(2)} s = ${(FILES / rawWall).toFixed(2)} files/s, ${rawMBs.toFixed(1)} MB/s`);
console.log(`  CPU: clamd ${perMiB(rawCpu.clamd)}, sender ${perMiB(rawCpu.self)}`);
console.log(`ratio end-to-end (PUTs included) / raw clamd: ${(e2eMBs / rawMBs).toFixed(2)}`);

// --- 1b. pipeline throughput on a backlog ------------------------------------------------------
// Above, the clients' PUTs (fauxqs receiving and writing 120 MiB) compete for the same two
// cores as the workers and clamd. Here the same files are uploaded again while the stage
// workers are stopped (ingest keeps turning storage events into inspect jobs); then the
// stages start and drain the backlog: what the pipeline itself sustains (inspect, streamed
// scan, server-side copies), comparable with raw clamd on the same files at the same scan
// concurrency.
await worker.close();
const backlog = await pool(files, PUT_CONCURRENCY, createAndPut);
const waiting = new Set(backlog.map((b) => b.id));
for (const deadline = Date.now() + 120_000; ; ) {
  const arrived = await database.db("uploads").whereIn("id", [...waiting]).where("status", "uploaded").count({ n: "*" });
  if (Number(arrived[0]!.n) === waiting.size) break;
  if (Date.now() > deadline) throw new Error("backlog events did not arrive");
  await new Promise((r) => setTimeout(r, 100));
}
// The stage workers start with their queues paused, so what is timed is the drain, not
// opening the database, connecting to Redis and asking clamd its version.
const stageQueues = STAGES.map((stage) => new Queue(queueName(stage), { connection: { url: config.redis.url }, prefix: config.redis.prefix }));
await Promise.all(stageQueues.map((q) => q.pause()));
const startAt = Date.now();
const drainer = await startWorker(stagesConfig, { logger: silent, store: storage.store });
const startupMs = Date.now() - startAt;
const storageCpu = () => storage.pids.reduce((n, pid) => n + cpuSeconds(pid), 0);
const cpu0 = { clamd: cpuSeconds(clamd), storage: storageCpu(), workers: cpuSeconds("self") };
const drainStart = Date.now();
await profiled("drain", async () => {
  await Promise.all(stageQueues.map((q) => q.resume()));
  // A count with no bindings: this process's CPU is what "worker CPU per upload" counts,
  // so the wait costs as little of it as it can.
  const finished = async () => Number((await database.db("uploads").where("finished_at", ">=", drainStart).count({ n: "*" }))[0]!.n);
  while ((await finished()) < waiting.size) {
    if (Date.now() - drainStart > 600_000) throw new Error("timed out draining the backlog");
    await new Promise((r) => setTimeout(r, 100));
  }
});
for (const r of await database.db("uploads").whereIn("id", [...waiting]).select("id", "status", "reason")) {
  if (r.status !== "verified") throw new Error(`upload ${r.id} ended ${r.status} (${r.reason})`);
}
const drainWall = (Date.now() - drainStart) / 1000;
const drainMBs = totalBytes / 1e6 / drainWall;
console.log(`backlog drain: ${FILES} files in ${drainWall.toFixed(2)} s = ${(FILES / drainWall).toFixed(2)} files/s, ${drainMBs.toFixed(1)} MB/s (queues resumed to last verdict; the workers' start, ${startupMs} ms, before that)`);
console.log(`ratio backlog drain / raw clamd: ${(drainMBs / rawMBs).toFixed(2)} (target >= 0.70)`);
{
  const used = { clamd: cpuSeconds(clamd) - cpu0.clamd, storage: storageCpu() - cpu0.storage, workers: cpuSeconds("self") - cpu0.workers };
  console.log(`  CPU s during the drain: clamd ${used.clamd.toFixed(2)}, storage (${storage.pidsAre}) ${used.storage.toFixed(2)}, API + workers + Redis/DB clients ${used.workers.toFixed(2)} (of ${(2 * drainWall).toFixed(2)} available on 2 cores)`);
  console.log(`  CPU per MiB: clamd ${perMiB(used.clamd)}, storage ${perMiB(used.storage)}, workers ${perMiB(used.workers)}; all three ${perMiB(used.clamd + used.storage + used.workers)} against raw clamd's ${perMiB(rawCpu.clamd + rawCpu.self)}`);
}
const drain = { filesPerS: FILES / drainWall, MBs: drainMBs, workerMsPerFile: ((cpuSeconds("self") - cpu0.workers) * 1000) / FILES };
await drainer.close();
await Promise.all(stageQueues.map((q) => q.close()));
await ingest?.close();

// --- 1c. the bare loop: the least work any pipeline must do ------------------------------------
// GET streamed through sha256 into clamd INSTREAM (the scanner hashes on the same pass),
// CopyObject, DeleteObject; same S3 client, same scanner, same concurrency as the scan
// stage; no database, no queue, no content checks.
{
  const bareKeys = files.map((_, i) => `bare/${randomBytes(6).toString("hex")}-${i}`);
  await pool(files.map((f, i) => [f, bareKeys[i]!] as const), PUT_CONCURRENCY, ([f, key]) => storage.s3.send(new PutObjectCommand({ Bucket: storage.bucket, Key: key, Body: f, ContentType: "application/zip" })));
  const cpuBare0 = { clamd: cpuSeconds(clamd), storage: storageCpu(), self: cpuSeconds("self") };
  const bareStart = Date.now();
  await profiled("bare-loop", () => pool(bareKeys, scanConcurrency, async (key) => {
    const object = await storage.store.read(key);
    if (!object) throw new Error(`bare loop: ${key} missing`);
    const r = await scanner.scan(object.body);
    if (r.outcome !== "clean") throw new Error(`bare loop scan: ${r.outcome}`);
    await storage.store.copy(key, `bare-done/${key.slice(5)}`, { size: object.size, contentType: "application/zip", metadata: { sha256: r.sha256 } });
    await storage.store.delete(key);
  }));
  const bareWall = (Date.now() - bareStart) / 1000;
  const bare = { filesPerS: FILES / bareWall, MBs: totalBytes / 1e6 / bareWall, msPerFile: ((cpuSeconds("self") - cpuBare0.self) * 1000) / FILES };
  const used = { clamd: cpuSeconds(clamd) - cpuBare0.clamd, storage: storageCpu() - cpuBare0.storage };
  console.log(`bare loop (GET -> sha256 -> clamd, Copy, Delete): ${FILES} files in ${bareWall.toFixed(2)} s = ${bare.filesPerS.toFixed(2)} files/s, ${bare.MBs.toFixed(1)} MB/s; CPU s: clamd ${used.clamd.toFixed(2)}, storage ${used.storage.toFixed(2)}, loop ${(bare.msPerFile * FILES / 1000).toFixed(2)} (${bare.msPerFile.toFixed(2)} ms per file)`);
  console.log(`ratio backlog drain / bare loop: ${(drain.filesPerS / bare.filesPerS).toFixed(2)} files/s, ${(drain.MBs / bare.MBs).toFixed(2)} MB/s (targets: small files >= 0.6 files/s, mixed >= 0.8 MB/s)`);
  console.log(`worker CPU per upload during the drain: ${drain.workerMsPerFile.toFixed(2)} ms (bare loop ${bare.msPerFile.toFixed(2)} ms; target <= 3 ms)`);
}

// --- 2. bytes read per upload -----------------------------------------------------------------
let worstExcess = -Infinity;
for (const s of sent) {
  const row = await uploads.getById(s.id);
  // Every read made for this upload, whatever the key: the pending object and finalize's
  // staging copy (quarantine/{tenant}/{id}.promoting-*) alike.
  let read = 0;
  for (const [key, n] of counted.bytesRead) if (key === row!.objectKey || key.includes(`/${s.id}.`)) read += n;
  const excess = read - s.size;
  worstExcess = Math.max(worstExcess, excess);
}
const totalRead = [...counted.bytesRead.values()].reduce((a, b) => a + b, 0);
console.log(`bytes read by workers: total ${(totalRead / MiB).toFixed(2)} MiB for ${(totalBytes / MiB).toFixed(2)} MiB stored; worst upload read size + ${(worstExcess / 1024).toFixed(1)} KiB (target <= size + 64 KiB; finalize re-reads its staging copy where storage returns no SHA-256)`);

// Peak worker RSS while scanning the largest accepted object: test/bench/scan-memory.ts (on RGW, whose
// multipart completion does not hold the object in memory as fauxqs's does).

await api.close();
await database.drop();
await storage.stop();
process.exit(0);

