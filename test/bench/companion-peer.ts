/**
 * Uppy Companion as the API bench's peer: the signing server people deploy next to S3
 * instead of writing one (GET /s3/params answers a presigned POST for one file). The bench
 * fetches it on first use into .data/bench-companion (git-ignored, outside the npm
 * workspaces) with npm's ordinary client: a yardstick, never a dependency of the product.
 *
 *   node test/bench/companion-peer.ts --serve-companion   (child mode; the bench starts it)
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { randomBytes } from "node:crypto";

/** Pinned so every run measures the same peer. */
export const COMPANION_VERSION = "6.2.2";
const CACHE_DIR = join(import.meta.dirname, "..", "..", ".data", "bench-companion");
const ENTRY = join(CACHE_DIR, "node_modules", "@uppy", "companion", "lib", "companion.js");

/** Where the peer signs for: the same storage, bucket and credentials as the API under test. */
export interface PeerStorage {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

/** Installs @uppy/companion into the cache on first use; later runs reuse it. */
export function ensureCompanion(): string {
  if (existsSync(ENTRY)) return ENTRY;
  mkdirSync(CACHE_DIR, { recursive: true });
  // A package.json of its own, so npm installs here and never walks up to the workspace root.
  writeFileSync(join(CACHE_DIR, "package.json"), JSON.stringify({ name: "intake-bench-companion", private: true }, null, 2));
  console.log(`fetching @uppy/companion@${COMPANION_VERSION} into ${CACHE_DIR} (first run only)`);
  const npm = spawnSync("npm", ["install", "--prefix", CACHE_DIR, "--no-audit", "--no-fund", "--omit=dev", `@uppy/companion@${COMPANION_VERSION}`], { cwd: CACHE_DIR, stdio: "inherit" });
  if (npm.status !== 0 || !existsSync(ENTRY)) throw new Error(`npm install of @uppy/companion@${COMPANION_VERSION} failed (exit ${npm.status})`);
  return ENTRY;
}

/** Child mode: Companion's own express app on 127.0.0.1, S3 settings from COMPANION_S3. */
async function serve(): Promise<void> {
  const s = JSON.parse(process.env.COMPANION_S3!) as PeerStorage;
  const companion = (await import(pathToFileURL(ensureCompanion()).href)) as { app(o: object): { app: http.RequestListener } };
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  const { app } = companion.app({
    secret: randomBytes(16).toString("hex"),
    filePath: mkdtempSync(join(tmpdir(), "intake-bench-companion-")),
    server: { host: `127.0.0.1:${port}`, protocol: "http" },
    corsOrigins: true,
    uploadUrls: [s.endpoint],
    // Its defaults otherwise: getKey `${uuid}-${filename}`, expires 800 s.
    s3: { key: s.accessKeyId, secret: s.secretAccessKey, bucket: s.bucket, region: s.region, endpoint: s.endpoint, forcePathStyle: true, expires: 600 },
  });
  server.on("request", app);
  // The parent asks for this process's CPU time around the measured window (IPC channel).
  process.on("message", (m: unknown) => {
    if (m === "cpu") process.send!({ cpu: process.cpuUsage() });
  });
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
}

if (process.argv.includes("--serve-companion")) await serve();
