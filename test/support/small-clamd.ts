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
 * the project's help, so a test can show the hole it closes. With `conf`, another runs with
 * the same databases and those clamd.conf options replaced (a clamd misconfigured on purpose).
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
  /** Same config and databases with the `conf` options replaced (present when started with conf). */
  variantPort?: number;
  env: Record<string, string>;
  /** Its DATA_DIR (clamd.conf, the database directory, the TEST_SIGNATURES_ONLY marker). */
  dataDir: string;
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
export async function startSmallClamd(limits: SmallClamdLimits, opts: { plain?: boolean; conf?: Record<string, string> } = {}): Promise<SmallClamd> {
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

  const pidFiles: string[] = [];
  /** A second daemon beside up.sh's: its config with `options` replaced (or added). */
  const startBeside = async (name: string, options: Record<string, string>): Promise<number> => {
    const p = await freePort();
    const pidFile = join(clamdDir, `clamd-${name}.pid`);
    pidFiles.push(pidFile);
    let conf = readFileSync(join(clamdDir, "clamd.conf"), "utf8");
    const all = { ...options, TCPSocket: String(p), PidFile: pidFile, LogFile: join(clamdDir, `clamd-${name}.log`) };
    for (const [k, v] of Object.entries(all)) {
      const line = new RegExp(`^${k} .*$`, "m");
      conf = line.test(conf) ? conf.replace(line, `${k} ${v}`) : `${conf}\n${k} ${v}\n`;
    }
    const confFile = join(clamdDir, `clamd-${name}.conf`);
    writeFileSync(confFile, conf);
    // clamd loads its databases before it daemonizes: a failure shows in the exit status.
    const r = spawnSync("clamd", [`--config-file=${confFile}`], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` } });
    if (r.status !== 0) throw new Error(`${name} clamd failed to start: ${r.stderr?.toString()}`);
    await waitForPong(p, 60_000, `${name} clamd`);
    return p;
  };

  let plainPort: number | undefined;
  if (opts.plain) {
    const plainDb = join(clamdDir, "db-plain");
    mkdirSync(plainDb, { recursive: true });
    for (const f of readdirSync(join(clamdDir, "db"))) if (f.startsWith("intake-test.")) copyFileSync(join(clamdDir, "db", f), join(plainDb, f));
    plainPort = await startBeside("plain", { DatabaseDirectory: plainDb });
  }
  const variantPort = opts.conf ? await startBeside("variant", opts.conf) : undefined;

  return {
    port,
    plainPort,
    variantPort,
    env,
    dataDir,
    close() {
      for (const pidFile of pidFiles) {
        try {
          const pid = Number(readFileSync(pidFile, "utf8").trim());
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
