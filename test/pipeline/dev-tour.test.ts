import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IntakeAdminClient } from "@intake/client/node";
import { freePort, waitFor } from "@intake/testkit";

/**
 * Issue 12's "done when": the dev stack shows a held verdict, a custom-rule catch, a
 * stripped photo and a rescan catch end to end. The stack is started as a newcomer starts it
 * (`bash infra/bin/dev`, with nothing of the test runner's environment but PATH and HOME),
 * and the tour as they would run it in another shell (`npm run tour`), its exit code and
 * output read.
 *
 * The tour reloads clamd and re-dates its database, which the shared clamd on 3310 must never
 * see: this stack gets a DATA_DIR of its own (so infra/clamd/up.sh starts a clamd of its own
 * there, on its own port), and its own API, local S3 and worker metrics ports and queue prefix.
 */
const ROOT = resolve(import.meta.dirname, "../..");

/**
 * infra/bin/dev runs `npm ci` when node_modules was not installed from this package-lock.json
 * (provision.sh's stamp): under a running test suite that would delete the node_modules it
 * runs from. Refused here with what to do instead.
 */
function checkInstalled(): void {
  const want = `${createHash("sha256").update(readFileSync(join(ROOT, "package-lock.json"))).digest("hex")}-${process.version}`;
  const stamp = join(ROOT, "node_modules", ".intake-lock-stamp");
  const have = existsSync(stamp) ? readFileSync(stamp, "utf8").trim() : "none";
  if (have !== want) throw new Error(`node_modules was not installed from this package-lock.json with Node ${process.version} (stamp ${have}): run bash infra/bin/test (or bash infra/bin/dev) once, so that infra/bin/dev does not run npm ci under this test`);
}

interface Run {
  code: number | null;
  out: string;
}

describe("the dev stack's guided tour (npm run tour against bash infra/bin/dev)", () => {
  let dataDir: string;
  let dev: ChildProcess | undefined;
  let devOut = "";
  let tourEnv: Record<string, string>;
  let apiUrl: string;
  const databaseDates = () =>
    Object.fromEntries(
      readdirSync(join(dataDir, "clamd", "db"))
        .filter((n) => n.startsWith("intake-"))
        .map((n) => [n, statSync(join(dataDir, "clamd", "db", n)).mtimeMs]),
    );

  const tour = (args: string[] = []): Promise<Run> =>
    new Promise((done, fail) => {
      const child = spawn("npm", ["run", "-s", "tour", "--", ...args], { cwd: ROOT, env: tourEnv, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.on("data", (b: Buffer) => (out += b));
      child.stderr.on("data", (b: Buffer) => (out += b));
      child.on("error", fail);
      child.on("close", (code) => done({ code, out }));
    });

  beforeAll(async () => {
    checkInstalled();
    dataDir = mkdtempSync(join(tmpdir(), "intake-dev-tour-"));
    const [port, fauxqsPort, metricsPort, clamdPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const base = { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? dataDir, DATA_DIR: dataDir, PORT: String(port), WORKER_METRICS_PORT: String(metricsPort) };
    tourEnv = base;
    apiUrl = `http://127.0.0.1:${port}`;
    // detached: its own process group, so afterAll stops the script and everything it started.
    dev = spawn("bash", ["infra/bin/dev"], {
      cwd: ROOT,
      detached: true,
      env: { ...base, FAUXQS_PORT: String(fauxqsPort), CLAMD_PORT: String(clamdPort), QUEUE_PREFIX: `tour-${randomBytes(4).toString("hex")}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    dev.stdout!.on("data", (b: Buffer) => (devOut += b));
    dev.stderr!.on("data", (b: Buffer) => (devOut += b));
    await waitFor(
      async () => {
        if (dev!.exitCode !== null) throw new Error(`infra/bin/dev exited ${dev!.exitCode}:\n${devOut}`);
        return devOut.includes("Ctrl-C stops the stack.") ? true : null;
      },
      { timeoutMs: 150_000, intervalMs: 250, message: `infra/bin/dev to say the stack is running; so far:\n${devOut}` },
    );
  }, 180_000);

  afterAll(async () => {
    if (dev?.pid && dev.exitCode === null) {
      process.kill(-dev.pid, "SIGTERM");
      await waitFor(async () => (dev!.exitCode !== null || dev!.signalCode !== null ? true : null), { timeoutMs: 30_000, intervalMs: 100, message: "infra/bin/dev to stop" }).catch(() => process.kill(-dev!.pid!, "SIGKILL"));
    }
    // up.sh's clamd outlives the script (it daemonizes): stopped by its own pid file.
    if (dataDir) {
      spawnSync("bash", [join(ROOT, "infra/clamd/down.sh")], { env: { PATH: process.env.PATH ?? "", DATA_DIR: dataDir }, stdio: "ignore" });
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it("infra/bin/dev names the tour in one line, with the variables that find this stack", () => {
    const lines = devOut.split("\n").filter((l) => l.includes("npm run tour"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`PORT=${tourEnv.PORT} DATA_DIR=${dataDir} WORKER_METRICS_PORT=${tourEnv.WORKER_METRICS_PORT} npm run tour`);
  });

  it("a step whose evidence is not seen fails with exit 1 naming it; what it changed is put back by the next run", async () => {
    // An operator's malformed hash list beside the rules: every reload is refused.
    mkdirSync(join(dataDir, "clamd", "rules"), { recursive: true });
    const broken = join(dataDir, "clamd", "rules", "acme-broken.hsb");
    writeFileSync(broken, "not-a-hash:zz:Broken.Entry\n");
    let failed: Run;
    try {
      failed = await tour(["rule"]);
    } finally {
      rmSync(broken);
    }
    expect(failed.code, failed.out).toBe(1);
    expect(failed.out).toContain("REFUSED acme-broken.hsb");
    expect(failed.out).toMatch(/FAIL: npm run signatures -- reload exited 1/);
    expect(failed.out).toContain("0 of 1 steps showed their evidence; failed: rule.");
    // Its own rule file is gone; the reload it owes clamd is in the journal for the next run.
    expect(readdirSync(join(dataDir, "clamd", "rules"))).toEqual([]);
    expect(JSON.parse(readFileSync(join(dataDir, "tour", "undo.json"), "utf8"))).toEqual([expect.objectContaining({ kind: "rule-files" })]);
  }, 120_000);

  it("shows a stripped photo, a custom-rule catch, a rescan catch and a held verdict, exit 0, and puts everything back", async () => {
    const datesBefore = databaseDates();
    const run = await tour();
    expect(run.code, run.out).toBe(0);
    const out = run.out;
    expect(out).toMatch(/left by an earlier tour, put back: the tour's rule files are gone and clamd reloaded without them/);
    // 1. stripped photo
    expect(out).toMatch(/PUT \/v1\/admin\/tenants\/dev\/policy: stripImageMetadata false -> true/);
    expect(out).toMatch(/the photo as uploaded: GPS 48\.858\d, 2\.294\d; camera serial TOUR-SN-4417/);
    expect(out).toMatch(/verified, metadataStripped: true; sha256 as uploaded [0-9a-f]{16}…, as served [0-9a-f]{16}…/);
    expect(out).toMatch(/exifr finds no GPS and no serial in it/);
    expect(out).toMatch(/cleanup: policy of dev restored \(stripImageMetadata false/);
    // 2. custom rule
    expect(out).toMatch(/quarantined: reason malware, signature YARA\.Intake_Tour_Custom_[0-9a-f]{8}\.UNOFFICIAL/);
    // 3. rescan
    expect(out).toMatch(/quarantined by the rescan: reason malware_on_rescan, signature YARA\.Intake_Tour_Rescan_[0-9a-f]{8}\.UNOFFICIAL/);
    expect(out).toMatch(/quarantine review: "clamd found YARA\.Intake_Tour_Rescan_[0-9a-f]{8}\.UNOFFICIAL on a rescan \(cleared before by ClamAV [^)]+\)"; audit trail \.\.\. upload\.verified \(finalize\) -> upload\.quarantining \(rescan\) -> upload\.quarantined \(rescan\)/);
    expect(out).toMatch(/GET \/v1\/admin\/rescans: run rsc_\S+ \(started by a signature change at \S+, \w+\): \d+ done, [1-9]\d* matched/);
    expect(out).toMatch(/download refused: 409 upload_not_verified/);
    // 4. held verdict
    expect(out).toMatch(/held: the signature database is 72 hours old \(at most 48 allowed\)/);
    expect(out).toMatch(/\/readyz: held [1-9]\d*, flag verdicts_held/);
    expect(out).toMatch(/proceeded by itself: verified/);
    expect(out.match(/^ {3}PASS$/gm)).toHaveLength(4);
    expect(out).toContain("4 of 4 steps showed their evidence.");

    // Put back: no rule file, the database's dates, the policy, an empty journal.
    expect(readdirSync(join(dataDir, "clamd", "rules"))).toEqual([]);
    const datesAfter = databaseDates();
    expect(Object.keys(datesAfter).sort()).toEqual(Object.keys(datesBefore).sort());
    for (const [name, mtimeMs] of Object.entries(datesBefore)) expect(Math.abs(datesAfter[name]! - mtimeMs), name).toBeLessThan(1);
    expect(existsSync(join(dataDir, "tour", "undo.json"))).toBe(false);
    const password = /^password: (\S+)$/m.exec(readFileSync(join(dataDir, "dev-admin.txt"), "utf8"))![1]!;
    const { session } = await IntakeAdminClient.signIn(apiUrl, "admin@intake.localhost", password);
    const admin = new IntakeAdminClient({ baseUrl: apiUrl, session });
    expect((await admin.tenantPolicy("dev")).inForce.stripImageMetadata).toBe(false);
    await admin.signOut();
  }, 180_000);

  it("runs again to the same end (exit 0) on the same stack", async () => {
    const again = await tour();
    expect(again.code, again.out).toBe(0);
    expect(again.out).toContain("4 of 4 steps showed their evidence.");
    expect(again.out).not.toContain("left by an earlier tour");
  }, 180_000);
});
