import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "@intake/runtime";
import { createClamdScanner, probeClamdLimits } from "@intake/scanner";
import { freePort } from "@intake/testkit";
import { PROJECT_CLAMD } from "../support/clamd.ts";
import { readRepoFile, ROOT } from "./support/repo.ts";

/**
 * What the intake-clamd image (infra/clamd/Dockerfile) does, without a Docker engine: its
 * scripts run here under /bin/sh (dash: POSIX, like the image's busybox sh; the image has no
 * bash), its clamd.conf is rendered as the build renders it, and that config runs on this
 * machine's clamd (ClamAV 1.4.6), with only the container's paths and port moved, against
 * the workers' limits probe.
 */
const MiB = 1024 * 1024;
const RENDER = join(ROOT, "infra/clamd/render-conf.sh");
const SIGNATURES = join(ROOT, "infra/clamd/container-signatures.sh");
const RULES = join(ROOT, "infra/clamd/rules-sync.sh");

/** The environment of a build: nothing of this process's CLAMD_* or MAX_UPLOAD_BYTES leaks in. */
const buildEnv = (args: Record<string, string>) => ({ PATH: process.env.PATH ?? "/usr/bin:/bin", ...args });
const render = (target: "local" | "container", env: Record<string, string>) => spawnSync("sh", [RENDER, target], { env: buildEnv(env), encoding: "utf8" });

/** clamd.conf as option -> value (the last line of an option wins, as clamd reads it). */
const options = (conf: string): Map<string, string> =>
  new Map(
    conf
      .split("\n")
      .filter((l) => l.trim() && !l.startsWith("#"))
      .map((l) => {
        const [k, ...v] = l.trim().split(/\s+/);
        return [k, v.join(" ")] as [string, string];
      }),
  );

/** The ARG defaults of infra/clamd/Dockerfile: what a plain `docker build` renders with. */
function buildArgs(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of readRepoFile("infra/clamd/Dockerfile").matchAll(/^ARG ([A-Z_]+)=(\S+)$/gm)) out[m[1]] = m[2];
  return out;
}

describe("the intake-clamd image's clamd.conf (render-conf.sh container)", () => {
  it("with the Dockerfile's build arguments holds the limits the workers assume by default (their limits probe compares MaxFileSize)", () => {
    const r = render("container", buildArgs());
    expect(r.status, r.stderr).toBe(0);
    const o = options(r.stdout);
    // The workers' configuration with nothing set about clamd, as compose, Kubernetes and ECS run them.
    const worker = loadConfig({ S3_BUCKET: "intake-uploads", DATA_DIR: "/data" });
    expect(Number(o.get("MaxFileSize"))).toBe(worker.clamd.maxFileSize);
    expect(Number(o.get("StreamMaxLength"))).toBe(worker.clamd.maxStreamBytes);
    expect(Number(o.get("StreamMaxLength"))).toBe(worker.policy.maxSize);
    expect(Number(o.get("MaxScanSize"))).toBe(worker.clamd.maxScanSize);
    expect(Number(o.get("MaxRecursion"))).toBe(worker.clamd.maxRecursion);
    expect(Number(o.get("MaxScanTime"))).toBeLessThan(worker.clamd.timeoutMs);
  });

  it("is the local render with the container's listening, process and paths: every limit, alert and scan option the same", () => {
    const args = buildArgs();
    const container = render("container", args);
    const local = render("local", { ...args, CLAMD_DIR: "/srv/clamd", DATABASE_DIR: "/srv/clamd/db" });
    expect(container.status, container.stderr).toBe(0);
    expect(local.status, local.stderr).toBe(0);
    const c = options(container.stdout);
    const l = options(local.stdout);
    const TARGET_SPECIFIC = ["TCPAddr", "LocalSocket", "Foreground", "PidFile", "LogFile", "LogFileMaxSize", "LogRotate", "LogClean", "TemporaryDirectory", "DatabaseDirectory"];
    const shared = (m: Map<string, string>) => [...m].filter(([k]) => !TARGET_SPECIFIC.includes(k));
    expect(shared(c)).toEqual(shared(l));
    for (const alert of ["AlertExceedsMax", "AlertEncrypted", "AlertEncryptedArchive", "AlertEncryptedDoc", "ScanArchive", "ScanPDF", "ScanMail", "ScanSWF"]) expect([alert, c.get(alert)]).toEqual([alert, "yes"]);
    // The image's paths: clamav/clamav's database directory, the socket its entrypoint waits
    // for, in the foreground with no pid or log file (the container's output is the log).
    expect(Object.fromEntries(TARGET_SPECIFIC.map((k) => [k, c.get(k)]))).toEqual({
      TCPAddr: "0.0.0.0",
      LocalSocket: "/tmp/clamd.sock",
      Foreground: "yes",
      PidFile: undefined,
      LogFile: undefined,
      LogFileMaxSize: undefined,
      LogRotate: undefined,
      LogClean: undefined,
      TemporaryDirectory: "/tmp",
      DatabaseDirectory: "/var/lib/clamav",
    });
    expect(c.get("TCPSocket")).toBe("3310");
    expect(c.has("User")).toBe(false);
  });

  it.each([
    ["MAX_UPLOAD_BYTES above 1 GiB", { MAX_UPLOAD_BYTES: String(1024 * MiB + 1) }, /MAX_UPLOAD_BYTES=1073741825 is above 1073741824/],
    ["a MAX_UPLOAD_BYTES that is no number", { MAX_UPLOAD_BYTES: "1000M" }, /MAX_UPLOAD_BYTES must be a non-negative integer/],
    ["a MaxScanSize below MaxFileSize", { MAX_UPLOAD_BYTES: String(MiB), CLAMD_MAX_SCAN_SIZE: String(MiB - 1) }, /CLAMD_MAX_SCAN_SIZE=1048575 must lie between/],
  ])("refuses %s: the build fails, nothing is printed for the config", (_, args, problem) => {
    const r = render("container", args);
    expect(r.status).not.toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(problem);
  });

  it("catches a template line that names the local data directory in a line both targets keep", () => {
    const dir = mkdtempSync(join(tmpdir(), "intake-render-"));
    try {
      for (const f of ["render-conf.sh", "limits.sh"]) copyFileSync(join(ROOT, "infra/clamd", f), join(dir, f));
      writeFileSync(join(dir, "clamd.conf.template"), `${readRepoFile("infra/clamd/clamd.conf.template")}PidFile @CLAMD_DIR@/clamd.pid\n`);
      const r = spawnSync("sh", [join(dir, "render-conf.sh"), "container"], { env: buildEnv({}), encoding: "utf8" });
      expect(r.status).not.toBe(0);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(/unrendered placeholder @CLAMD_DIR@/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the intake-clamd entrypoint (infra/clamd/entrypoint.sh)", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "intake-entrypoint-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The entrypoint with the image's absolute paths moved under `dir` (each replaced exactly once). */
  function entrypointHere(databaseDir: string): string {
    let script = readRepoFile("infra/clamd/entrypoint.sh");
    const moves: [string, string][] = [
      ["DATABASE_DIR=/var/lib/clamav", `DATABASE_DIR=${databaseDir}`],
      ["NEXT=/init-unprivileged", `NEXT=${join(dir, "next.sh")}`],
      ["/usr/local/share/intake-clamd/container-signatures.sh", `sh ${SIGNATURES}`],
      ["/usr/local/bin/intake-rules", `sh ${RULES}`],
    ];
    for (const [from, to] of moves) {
      expect(script.split(from).length - 1, from).toBe(1);
      script = script.replace(from, to);
    }
    const path = join(dir, "entrypoint.sh");
    writeFileSync(path, script);
    // The image's next entrypoint, standing in: what it was handed and what it found.
    writeFileSync(join(dir, "next.sh"), `#!/bin/sh\necho "args:$*"\nls "${databaseDir}"\n`);
    chmodSync(join(dir, "next.sh"), 0o755);
    return path;
  }

  it("writes the container signatures into the database directory, then hands over with the same arguments", () => {
    const db = join(dir, "db");
    mkdirSync(db);
    writeFileSync(join(db, "intake-unscannable.ndb"), "stale\n");
    const rules = join(dir, "rules");
    mkdirSync(rules);
    writeFileSync(join(rules, "start.yar"), 'rule IntakeAtStart { strings: $a = "INTAKE-RULE-AT-START-5512" condition: $a }\n');
    const r = spawnSync("sh", [entrypointHere(db), "freshclam", "--daemon"], { encoding: "utf8", env: { ...process.env, CLAMD_CUSTOM_RULES_DIR: rules } });
    expect(r.status, r.stderr).toBe(0);
    // The mounted rules too, validated and copied, with the signature set the workers read.
    expect(r.stdout).toMatch(/args:freshclam --daemon\ncustom-start\.yar\nintake-unscannable\.ldb\nintake-unscannable\.ndb\nsignature-set\.ndb\n$/);
    expect(readFileSync(join(db, "signature-set.ndb"), "utf8")).toMatch(/^Intake\.SignatureSet\.[0-9a-f]{16}:0:0:[0-9a-f]+\n$/);
    // The same files up.sh writes next to clamd's database (one script for both).
    const reference = join(dir, "reference");
    mkdirSync(reference);
    expect(spawnSync("sh", [SIGNATURES, reference]).status).toBe(0);
    for (const f of ["intake-unscannable.ndb", "intake-unscannable.ldb"]) expect(readFileSync(join(db, f), "utf8"), f).toBe(readFileSync(join(reference, f), "utf8"));
    expect(readFileSync(join(db, "intake-unscannable.ndb"), "utf8")).toMatch(/^Intake\.Unscannable\.CAB:0:\*:4d53434600000000$/m);
    expect(readdirSync(db).filter((f) => f.endsWith(".new"))).toEqual([]);
  });

  it("stops, without starting clamd, when a mounted rule file is refused (a bad rules change never starts a clamd without them)", () => {
    const db = join(dir, "db-refused");
    const rules = join(dir, "rules-refused");
    mkdirSync(db);
    mkdirSync(rules);
    writeFileSync(join(rules, "bad.ndb"), "Broken:0:*:zz\n");
    const r = spawnSync("sh", [entrypointHere(db)], { encoding: "utf8", env: { ...process.env, CLAMD_CUSTOM_RULES_DIR: rules } });
    expect(r.status).not.toBe(0);
    expect(r.stdout).not.toMatch(/args:/);
    expect(r.stderr).toMatch(/REFUSED bad\.ndb/);
    expect(readdirSync(db).filter((f) => f.startsWith("custom-") || f === "signature-set.ndb")).toEqual([]);
  });

  it("stops, without starting clamd, when it cannot write the database directory (clamd never runs without the signatures)", () => {
    const r = spawnSync("sh", [entrypointHere(join(dir, "missing"))], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stdout).not.toMatch(/args:/);
    expect(r.stderr).toMatch(/cannot write the database directory/);
  });
});

describe("the intake-clamd clamd.conf on a real clamd", () => {
  let dir: string;
  let clamd: ChildProcess | undefined;
  let port: number;
  let output = "";
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "intake-clamd-image-"));
    const db = join(dir, "db");
    mkdirSync(db);
    // The image's database directory at start: what the entrypoint writes, and EICAR's test
    // signature from the project's test database in place of the official one (the probe's
    // PDF, mail and Flash files carry EICAR).
    expect(spawnSync("sh", [SIGNATURES, db]).status).toBe(0);
    const testDb = join(PROJECT_CLAMD.dataDir, "clamd", "db", "intake-test.ndb");
    expect(existsSync(testDb), `${testDb} (infra/clamd/up.sh's test database)`).toBe(true);
    copyFileSync(testDb, join(db, "intake-test.ndb"));
    // Rendered as a build with MAX_UPLOAD_BYTES=1 MiB renders it (small, so the probe's files stay small).
    const r = render("container", { MAX_UPLOAD_BYTES: String(MiB) });
    expect(r.status, r.stderr).toBe(0);
    port = await freePort();
    // Only what places the container on this host: port, loopback, paths.
    const moved: Record<string, string> = { TCPSocket: String(port), TCPAddr: "127.0.0.1", LocalSocket: join(dir, "clamd.sock"), DatabaseDirectory: db, TemporaryDirectory: dir };
    let conf = r.stdout;
    for (const [k, v] of Object.entries(moved)) {
      const line = new RegExp(`^${k} .*$`, "m");
      expect(line.test(conf), k).toBe(true);
      conf = conf.replace(line, `${k} ${v}`);
    }
    writeFileSync(join(dir, "clamd.conf"), conf);
    // Foreground yes, as in the image: clamd stays this child process.
    clamd = spawn("clamd", [`--config-file=${join(dir, "clamd.conf")}`], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` } });
    clamd.stdout?.on("data", (d) => (output += String(d)));
    clamd.stderr?.on("data", (d) => (output += String(d)));
    const scanner = createClamdScanner({ port, connectTimeoutMs: 1000 });
    const until = Date.now() + 60_000;
    while (!(await scanner.ping())) {
      if (clamd.exitCode !== null || Date.now() > until) throw new Error(`clamd with the image's config did not answer PING: ${output}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  }, 120_000);
  afterAll(() => {
    clamd?.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  });

  it("passes the workers' limits probe (MaxFileSize both ways, alerts, PDF/mail/Flash scanning, the Intake.Unscannable signatures)", async () => {
    const r = await probeClamdLimits(createClamdScanner({ port }), { maxFileSize: MiB });
    expect(r).toMatchObject({ ok: true, problems: [] });
  }, 120_000);

  it("opens the unix socket the image's entrypoint waits for before it reports clamd started", () => {
    expect(existsSync(join(dir, "clamd.sock"))).toBe(true);
  });
});
