import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClamdScanner } from "@intake/scanner";
import { freePort } from "@intake/testkit";

/**
 * A clamd of the test's own with small limits, started through infra/clamd/up.sh (the
 * project's real config template and databases), so a test can push content past
 * MaxFileSize/MaxScanSize/MaxFiles/MaxRecursion with a few kilobytes of compressed fixture.
 * The shared clamd on 3310 keeps the production limits and is never touched.
 *
 * `env` is what up.sh wrote to limits.env (plus MAX_UPLOAD_BYTES): handing it to the stack
 * makes the API, the worker and this clamd agree exactly, as infra/bin/dev does.
 *
 * With `plain`, a second daemon runs beside it with the same config but only the test
 * signatures (no Intake.Unscannable.* container signatures): clamd as it answers without
 * the project's help, so a test can show the hole it closes.
 */
export interface SmallClamdLimits {
  maxFileSize: number;
  maxScanSize?: number;
  maxFiles?: number;
  maxRecursion?: number;
}

export interface SmallClamd {
  port: number;
  /** Same config, test signatures only (present when started with plain: true). */
  plainPort?: number;
  env: Record<string, string>;
  close(): void;
}

const UP = fileURLToPath(new URL("../../infra/clamd/up.sh", import.meta.url));
const DOWN = fileURLToPath(new URL("../../infra/clamd/down.sh", import.meta.url));

function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return env;
}

async function waitForPong(port: number, deadlineMs: number, what: string): Promise<void> {
  const scanner = createClamdScanner({ port, connectTimeoutMs: 1000 });
  const until = Date.now() + deadlineMs;
  while (!(await scanner.ping())) {
    if (Date.now() > until) throw new Error(`${what} did not answer PING on port ${port} within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Starts the daemon(s); call close() in afterAll. */
export async function startSmallClamd(limits: SmallClamdLimits, opts: { plain?: boolean } = {}): Promise<SmallClamd> {
  const dataDir = mkdtempSync(join(tmpdir(), "intake-clamd-small-"));
  const port = await freePort();
  const upEnv: Record<string, string> = {
    ...(process.env as Record<string, string>),
    DATA_DIR: dataDir,
    CLAMD_PORT: String(port),
    CLAMD_DATABASE: "test",
    MAX_UPLOAD_BYTES: String(limits.maxFileSize),
    CLAMD_MAX_FILE_SIZE: String(limits.maxFileSize),
    ...(limits.maxScanSize ? { CLAMD_MAX_SCAN_SIZE: String(limits.maxScanSize) } : {}),
    ...(limits.maxFiles ? { CLAMD_MAX_FILES: String(limits.maxFiles) } : {}),
    ...(limits.maxRecursion ? { CLAMD_MAX_RECURSION: String(limits.maxRecursion) } : {}),
  };
  execFileSync("bash", [UP], { env: upEnv, stdio: ["ignore", "pipe", "pipe"] });
  const clamdDir = join(dataDir, "clamd");
  const env = parseEnvFile(readFileSync(join(clamdDir, "limits.env"), "utf8"));
  env.MAX_UPLOAD_BYTES ??= String(limits.maxFileSize);

  let plainPort: number | undefined;
  let plainPidFile: string | undefined;
  if (opts.plain) {
    plainPort = await freePort();
    const plainDb = join(clamdDir, "db-plain");
    mkdirSync(plainDb, { recursive: true });
    for (const f of readdirSync(join(clamdDir, "db"))) if (f.startsWith("intake-test.")) copyFileSync(join(clamdDir, "db", f), join(plainDb, f));
    plainPidFile = join(clamdDir, "clamd-plain.pid");
    const conf = readFileSync(join(clamdDir, "clamd.conf"), "utf8")
      .replace(/^TCPSocket .*$/m, `TCPSocket ${plainPort}`)
      .replace(/^DatabaseDirectory .*$/m, `DatabaseDirectory ${plainDb}`)
      .replace(/^PidFile .*$/m, `PidFile ${plainPidFile}`)
      .replace(/^LogFile .*$/m, `LogFile ${join(clamdDir, "clamd-plain.log")}`);
    const confFile = join(clamdDir, "clamd-plain.conf");
    writeFileSync(confFile, conf);
    // clamd loads its databases before it daemonizes: a failure shows in the exit status.
    const r = spawnSync("clamd", [`--config-file=${confFile}`], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` } });
    if (r.status !== 0) throw new Error(`plain clamd failed to start: ${r.stderr?.toString()}`);
    await waitForPong(plainPort, 60_000, "plain clamd");
  }

  return {
    port,
    plainPort,
    env,
    close() {
      if (plainPidFile) {
        try {
          const pid = Number(readFileSync(plainPidFile, "utf8").trim());
          if (pid > 0) process.kill(pid, "SIGTERM");
        } catch {
          // already gone
        }
      }
      execFileSync("bash", [DOWN], { env: { ...process.env, DATA_DIR: dataDir }, stdio: "ignore" });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
