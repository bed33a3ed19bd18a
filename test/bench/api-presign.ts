/**
 * Benchmark: POST /v1/uploads (auth, rate limits, validation, quota claim, database insert
 * with its audit row, presign, response, request log) under concurrent keep-alive clients,
 * in the same run as:
 * - the peer users would pick instead: Uppy Companion's GET /s3/params (a presigned POST),
 *   its own process, signing for the same storage, bucket and credentials, driven the same
 *   way (fetched on first use into .data/bench-companion: companion-peer.ts);
 * - the bare signer the endpoint uses (PutPresigner, packages/storage/src/put-presigner.ts)
 *   in a loop: the floor, the endpoint can never be faster than its own signing;
 * - the bare SDK getSignedUrl for the same PutObject and signing options in a loop (what
 *   PutPresigner replaces).
 * The figure the issue asks for is the endpoint's server CPU per request over the bare
 * PutPresigner loop's CPU per signature (target <= 2.0): what everything around the signing
 * costs, with the signing itself as the unit.
 *
 *   node test/bench/api-presign.ts                       # API started here on fauxqs + SQLite
 *   API_URL=http://127.0.0.1:3000 API_KEY=ik_... node test/bench/api-presign.ts
 *   node test/bench/api-presign.ts --cpu-prof [dir]       # + a V8 profile of the API process
 *   node test/bench/api-presign.ts --against /tmp/before  # + the API of another checkout
 *
 * --against DIR: DIR is another checkout of this repository with its dependencies (say `git
 * worktree add /tmp/before <commit>` and `npm ci` there); its API (this script's --serve mode
 * in DIR) takes its turn in every round too, so a change is measured before and after in
 * the same run.
 *
 * Environment: CONCURRENCY (32), DURATION_SECONDS (10, per server), ROUNDS (5),
 * WARMUP_SECONDS (2), LOG_LEVEL (info).
 *
 * The two servers and the two bare loops take turns in rounds (ours, Companion, PutPresigner,
 * getSignedUrl, ours, ...; each turn DURATION_SECONDS / ROUNDS long) and their figures are
 * summed, so a neighbour's load on this shared machine weighs on all four alike instead of
 * on whichever ran during it.
 *
 * Servers run in child processes, one process each, so the clients and a server do not
 * share one event loop: on a 2-core machine the server gets a core of its own, as it would
 * in a deployment; the bare loops run on one core in this process.
 */
import { spawn } from "node:child_process";
import http from "node:http";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { createS3Client } from "@intake/storage";
import { PutPresigner } from "../../packages/storage/src/put-presigner.ts";
import { newUploadId } from "../../services/api/src/upload-service.ts";
import { ensureCompanion, type PeerStorage } from "./companion-peer.ts";

const CONCURRENCY = Number(process.env.CONCURRENCY ?? 32);
const DURATION_S = Number(process.env.DURATION_SECONDS ?? 10);
const WARMUP_S = Number(process.env.WARMUP_SECONDS ?? 2);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const BODY = JSON.stringify({ filename: "photo.png", contentType: "image/png", size: 123_456 });

if (process.argv.includes("--serve")) {
  await serve();
} else {
  await main();
}

/** Child mode: the real API (startApi) on fauxqs + a fresh SQLite file; prints {url, key, storage}. */
async function serve(): Promise<void> {
  const { startFauxqsStorage } = await import("@intake/test");
  const { startApi } = await import("@intake/api");
  const { ApiKeyRepository, migrate, openDatabase } = await import("@intake/db");
  const { createLogger, loadConfig } = await import("@intake/runtime");
  const dir = mkdtempSync(join(tmpdir(), "intake-bench-"));
  const storage = await startFauxqsStorage();
  process.env.AWS_ACCESS_KEY_ID = storage.credentials.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = storage.credentials.secretAccessKey;
  // The abuse limits stay on (their Redis round trip and the quota claim are part of what
  // is measured) but sized so one bench tenant never reaches them.
  const unreached = "1000000000";
  const limits = { RATE_LIMIT_PER_KEY: unreached, RATE_LIMIT_PER_ADDRESS: unreached, QUOTA_PENDING_UPLOADS: unreached, QUOTA_PENDING_BYTES: String(1e15), QUOTA_UPLOADS_PER_DAY: unreached };
  const config = loadConfig({ ...storage.env, ...limits, DATA_DIR: dir, PORT: "0", LOG_LEVEL: process.env.LOG_LEVEL ?? "info", QUEUE_PREFIX: `bench${process.pid}` });
  const db = openDatabase(config.database);
  await migrate(db);
  const { key } = await new ApiKeyRepository(db).create("bench", "bench");
  await db.destroy();
  // Request lines are formatted and written as in production, to a sink instead of a terminal.
  const logger = createLogger({ level: config.logLevel, name: "api", destination: createWriteStream("/dev/null") });
  const api = await startApi(config, { logger });
  // The parent asks for this process's CPU time around the measured window (IPC channel).
  process.on("message", (m: unknown) => {
    if (m === "cpu") process.send!({ cpu: process.cpuUsage() });
  });
  const peerStorage: PeerStorage = { endpoint: storage.endpoint, bucket: storage.bucket, region: storage.env.AWS_REGION, ...storage.credentials };
  process.stdout.write(`${JSON.stringify({ url: api.url, key, storage: peerStorage })}\n`);
  process.stdin.resume();
  process.stdin.on("end", async () => {
    await api.close();
    await storage.stop();
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
}

async function main(): Promise<void> {
  let ours: Server;
  if (process.env.API_URL && process.env.API_KEY) {
    const storage: PeerStorage = {
      endpoint: process.env.S3_ENDPOINT ?? "http://127.0.0.1:4566",
      bucket: process.env.S3_BUCKET ?? "intake-uploads",
      region: process.env.AWS_REGION ?? "us-east-1",
      accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? "test",
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? "test",
    };
    ours = { info: { url: process.env.API_URL, key: process.env.API_KEY, storage } };
  } else {
    // --cpu-prof [dir]: a V8 CPU profile of the API process (written when it exits).
    const at = process.argv.indexOf("--cpu-prof");
    const profile = at < 0 ? [] : ["--cpu-prof", `--cpu-prof-dir=${process.argv[at + 1] && !process.argv[at + 1]!.startsWith("-") ? process.argv[at + 1] : ".data/profiles"}`];
    ours = await startServer([...profile, import.meta.filename, "--serve"], {});
  }
  ensureCompanion(); // before anything is timed: the first run installs it
  const peer = await startServer([join(import.meta.dirname, "companion-peer.ts"), "--serve-companion"], { COMPANION_S3: JSON.stringify(ours.info.storage) });
  const againstAt = process.argv.indexOf("--against");
  const againstDir = againstAt < 0 ? undefined : process.argv[againstAt + 1];
  const before = againstDir ? await startServer([join(againstDir, "test", "bench", "api-presign.ts"), "--serve"], {}, againstDir) : undefined;
  const createBefore: Call | undefined = before && { method: "POST", url: `${before.info.url}/v1/uploads`, headers: { authorization: `Bearer ${before.info.key}`, "content-type": "application/json" }, body: BODY, ok: 201 };
  const { url, key, storage } = ours.info as { url: string; key: string; storage: PeerStorage };

  const create: Call = { method: "POST", url: `${url}/v1/uploads`, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: BODY, ok: 201 };
  // What Uppy's AwsS3 plugin asks Companion for one file (filename and type).
  const params: Call = { method: "GET", url: `${peer.info.url}/s3/params?filename=photo.png&type=image%2Fpng`, headers: {}, ok: 200 };
  console.log(`${CONCURRENCY} concurrent keep-alive clients each, ${WARMUP_S} s warm-up, ${DURATION_S} s measured per server and per bare loop (one core), in ${ROUNDS} rounds of turns`);
  await drive(create, WARMUP_S, CONCURRENCY);
  await drive(params, WARMUP_S, CONCURRENCY);
  if (createBefore) await drive(createBefore, WARMUP_S, CONCURRENCY);
  const loops = { presigner: bareLoop("PutPresigner", storage), sdk: bareLoop("getSignedUrl", storage) };
  await loops.presigner.run(WARMUP_S);
  await loops.sdk.run(WARMUP_S);
  const rounds: { endpoint: Measured[]; companion: Measured[]; presigner: Measured[]; sdk: Measured[]; before: Measured[] } = { endpoint: [], companion: [], presigner: [], sdk: [], before: [] };
  for (let r = 0; r < ROUNDS; r++) {
    rounds.endpoint.push(await measure(ours, create, DURATION_S / ROUNDS));
    if (before) rounds.before.push(await measure(before, createBefore!, DURATION_S / ROUNDS));
    rounds.companion.push(await measure(peer, params, DURATION_S / ROUNDS));
    rounds.presigner.push(await loops.presigner.run(DURATION_S / ROUNDS));
    rounds.sdk.push(await loops.sdk.run(DURATION_S / ROUNDS));
  }
  const endpoint = combine(rounds.endpoint);
  const companion = combine(rounds.companion);
  const presigner = combine(rounds.presigner);
  const sdk = combine(rounds.sdk);
  loops.presigner.close();
  loops.sdk.close();
  await Promise.all([stopServer(ours), stopServer(peer), ...(before ? [stopServer(before)] : [])]);
  console.log("");
  console.log(line("endpoint", endpoint, "req/s", `POST /v1/uploads`));
  const earlier = before ? combine(rounds.before) : undefined;
  if (earlier) console.log(line("before", earlier, "req/s", `POST /v1/uploads of ${againstDir}`));
  console.log(line("companion", companion, "req/s", `GET /s3/params, @uppy/companion`));
  console.log(line("presigner", presigner, "sig/s", "PutPresigner.presign, the endpoint's signer, one loop"));
  console.log(line("sdk", sdk, "sig/s", "getSignedUrl PutObject, same signing options, one loop"));
  console.log("");
  console.log(`ours / companion           ${(endpoint.rate / companion.rate).toFixed(2)}`);
  console.log(`endpoint / its signer      ${(endpoint.rate / presigner.rate).toFixed(2)}   endpoint / getSignedUrl ${(endpoint.rate / sdk.rate).toFixed(2)}`);
  // CPU time is what a request costs whatever else runs on the machine: on a shared or
  // loaded host the wall-clock rates above also measure the neighbours.
  if (endpoint.cpuUs && companion.cpuUs) {
    console.log(`cpu per request            endpoint ${endpoint.cpuUs.toFixed(0)} µs, companion ${companion.cpuUs.toFixed(0)} µs, PutPresigner ${presigner.cpuUs.toFixed(0)} µs, getSignedUrl ${sdk.cpuUs.toFixed(0)} µs`);
    console.log(`cpu ratio                  endpoint / PutPresigner ${(endpoint.cpuUs / presigner.cpuUs).toFixed(2)} (target <= 2.0)   endpoint / companion ${(endpoint.cpuUs / companion.cpuUs).toFixed(2)}`);
  }
  if (earlier?.cpuUs) {
    console.log(`against ${againstDir}: cpu per request ${earlier.cpuUs.toFixed(0)} -> ${endpoint.cpuUs.toFixed(0)} µs (${(endpoint.cpuUs / earlier.cpuUs).toFixed(2)}), endpoint / PutPresigner ${(earlier.cpuUs / presigner.cpuUs).toFixed(2)} -> ${(endpoint.cpuUs / presigner.cpuUs).toFixed(2)}`);
  }
  if (endpoint.errors > 0 || companion.errors > 0 || (earlier?.errors ?? 0) > 0) process.exitCode = 1;
}

interface Server {
  child?: ReturnType<typeof spawn>;
  info: Record<string, any>;
}

/** A server in a child process; its first JSON line on stdout describes it. */
async function startServer(args: string[], env: Record<string, string>, cwd?: string): Promise<Server> {
  const child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit", "ipc"], env: { ...process.env, ...env }, ...(cwd ? { cwd } : {}) });
  const info = await new Promise<Record<string, any>>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (l) => {
      try {
        const parsed = JSON.parse(l);
        if (typeof parsed?.url === "string") return resolve(parsed);
      } catch {
        // a log line before the announcement
      }
    });
    child.once("exit", (code) => reject(new Error(`${args[0]} exited with ${code} before announcing itself`)));
  });
  child.stdout!.resume(); // keep draining whatever it logs
  return { child, info };
}

async function stopServer(s: Server): Promise<void> {
  if (!s.child) return;
  const exited = new Promise((r) => s.child!.once("exit", r));
  s.child.stdin!.end();
  await exited;
}

async function serverCpu(s: Server): Promise<NodeJS.CpuUsage | undefined> {
  const child = s.child;
  if (!child) return undefined;
  return new Promise((resolve) => {
    child.once("message", (m: unknown) => resolve((m as { cpu: NodeJS.CpuUsage }).cpu));
    child.send("cpu");
  });
}

interface Figures {
  /** CPU per request or signature, in µs (0 when the server is not ours to ask). */
  cpuUs: number;
  rate: number;
  p50: number;
  p99: number;
  ok: number;
  errors: number;
}

interface Call {
  method: "GET" | "POST";
  url: string;
  headers: Record<string, string>;
  body?: string;
  ok: number;
}

/** One measured window: the figures and the latencies they came from. */
interface Measured {
  figures: Figures;
  latencies: number[];
  seconds: number;
  cpuMicros: number;
}

async function measure(server: Server, call: Call, seconds: number): Promise<Measured> {
  const before = await serverCpu(server);
  const started = performance.now();
  const { figures, latencies } = await drive(call, seconds, CONCURRENCY);
  const elapsed = (performance.now() - started) / 1000;
  const after = await serverCpu(server);
  const cpuMicros = before && after ? after.user + after.system - before.user - before.system : 0;
  return { figures, latencies, seconds: elapsed, cpuMicros };
}

/** The rounds of one server as if they were one window. */
function combine(windows: Measured[]): Figures {
  const latencies = windows.flatMap((w) => w.latencies);
  const seconds = windows.reduce((t, w) => t + w.seconds, 0);
  const ok = latencies.length;
  const errors = windows.reduce((t, w) => t + w.figures.errors, 0);
  const cpu = windows.reduce((t, w) => t + w.cpuMicros, 0);
  return { cpuUs: cpu / ok, rate: ok / seconds, ...percentiles(latencies), ok, errors };
}

async function drive(call: Call, seconds: number, clients: number): Promise<{ figures: Figures; latencies: number[] }> {
  const latencies: number[] = [];
  let errors = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  // node:http with keep-alive rather than fetch: the load generator shares this 2-core
  // machine with the server, and fetch's WHATWG streams cost the client several times what
  // plain http does per request, which capped the measurable rate below the server's.
  const url = new URL(call.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const headers = call.body === undefined ? call.headers : { ...call.headers, "content-length": String(Buffer.byteLength(call.body)) };
  const once = () =>
    new Promise<number>((resolve, reject) => {
      const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: call.method, headers, agent }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", reject);
      req.end(call.body);
    });
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        const status = await once().catch(() => 0);
        if (status === call.ok) latencies.push(performance.now() - t0);
        else errors++;
      }
    }),
  );
  agent.destroy();
  const elapsed = (performance.now() - started) / 1000;
  return { figures: { cpuUs: 0, rate: latencies.length / elapsed, ...percentiles(latencies), ok: latencies.length, errors }, latencies };
}

/**
 * A bare signing loop on the same storage settings: the endpoint's signer, or the SDK's. Its
 * keys are shaped like the API's (pending/{tenant}/{upload id}) and made before the clock
 * starts: what is timed is the signing alone, the unit the endpoint is measured in.
 */
function bareLoop(kind: "PutPresigner" | "getSignedUrl", storage: PeerStorage): { run(seconds: number): Promise<Measured>; close(): void } {
  const s3 = createS3Client({ region: storage.region, endpoint: storage.endpoint, forcePathStyle: true, credentials: { accessKeyId: storage.accessKeyId, secretAccessKey: storage.secretAccessKey } });
  const presigner = new PutPresigner(s3, storage.bucket);
  const binding = { contentType: "image/png", contentLength: 123_456, expiresIn: 600 };
  const keys = Array.from({ length: 8192 }, () => `pending/bench/${newUploadId(new Date())}`);
  const sign =
    kind === "PutPresigner"
      ? (key: string) => presigner.presign(key, binding)
      : (key: string) =>
          getSignedUrl(s3, new PutObjectCommand({ Bucket: storage.bucket, Key: key, ContentType: binding.contentType, ContentLength: binding.contentLength }), {
            expiresIn: binding.expiresIn,
            signableHeaders: new Set(["content-type", "content-length", "content-md5"]),
            unhoistableHeaders: new Set(["x-amz-checksum-sha256"]),
          });
  return {
    async run(seconds: number): Promise<Measured> {
      const latencies: number[] = [];
      const cpu = process.cpuUsage();
      const started = performance.now();
      const deadline = started + seconds * 1000;
      for (let i = 0; performance.now() < deadline; i++) {
        const t0 = performance.now();
        await sign(keys[i % keys.length]!);
        latencies.push(performance.now() - t0);
      }
      const elapsed = (performance.now() - started) / 1000;
      const used = process.cpuUsage(cpu);
      return { figures: { cpuUs: 0, rate: latencies.length / elapsed, ...percentiles(latencies), ok: latencies.length, errors: 0 }, latencies, seconds: elapsed, cpuMicros: used.user + used.system };
    },
    close: () => s3.destroy(),
  };
}

function line(name: string, f: Figures, unit: string, what: string): string {
  const errors = unit === "req/s" ? `, ${f.ok} ok, ${f.errors} errors` : "";
  return `${name.padEnd(10)} ${f.rate.toFixed(0).padStart(7)} ${unit}   p50 ${f.p50.toFixed(3)} ms   p99 ${f.p99.toFixed(3)} ms   (${what}${errors})`;
}

function percentiles(values: number[]): { p50: number; p99: number } {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN);
  return { p50: at(0.5), p99: at(0.99) };
}
