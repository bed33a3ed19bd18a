/**
 * Rescan benchmark (issue 12 §7):
 *   node test/bench/rescan.ts [--small 2000] [--small-kib 4] [--large 20] [--large-mib 4]
 *                             [--rate 8] [--seconds 10] [--rounds 3] [--rescan-concurrency 2] [--share 0.25]
 *
 * On one stack (fauxqs + S3 events, SQLite, the local Redis, a clamd of its own started by
 * infra/clamd/up.sh with its own DATA_DIR and port, the pipeline's workers in this process):
 *
 * 0. Seeds N verified objects through the real pipeline (small text files and some MB-sized
 *    ones), then marks them cleared by an older signature version, as a signature update does.
 * 1. Rescan throughput alone: a run over all of them, nothing else running: objects/s, MB/s.
 * 2. A stream of new uploads (open loop, --rate per second, for --seconds) with no rescan,
 *    the same stream while a rescan runs at RESCAN_MAX_SHARE --share, and once more with the
 *    share limiter off (share 1), interleaved over --rounds rounds: create -> verdict latency
 *    (the row's created_at to finished_at) p50/p99 side by side, and what the rescan got
 *    done meanwhile.
 */
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { RescanRunRepository } from "@intake/db";
import { startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";
import { startSmallClamd } from "../support/small-clamd.ts";
import { percentile } from "./pipeline-support.ts";

const argNum = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const SMALL = argNum("small", 2000);
const SMALL_BYTES = argNum("small-kib", 4) * 1024;
const LARGE = argNum("large", 20);
const LARGE_BYTES = argNum("large-mib", 4) * 1024 * 1024;
const RATE = argNum("rate", 8);
const SECONDS = argNum("seconds", 10);
const ROUNDS = argNum("rounds", 3);
const RESCAN_CONCURRENCY = argNum("rescan-concurrency", 2);
const SHARE = argNum("share", 0.25);
const OLD = "ClamAV 1.0.0/26000/bench-old/rules:none";
const MB = 1e6;

/** Printable text of exactly `size` bytes, different each time (no two objects alike). */
function textOf(size: number): Buffer {
  const b = Buffer.from(randomBytes(Math.ceil(size / 2)).toString("hex").slice(0, size));
  for (let i = 79; i < b.length; i += 80) b[i] = 0x0a;
  return b;
}

async function seed(s: PipelineStack, count: number, size: number, inFlight: number): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) {
        next++;
        const { id } = await s.upload(textOf(size), { contentType: "text/plain", filename: "seed.txt" });
        ids.push(id);
      }
    }),
  );
  for (const id of ids) if ((await s.waitFor(id, ["verified", "quarantined"], 600_000)).status !== "verified") throw new Error(`seed ${id} was not verified`);
  return ids;
}

/** Open loop: RATE uploads per second for SECONDS; returns each one's create -> verdict ms. */
async function stream(s: PipelineStack): Promise<number[]> {
  const started: Promise<string>[] = [];
  const t0 = Date.now();
  for (let i = 0; i < RATE * SECONDS; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    started.push(s.upload(textOf(SMALL_BYTES), { contentType: "text/plain", filename: "new.txt" }).then((u) => u.id));
  }
  const latencies: number[] = [];
  for (const id of await Promise.all(started)) {
    const u = await s.waitFor(id, ["verified", "quarantined"], 600_000);
    latencies.push(u.finishedAt!.getTime() - u.createdAt.getTime());
  }
  return latencies.sort((a, b) => a - b);
}

async function markOld(s: PipelineStack, ids: string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 500) await s.database.db("uploads").whereIn("id", ids.slice(i, i + 500)).update({ scanner_version: OLD });
}

async function main(): Promise<void> {
  const clamd = await startSmallClamd({ maxFileSize: 64 * 1024 * 1024 });
  const s = await startPipelineStack({
    storage: "fauxqs",
    database: "sqlite",
    workerRoles: "ingest,inspect,scan,finalize",
    env: { ...clamd.env, CLAMD_PORT: String(clamd.port), WORKER_METRICS_PORT: "0", LOG_LEVEL: "warn", RESCAN_ON_SIGNATURE_CHANGE: "false", RESCAN_TICK_SECONDS: "1", QUOTA_PENDING_UPLOADS: "100000", QUOTA_UPLOADS_PER_DAY: "1000000", QUOTA_PENDING_BYTES: String(100 * 1024 ** 3) },
  });
  const runs = new RescanRunRepository(s.database.db);
  try {
    const t = Date.now();
    const ids = [...(await seed(s, SMALL, SMALL_BYTES, 8)), ...(await seed(s, LARGE, LARGE_BYTES, 2))];
    const seedBytes = SMALL * SMALL_BYTES + LARGE * LARGE_BYTES;
    console.log(`seeded ${ids.length} verified objects (${(seedBytes / MB).toFixed(1)} MB) in ${((Date.now() - t) / 1000).toFixed(1)} s`);

    const rescan = async (share: number) => {
      await markOld(s, ids);
      const worker = await s.startWorker("rescan", {}, { RESCAN_CONCURRENCY: String(RESCAN_CONCURRENCY), RESCAN_MAX_SHARE: String(share), RESCAN_ON_SIGNATURE_CHANGE: "false" });
      const run = await worker.rescan!.startManual({ verifiedFrom: new Date(0), startedBy: "bench" });
      return { worker, run };
    };
    const doneOf = async (runId: string) => {
      const r = (await runs.get(runId))!;
      const p = await runs.progress(r);
      return { done: p.counts.clean + p.counts.quarantined + p.counts.skipped + p.counts.failed, bytes: p.bytesScanned, status: r.status };
    };

    // 1. Throughput alone.
    const alone = await rescan(1);
    const t1 = Date.now();
    // Until every item is done (the run itself ends after its catch-up, a while later).
    while ((await doneOf(alone.run.id)).done < ids.length) await new Promise((r) => setTimeout(r, 100));
    const elapsed = (Date.now() - t1) / 1000;
    const a = await doneOf(alone.run.id);
    await runs.cancel(alone.run.id, { actorId: "bench" });
    await alone.worker.close();
    console.log(`\nrescan alone: ${a.done} objects, ${(a.bytes / MB).toFixed(1)} MB in ${elapsed.toFixed(1)} s: ${(a.done / elapsed).toFixed(1)} objects/s, ${(a.bytes / MB / elapsed).toFixed(1)} MB/s (RESCAN_CONCURRENCY ${RESCAN_CONCURRENCY})`);

    // 2. New uploads: without a rescan, with one at SHARE, with one unlimited; the three
    // interleaved in each of ROUNDS rounds (ABC ABC ...), so a machine whose load changes
    // over the run (other processes) weighs on each alike; percentiles over all rounds.
    const modes = [{ label: "no rescan", share: null }, { label: `rescan, RESCAN_MAX_SHARE ${SHARE}`, share: SHARE }, { label: "rescan, share limiter off (1)", share: 1 }] as const;
    const pooled = modes.map(() => ({ latencies: [] as number[], done: 0, bytes: 0 }));
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, mode] of modes.entries()) {
        if (mode.share === null) {
          pooled[i]!.latencies.push(...(await stream(s)));
          continue;
        }
        const r = await rescan(mode.share);
        await new Promise((res) => setTimeout(res, 1500)); // the planner's first page is queued
        const before = await doneOf(r.run.id);
        pooled[i]!.latencies.push(...(await stream(s)));
        const after = await doneOf(r.run.id);
        pooled[i]!.done += after.done - before.done;
        pooled[i]!.bytes += after.bytes - before.bytes;
        await runs.cancel(r.run.id, { actorId: "bench" });
        await r.worker.close();
      }
    }
    const window = ROUNDS * SECONDS;
    console.log(`\nnew uploads at ${RATE}/s, ${ROUNDS} rounds of ${SECONDS} s per stream (${SMALL_BYTES / 1024} KiB each), create -> verdict in ms:\n`);
    console.log("| stream | uploads | p50 | p99 | max | rescan meanwhile |\n|---|---:|---:|---:|---:|---|");
    for (const [i, mode] of modes.entries()) {
      const l = pooled[i]!.latencies.sort((a, b) => a - b);
      const meanwhile = mode.share === null ? "—" : `${(pooled[i]!.done / window).toFixed(1)} obj/s, ${(pooled[i]!.bytes / MB / window).toFixed(1)} MB/s`;
      console.log(`| ${mode.label} | ${l.length} | ${percentile(l, 50)} | ${percentile(l, 99)} | ${l.at(-1)} | ${meanwhile} |`);
    }
    console.log(`\nload average at the end: ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  } finally {
    await s.close();
    clamd.close();
  }
}

await main();
process.exit(0);
