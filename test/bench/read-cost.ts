/**
 * What one byte costs on the scan path, piece by piece (CPU per MiB), to show where the
 * pipeline benchmark's ratio comes from on a machine where storage, workers and clamd share
 * two cores:
 *
 *   node test/bench/read-cost.ts [--storage fauxqs|rgw] [--mib 10] [--reads 20]
 *
 * 1. GET the object through the ObjectStore and only consume the body (this process, and
 *    the storage's processes serving it);
 * 2. the same plus sha256 (what the scanner adds besides sending);
 * 3. INSTREAM of the same bytes from memory to clamd: what "raw clamd" costs the sender
 *    and clamd;
 * 4. the scan path itself: ObjectStore.read -> the scanner (sha256 + INSTREAM).
 */
import { createHash, randomBytes } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { Readable } from "node:stream";
import { createClamdScanner } from "@intake/scanner";
import { clamdPid, cpuSeconds, startRgwProcesses, startStorageProcess } from "./pipeline-support.ts";

const argText = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
};
const STORAGE = argText("storage", "fauxqs");
const MIB = Number(argText("mib", "10"));
const READS = Number(argText("reads", "20"));
const storage = STORAGE === "rgw" ? await startRgwProcesses() : STORAGE === "fauxqs" ? await startStorageProcess() : null;
if (!storage) throw new Error(`--storage must be fauxqs or rgw, not ${STORAGE}`);
const data = randomBytes(MIB * 1024 * 1024);
await storage.s3.send(new PutObjectCommand({ Bucket: storage.bucket, Key: "pending/bench/read-cost", Body: data }));
const scanner = createClamdScanner({ host: process.env.CLAMD_HOST ?? "127.0.0.1", port: Number(process.env.CLAMD_PORT ?? 3310) });
const clamd = clamdPid();
const storageCpu = () => storage.pids.reduce((n, pid) => n + cpuSeconds(pid), 0);

async function measure(name: string, once: () => Promise<void>): Promise<void> {
  await once(); // warm
  const before = { self: cpuSeconds("self"), storage: storageCpu(), clamd: cpuSeconds(clamd) };
  const t0 = performance.now();
  for (let i = 0; i < READS; i++) await once();
  const seconds = (performance.now() - t0) / 1000;
  const mib = READS * MIB;
  const per = (s: number) => ((s * 1000) / mib).toFixed(2).padStart(6);
  console.log(
    `${name.padEnd(44)} this process ${per(cpuSeconds("self") - before.self)}  storage ${per(storageCpu() - before.storage)}  clamd ${per(cpuSeconds(clamd) - before.clamd)}  ms CPU/MiB;  ${(mib / seconds).toFixed(0)} MiB/s one at a time`,
  );
}

const read = async () => (await storage.store.read("pending/bench/read-cost"))!.body;
console.log(`# ${MIB} MiB object on ${STORAGE}, ${READS} passes each (CPU from /proc, user + system)`);
await measure("1. GET, body consumed", async () => {
  for await (const _ of await read());
});
await measure("2. GET + sha256", async () => {
  const h = createHash("sha256");
  for await (const c of await read()) h.update(c as Buffer);
  h.digest();
});
await measure("3. raw clamd: INSTREAM from memory", async () => {
  const r = await scanner.scan(Readable.from([data]));
  if (r.outcome !== "clean") throw new Error(r.outcome);
});
await measure("4. scan path: GET -> sha256 + INSTREAM", async () => {
  const r = await scanner.scan(await read());
  if (r.outcome !== "clean") throw new Error(r.outcome);
});
await storage.stop();
process.exit(0);
