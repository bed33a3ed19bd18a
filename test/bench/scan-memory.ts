/**
 * Peak worker RSS while scanning a big object (target < 256 MiB; by default the largest upload the configuration accepts):
 *
 *   node test/bench/scan-memory.ts [--mib N] (default: MAX_UPLOAD_BYTES)      (run under infra/bin/test's env, or
 *   with RGW_ENDPOINT/RGW_ACCESS_KEY/RGW_SECRET_KEY pointing at infra/rgw/up.sh's RGW)
 *
 * The object goes in through the API's own multipart flow (create, signed part URLs, PUTs
 * of 64 MiB parts, complete) on Ceph RGW, which stores multipart uploads without the
 * in-memory concatenation fauxqs does at completion. The API's complete call enqueues the
 * inspect job; a worker child process (services/worker/src/main.ts, roles
 * inspect,scan,finalize, as one process with every role runs) then reads the object from
 * RGW into clamd while writing its own staging copy of it (staged-copy.ts), and promotes
 * that copy. Its RSS is sampled from /proc every 50 ms until the upload is finished.
 * RGW's memstore holds the pending object, the staging copy and the verified copy at once
 * (3 GiB at 1000 MiB): restart it first (infra/rgw/down.sh, up.sh) after other runs.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startApi } from "@intake/api";
import { ApiKeyRepository, UploadRepository } from "@intake/db";
import { isTerminal } from "@intake/domain";
import { createLogger, loadConfig } from "@intake/runtime";
import { freshDatabase, startRgwStorage } from "@intake/test";
import { sampleRss } from "./pipeline-support.ts";

const MiB = 1024 * 1024;
const i = process.argv.indexOf("--mib");
// Default: the largest upload the configuration accepts (MAX_UPLOAD_BYTES, bound by what clamd can really scan).
const SIZE = i > 0 ? Number(process.argv[i + 1]) * MiB : loadConfig({ ...process.env, S3_BUCKET: "bench" }).policy.maxSize;
const PART = 64 * MiB;

const storage = await startRgwStorage();
const database = await freshDatabase("sqlite");
const dataDir = mkdtempSync(join(tmpdir(), "intake-scan-memory-"));
process.env.AWS_ACCESS_KEY_ID = storage.credentials.accessKeyId;
process.env.AWS_SECRET_ACCESS_KEY = storage.credentials.secretAccessKey;
const env = {
  ...storage.env,
  DATA_DIR: dataDir,
  SQLITE_PATH: (database.settings as { filename: string }).filename,
  PORT: "0",
  QUEUE_PREFIX: `scanmem${randomBytes(4).toString("hex")}`,
  LOG_LEVEL: "warn",
  PART_SIZE_BYTES: String(PART),
};
const config = loadConfig(env);
const api = await startApi(config, { logger: createLogger({ level: "warn", name: "api", destination: { write: () => undefined } }) });
const key = (await new ApiKeyRepository(database.db).create("bench", "bench")).key;
const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" };
const call = async (method: string, path: string, body?: unknown) => {
  const res = await fetch(api.url + path, { method, headers: auth, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = (await res.json()) as Record<string, any>;
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
};

// Text (base64 of random bytes: incompressible, valid UTF-8), so every check runs over every
// byte and the scan can end clean: a PNG head over random bytes ends invalid at the image check.
const created = await call("POST", "/v1/uploads", { filename: "big.txt", contentType: "text/plain", size: SIZE });
const id = created.upload.id as string;
const partCount = created.partCount as number;
const block = Buffer.from(randomBytes(PART).toString("base64").slice(0, PART), "latin1");
const t0 = Date.now();
const etags: { partNumber: number; etag: string }[] = [];
for (let n = 1; n <= partCount; n++) {
  const { parts } = await call("POST", `/v1/uploads/${id}/parts`, { partNumbers: [n] });
  const size = Math.min(PART, SIZE - (n - 1) * PART);
  block[n] = 0x41 + (n % 26); // parts differ, still base64 text
  const body = block.subarray(0, size);
  const put = await fetch(parts[0].url, { method: "PUT", headers: parts[0].headers, body });
  if (put.status !== 200) throw new Error(`part ${n}: ${put.status} ${await put.text()}`);
  etags.push({ partNumber: n, etag: put.headers.get("etag")! });
}
await call("POST", `/v1/uploads/${id}/complete`, { parts: etags });
console.log(`# ${SIZE / MiB} MiB uploaded in ${partCount} parts through the API's multipart flow in ${((Date.now() - t0) / 1000).toFixed(1)} s; starting a worker child`);

const uploads = new UploadRepository(database.db);
// Started as infra/bin/dev and the README start it (a small young generation: see there).
const child = spawn(process.execPath, ["--max-semi-space-size=2", fileURLToPath(new URL("../../services/worker/src/main.ts", import.meta.url))], {
  env: { ...process.env, ...env, WORKER_ROLES: "inspect,scan,finalize" },
  stdio: ["ignore", "inherit", "inherit"],
});
const rss = sampleRss(child.pid!, 50);
const scanStart = Date.now();
let row = await uploads.getById(id);
// Finished: verified or quarantined (the verdict, and the promotion from the staging copy).
while (row && !isTerminal(row.status)) {
  if (Date.now() - scanStart > 900_000) throw new Error("the scan did not finish in 15 minutes");
  await new Promise((r) => setTimeout(r, 200));
  row = await uploads.getById(id);
}
const { peakMiB, samples } = rss.stop();
const seconds = (Date.now() - scanStart) / 1000;
console.log(
  `scan of ${SIZE / MiB} MiB: verdict ${row?.verdict}${row?.reason ? ` (${row.reason}: ${row.reasonDetail})` : ""} in ${seconds.toFixed(1)} s ` +
    `(${(SIZE / 1e6 / seconds).toFixed(0)} MB/s, worker start included); worker peak RSS ${peakMiB.toFixed(1)} MiB over ${samples} samples (target < 256 MiB)`,
);
child.kill("SIGTERM");
await once(child, "exit");
await api.close();
await database.drop();
await storage.stop();
rmSync(dataDir, { recursive: true, force: true });
process.exit(0);
