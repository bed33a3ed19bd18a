import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Transform, pipeline } from "node:stream";
import { fileURLToPath } from "node:url";
import type { S3Client } from "@aws-sdk/client-s3";
import { startRgwStorage } from "@intake/test";
import { createS3Client, createSqsClient, provisionStorage, S3ObjectStore, SqsEventQueue, type ObjectRead, type ObjectStore, type ReadOptions } from "@intake/storage";

/**
 * An ObjectStore that counts the bytes the workers actually consume through read(), per
 * key: the "bytes read per upload <= size + 64 KiB" figure is measured here, not assumed.
 */
export function countingStore(inner: ObjectStore): { store: ObjectStore; bytesRead: Map<string, number> } {
  const bytesRead = new Map<string, number>();
  const store: ObjectStore = Object.create(inner);
  store.read = async (key: string, opts?: ReadOptions): Promise<ObjectRead | null> => {
    const object = await inner.read(key, opts);
    if (!object) return null;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytesRead.set(key, (bytesRead.get(key) ?? 0) + chunk.length);
        done(null, chunk);
      },
    });
    return { ...object, body: pipeline(object.body, counter, () => undefined) };
  };
  return { store, bytesRead };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Peak VmRSS of a process, sampled from /proc every `everyMs` until stop() is called. */
export function sampleRss(pid: number, everyMs = 100): { stop(): { peakMiB: number; samples: number } } {
  let peak = 0;
  let samples = 0;
  const read = () => {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
      peak = Math.max(peak, kb);
      samples++;
    } catch {
      // the process has gone
    }
  };
  const timer = setInterval(read, everyMs);
  read();
  return {
    stop: () => {
      clearInterval(timer);
      return { peakMiB: peak / 1024, samples };
    },
  };
}

export interface StorageProcess {
  pid: number;
  /** Processes whose CPU is the storage's: here the one child. */
  pids: number[];
  pidsAre: string;
  bucket: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  s3: S3Client;
  store: S3ObjectStore;
  events: SqsEventQueue;
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** fauxqs with the S3 event emitter (infra/local/src/main.ts) as a child process, on disk. */
export async function startStorageProcess(): Promise<StorageProcess> {
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, "127.0.0.1", () => {
      const p = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  const dataDir = mkdtempSync(join(tmpdir(), "intake-bench-s3-"));
  const bucket = "intake-bench";
  const queueName = `bench-events-${randomBytes(3).toString("hex")}`;
  const main = fileURLToPath(new URL("../../infra/local/src/main.ts", import.meta.url));
  const child = spawn(process.execPath, [main], { env: { ...process.env, FAUXQS_PORT: String(port), DATA_DIR: dataDir, S3_BUCKET: bucket, SQS_QUEUE_NAME: queueName, LOCAL_S3_TEST_EVENT: "false" }, stdio: ["ignore", "pipe", "inherit"] });
  // Never outlive the benchmark, even when it crashes.
  process.on("exit", () => child.kill("SIGKILL"));
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  while (!out.includes("[local-s3] ready")) {
    if (child.exitCode !== null) throw new Error(`local storage exited: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const credentials = { accessKeyId: "bench", secretAccessKey: "bench" };
  const s3 = createS3Client({ region: "us-east-1", endpoint, forcePathStyle: true, credentials });
  const sqs = createSqsClient({ region: "us-east-1", endpoint, credentials });
  const { queueUrl } = await provisionStorage(s3, sqs, { bucket, queueName, region: "us-east-1", corsOrigins: [] });
  return {
    pid: child.pid!,
    pids: [child.pid!],
    pidsAre: "fauxqs + proxy",
    bucket,
    credentials,
    s3,
    store: new S3ObjectStore(s3, bucket),
    events: new SqsEventQueue(sqs, queueUrl),
    env: { S3_ENDPOINT: endpoint, S3_FORCE_PATH_STYLE: "true", S3_BUCKET: bucket, SQS_ENDPOINT: endpoint, SQS_QUEUE_URL: queueUrl, SQS_QUEUE_NAME: queueName, AWS_REGION: "us-east-1", AWS_ACCESS_KEY_ID: "bench", AWS_SECRET_ACCESS_KEY: "bench" },
    stop: async () => {
      s3.destroy();
      sqs.destroy();
      child.kill("SIGTERM");
      await once(child, "exit");
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number | "self"): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces), counted from field 3.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** The RGW that infra/rgw/up.sh started (RGW_ENDPOINT etc. set): its three daemons' CPU counts as storage. */
export async function startRgwProcesses() {
  const rgw = await startRgwStorage();
  const daemons = ["radosgw", "ceph-osd", "ceph-mon"];
  const pids = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => {
      try {
        return daemons.includes(readFileSync(`/proc/${pid}/comm`, "utf8").trim());
      } catch {
        return false;
      }
    });
  if (pids.length !== daemons.length) throw new Error(`expected the ${daemons.join(", ")} daemons, found ${pids.length} processes`);
  return { ...rgw, events: null, pids, pidsAre: daemons.join(" + ") };
}

/** The pid clamd wrote (infra/clamd/up.sh). */
export function clamdPid(): number {
  return Number(readFileSync(new URL("../../.data/clamd/clamd.pid", import.meta.url), "utf8").trim());
}
