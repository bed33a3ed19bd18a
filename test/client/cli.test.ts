import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort } from "@intake/testkit";
import { beforeAllOrFailEach } from "@intake/test";
import { eicar, png } from "../pipeline/fixtures.ts";
import { MiB, sha256Of, startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";

/**
 * The `intake` CLI as a user runs it: a child process (node packages/client/src/cli/main.ts)
 * against the whole stack on the local store (fauxqs) with workers and clamd. The store caps
 * request bodies at 11 MiB, so the multipart threshold and part size are set to make 50 MiB
 * go up in five parts.
 */
const MAIN = resolve(import.meta.dirname, "../../packages/client/src/cli/main.ts");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function intake(args: string[], env: Record<string, string | undefined>, cwd?: string): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH, ...env }, cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b));
    child.stderr.on("data", (b: Buffer) => (stderr += b));
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr }));
  });
}

/** The same, under a pseudo-terminal (util-linux `script`), so stdout is a TTY. */
function intakeOnTty(args: string[], env: Record<string, string>, cwd: string): Promise<Run> {
  const line = [process.execPath, MAIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  return new Promise((done, fail) => {
    const child = spawn("script", ["-qec", line, "/dev/null"], { env: { PATH: process.env.PATH, TERM: "xterm", ...env }, cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b));
    child.on("error", fail);
    child.on("close", (code) => done({ code, stdout, stderr: "" }));
  });
}

describe("the intake CLI against the real stack (fauxqs, workers, clamd)", () => {
  let s: PipelineStack;
  let env: Record<string, string>;
  let dir: string;
  const runs: Run[] = [];
  const run = async (args: string[], extra: Record<string, string | undefined> = {}) => {
    const r = await intake(args, { ...env, ...extra }, dir);
    runs.push(r);
    return r;
  };
  /** 50 MiB of plain text (a type the pipeline verifies without an archive walk). */
  const big = Buffer.alloc(50 * MiB, Buffer.from(`${randomBytes(24).toString("hex")} intake cli test line\n`));
  const noKey = { INTAKE_API_KEY: undefined };
  let bigId: string;

  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", env: { MULTIPART_THRESHOLD_BYTES: String(8 * MiB), PART_SIZE_BYTES: String(10 * MiB) } });
    env = { INTAKE_API_URL: s.apiUrl, INTAKE_API_KEY: s.apiKey };
    dir = mkdtempSync(join(tmpdir(), "intake-cli-"));
    writeFileSync(join(dir, "big.txt"), big);
    writeFileSync(join(dir, "eicar.txt"), eicar());
    writeFileSync(join(dir, "pic.png"), png(32, 32, 3));
  });
  afterAll(async () => {
    await s?.close();
  });

  it("puts 50 MiB as multipart with --wait --json: exit 0 and one JSON line, verified, with the byte count and sha256", async () => {
    const r = await run(["put", "big.txt", "--wait", "--json", "--concurrency", "3"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!);
    expect(line).toEqual({ file: "big.txt", id: expect.any(String), status: "verified", bytes: 50 * MiB, sha256: sha256Of(big) });
    bigId = line.id;
    // It went up in five parts.
    const st = await run(["status", bigId, "--json"]);
    expect(st.code).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({ id: bigId, status: "verified", size: 50 * MiB, multipart: { partCount: 5 } });
  });

  it("get downloads identical bytes through the download redirect", async () => {
    const r = await run(["get", bigId, "-o", "copy.txt"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(sha256Of(big));
    expect(readFileSync(join(dir, "copy.txt")).equals(big)).toBe(true);
    // To stdout without -o.
    const pic = await run(["put", "pic.png", "--wait", "--json"]);
    const id = JSON.parse(pic.stdout).id as string;
    const out = await new Promise<Buffer>((done, fail) => {
      const child = spawn(process.execPath, [MAIN, "get", id], { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "inherit"] });
      const chunks: Buffer[] = [];
      child.stdout.on("data", (b: Buffer) => chunks.push(b));
      child.on("error", fail);
      child.on("close", () => done(Buffer.concat(chunks)));
    });
    expect(out.equals(readFileSync(join(dir, "pic.png")))).toBe(true);
  });

  it("puts EICAR with --wait: exit 2 and says quarantined (malware); get refuses it with exit 2", async () => {
    const r = await run(["put", "eicar.txt", "--wait"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^eicar\.txt: quarantined \(malware\) \S+$/m);
    const id = /quarantined \(malware\) (\S+)/.exec(r.stdout)![1]!;
    const json = await run(["put", "eicar.txt", "--wait", "--json"]);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toMatchObject({ file: "eicar.txt", status: "quarantined", reason: "malware", bytes: eicar().length });
    const g = await run(["get", id, "-o", "nope.txt"]);
    expect(g.code).toBe(2);
    expect(g.stderr).toContain("quarantined");
  });

  it("without a TTY prints plain lines, no escape codes; on a TTY draws a bar per file and the verdict", async () => {
    const r = await run(["put", "pic.png", "big.txt", "--wait"]);
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).not.toContain("\x1b");
    expect(r.stdout).toMatch(/^pic\.png: uploading /m);
    expect(r.stdout).toMatch(/^big\.txt: .* sent \(\d+%/m);
    expect(r.stdout).toMatch(/^pic\.png: verified \S+ sha256 [0-9a-f]{64}$/m);
    expect(r.stdout).toMatch(/^big\.txt: verified /m);

    const tty = await intakeOnTty(["put", "pic.png", "eicar.txt", "--wait"], env, dir);
    runs.push(tty);
    expect(tty.code, tty.stdout).toBe(2);
    expect(tty.stdout).toContain("\x1b["); // drawn in place: cursor and line control sequences
    expect(tty.stdout).toMatch(/pic\.png\s+\[█+\] 100% verified/);
    expect(tty.stdout).toMatch(/eicar\.txt\s+\[█+\] 100% quarantined \(malware\)/);
    // --json on a TTY is still JSON only.
    const j = await intakeOnTty(["put", "pic.png", "--json"], env, dir);
    runs.push(j);
    expect(j.stdout).not.toContain("\x1b");
    expect(JSON.parse(j.stdout)).toMatchObject({ file: "pic.png", status: "uploaded" });
  });

  it("status and list work", async () => {
    const st = await run(["status", bigId]);
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(/^status: +verified$/m);
    expect(st.stdout).toContain(sha256Of(big));
    const l = await run(["list", "--status", "verified", "--limit", "100", "--json"]);
    expect(l.code).toBe(0);
    const items = l.stdout.trim().split("\n").map((x) => JSON.parse(x));
    expect(items.map((u) => u.id)).toContain(bigId);
    expect(items.every((u) => u.status === "verified")).toBe(true);
    const plain = await run(["list", "--limit", "1"]);
    expect(plain.stdout.trim().split("\n")).toHaveLength(1);
    expect(plain.stderr).toMatch(/^more: intake list --cursor \S+$/m);
    const missing = await run(["status", "up_doesnotexist"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^intake: /);
  });

  it("sessions create mints a session token, which is no API key: list with it is refused", async () => {
    const r = await run(["sessions", "create", "--expires-in", "600", "--max-files", "2", "--type", "image/png", "--json"]);
    expect(r.code).toBe(0);
    const minted = JSON.parse(r.stdout);
    expect(minted).toMatchObject({ token: expect.stringMatching(/^is_/), session: { maxFiles: 2, allowedTypes: ["image/png"] } });
    // The token is not an API key: the CLI's list with it is refused (4xx -> exit 2).
    const l = await run(["list"], { INTAKE_API_KEY: minted.token });
    expect(l.code).toBe(2);
  });

  it("usage errors exit 1 with a message naming what is missing, and upload nothing", async () => {
    const none = await run(["put", "pic.png"], noKey);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("INTAKE_API_KEY");
    expect(none.stdout).toBe("");
    const noUrl = await run(["status", "x"], { INTAKE_API_URL: undefined });
    expect(noUrl.code).toBe(1);
    expect(noUrl.stderr).toContain("INTAKE_API_URL");
    for (const args of [["put"], ["put", "missing.png"], ["put", "pic.png", "--concurrency", "0"], ["list", "--status", "nonsense"], ["frobnicate"], ["put", "pic.png", "README"]]) {
      const r = await run(args);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr.length, args.join(" ")).toBeGreaterThan(0);
    }
    writeFileSync(join(dir, "noext"), "x");
    const guess = await run(["put", "noext"]);
    expect(guess.code).toBe(1);
    expect(guess.stderr).toContain("--type");
    const help = await run(["put", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--concurrency");
  });

  it("an unreachable API exits 3; the key given by flag is never printed", async () => {
    const port = await freePort();
    const r = await run(["--api-url", `http://127.0.0.1:${port}`, "put", "pic.png", "--json"]);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ file: "pic.png", status: "failed", reason: "transport" });
    const flag = await run(["--api-url", `http://127.0.0.1:${port}/${s.apiKey}`, "--api-key", s.apiKey, "status", "x"], { INTAKE_API_KEY: undefined });
    expect(flag.code).toBe(3);
    for (const x of runs) expect(x.stdout + x.stderr).not.toContain(s.apiKey);
  });
});
