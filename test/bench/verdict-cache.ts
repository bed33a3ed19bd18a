/**
 * Verdict cache benchmark (issue 12 §4):
 *   node test/bench/verdict-cache.ts [--distinct 24] [--repeats 4] [--size-kib 2048] [--staged]
 *
 * Repeat-content traffic: `distinct` different files, each uploaded `repeats` times (the
 * first round, then the repeats once the first verdicts are in, as repeated content arrives
 * in practice: the same attachment forwarded, the same installer re-uploaded). The same run
 * does it twice, side by side: once with VERDICT_CACHE off, once on, each on a fresh
 * database, against one clamd of its own (infra/clamd/up.sh on another port: no other test's
 * scans in its CPU figures). Reported per phase: files/s and MB/s over the whole traffic,
 * PUT-end -> verdict p50/p99 of the repeats, and clamd's CPU seconds (/proc/<pid>/stat),
 * whose difference is what the cache saved.
 *
 * Files are stored ZIPs with a random payload (incompressible, so clamd reads every byte).
 * --staged declares each file's sha256 and sets ONE_PASS_MAX_BYTES below the file size, so
 * the staged path (lookup by the declared sha256 before the read) is what is measured.
 */
import { randomBytes, createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startApi } from "@intake/api";
import { ApiKeyRepository } from "@intake/db";
import { createLogger, loadConfig } from "@intake/runtime";
import { freshDatabase } from "@intake/test";
import { startWorker } from "@intake/worker";
import { zip } from "../pipeline/fixtures.ts";
import { startSmallClamd } from "../support/small-clamd.ts";
import { cpuSeconds, percentile, startStorageProcess } from "./pipeline-support.ts";

const MiB = 1024 * 1024;
const argText = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const DISTINCT = Number(argText("distinct", "24"));
const REPEATS = Number(argText("repeats", "4"));
const SIZE = Number(argText("size-kib", "2048")) * 1024;
const STAGED = process.argv.includes("--staged");

const clamd = await startSmallClamd({ maxFileSize: 100 * MiB });
const clamdPid = Number(readFileSync(join(clamd.dataDir, "clamd", "clamd.pid"), "utf8").trim());
const storage = await startStorageProcess();
process.env.AWS_ACCESS_KEY_ID = storage.credentials.accessKeyId;
process.env.AWS_SECRET_ACCESS_KEY = storage.credentials.secretAccessKey;
const files = Array.from({ length: DISTINCT }, (_, i) => zip([{ name: `payload-${i}.bin`, data: randomBytes(SIZE) }]));
const sha = files.map((f) => createHash("sha256").update(f).digest("hex"));
const silent = createLogger({ level: "warn", name: "bench", destination: { write: () => undefined } });
console.log(`# verdict cache bench: ${DISTINCT} distinct ZIPs of ${(files[0]!.length / MiB).toFixed(2)} MiB, each uploaded ${REPEATS} times (${DISTINCT * REPEATS} uploads, ${((DISTINCT * REPEATS * files[0]!.length) / MiB).toFixed(0)} MiB); ${STAGED ? "staged path, declared sha256" : "one pass"}; clamd of its own`);

async function phase(cache: boolean) {
  const database = await freshDatabase("sqlite");
  const env = {
    ...storage.env,
    ...clamd.env,
    CLAMD_PORT: String(clamd.port),
    SQLITE_PATH: (database.settings as { filename: string }).filename,
    PORT: "0",
    QUEUE_PREFIX: `benchvc${randomBytes(4).toString("hex")}`,
    LOG_LEVEL: "warn",
    WORKER_METRICS_PORT: "0",
    MULTIPART_THRESHOLD_BYTES: String(5 * 1024 * MiB),
    VERDICT_CACHE: String(cache),
    ...(STAGED ? { ONE_PASS_MAX_BYTES: "65536" } : {}),
  };
  const config = loadConfig(env);
  const api = await startApi(config, { logger: silent });
  const apiKey = (await new ApiKeyRepository(database.db).create("bench", "bench")).key;
  // No ingest: each upload is handed over by the client's complete call (S3 events would add
  // the stand-in's polling to every latency, and a closed worker takes its event source along).
  const worker = await startWorker(loadConfig({ ...env, WORKER_ROLES: "inspect,scan,finalize" }), { logger: silent, store: storage.store });

  const put = async (i: number) => {
    const bytes = files[i]!;
    const res = await fetch(`${api.url}/v1/uploads`, { method: "POST", headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" }, body: JSON.stringify({ filename: "f.zip", contentType: "application/zip", size: bytes.length, ...(STAGED ? { sha256: sha[i] } : {}) }) });
    const c = (await res.json()) as { upload: { id: string }; url: string; headers: Record<string, string> };
    const r = await fetch(c.url, { method: "PUT", headers: c.headers, body: bytes });
    if (r.status !== 200) throw new Error(`PUT ${r.status}`);
    const putEnd = Date.now();
    const done = await fetch(`${api.url}/v1/uploads/${c.upload.id}/complete`, { method: "POST", headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" }, body: "{}" });
    if (done.status !== 200) throw new Error(`complete ${done.status}: ${await done.text()}`);
    return { id: c.upload.id, putEnd };
  };
  const settle = async (sent: { id: string; putEnd: number }[]) => {
    const open = new Set(sent.map((s) => s.id));
    const done = new Map<string, { at: number; hit: boolean }>();
    const t0 = Date.now();
    while (open.size > 0) {
      for (const r of await database.db("uploads").whereIn("id", [...open]).whereNotNull("finished_at").select("id", "finished_at", "status", "reason", "verdict_from_cache")) {
        if (r.status !== "verified") throw new Error(`upload ${r.id} ended ${r.status} (${r.reason})`);
        done.set(r.id, { at: Number(r.finished_at), hit: r.verdict_from_cache !== null });
        open.delete(r.id);
      }
      if (Date.now() - t0 > 600_000) throw new Error("timed out waiting for verdicts");
      await new Promise((r) => setTimeout(r, 50));
    }
    return done;
  };
  const pool = async <R>(n: number, count: number, fn: (i: number) => Promise<R>) => {
    const out: R[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: n }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await fn(i);
      }
    }));
    return out;
  };

  const cpu0 = cpuSeconds(clamdPid);
  const started = Date.now();
  await settle(await pool(4, DISTINCT, put));
  const repeats = await pool(4, DISTINCT * (REPEATS - 1), (i) => put(i % DISTINCT));
  const done = await settle(repeats);
  const wall = (Math.max(...[...done.values()].map((d) => d.at)) - started) / 1000;
  const clamdCpu = cpuSeconds(clamdPid) - cpu0;
  const latencies = repeats.map((s) => done.get(s.id)!.at - s.putEnd).sort((a, b) => a - b);
  const hits = [...done.values()].filter((d) => d.hit).length;
  const total = DISTINCT * REPEATS;
  const mb = (total * files[0]!.length) / 1e6;
  console.log(`cache ${cache ? "on " : "off"}: ${total} uploads in ${wall.toFixed(2)} s = ${(total / wall).toFixed(2)} files/s, ${(mb / wall).toFixed(1)} MB/s; repeats PUT-end -> verdict p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms; hits ${hits}/${repeats.length}; clamd CPU ${clamdCpu.toFixed(2)} s`);
  await worker.close();
  await api.close();
  await database.drop();
  return { wall, clamdCpu };
}

try {
  const off = await phase(false);
  const on = await phase(true);
  console.log(`saved: clamd CPU ${(off.clamdCpu - on.clamdCpu).toFixed(2)} s of ${off.clamdCpu.toFixed(2)} s (${(100 * (1 - on.clamdCpu / off.clamdCpu)).toFixed(0)}%); wall ${off.wall.toFixed(2)} s -> ${on.wall.toFixed(2)} s`);
} finally {
  await storage.stop();
  clamd.close();
}
process.exit(0);
