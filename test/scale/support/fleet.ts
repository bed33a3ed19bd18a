import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { waitFor } from "@intake/testkit";

/**
 * The processes of a scale-out run, each a child of the test started as production starts
 * it (`node services/api/src/main.ts`, `node services/worker/src/main.ts` with WORKER_ROLES):
 * their output goes to a log file each, readiness is a line they print, and their CPU is
 * read from /proc so a run can say which kind of process the machine's cores went to.
 */
export const REPO_ROOT = fileURLToPath(new URL("../../..", import.meta.url));
export const API_MAIN = "services/api/src/main.ts";
export const WORKER_MAIN = "services/worker/src/main.ts";
export const MIGRATE_MAIN = "services/api/src/migrate-cli.ts";

export interface FleetProcess {
  kind: string;
  name: string;
  pid: number;
  proc: ChildProcess;
  logPath: string;
  /** The process's output so far (its last 256 KiB). */
  output(): string;
  alive(): boolean;
}

/** CPU seconds (user + system, and with `children` those of reaped children) from /proc/<pid>/stat. */
export function cpuSecondsOf(pid: number, children = false): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces), counted from field 3.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  const own = f[11]! + f[12]!;
  return (children ? own + f[13]! + f[14]! : own) / 100; // clock ticks (USER_HZ 100)
}

const OUTPUT_KEPT = 256 * 1024;

export class Fleet {
  readonly processes: FleetProcess[] = [];
  /** The last CPU reading of each process: a SIGKILLed one keeps what it had used. */
  readonly #cpu = new Map<number, number>();
  readonly #timer: NodeJS.Timeout;
  readonly #dir: string;
  #counter = new Map<string, number>();

  constructor(logDir: string) {
    this.#dir = logDir;
    this.#timer = setInterval(() => this.sampleCpu(), 500);
    this.#timer.unref();
  }

  /** Starts `script` and resolves once its output matches `ready` (rejects if it exits first). */
  async start(kind: string, script: string, env: Record<string, string>, ready: RegExp, timeoutMs = 90_000): Promise<FleetProcess> {
    const n = (this.#counter.get(kind) ?? 0) + 1;
    this.#counter.set(kind, n);
    const name = `${kind}-${n}`;
    const logPath = join(this.#dir, `${name}.log`);
    const log = createWriteStream(logPath);
    // Only PATH from the runner: NODE_ENV=test and the runner's own variables stay out.
    const proc = spawn(process.execPath, [script], { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const keep = (d: Buffer) => {
      log.write(d);
      out = (out + d.toString()).slice(-OUTPUT_KEPT);
    };
    proc.stdout!.on("data", keep);
    proc.stderr!.on("data", keep);
    proc.on("exit", () => log.end());
    const p: FleetProcess = {
      kind,
      name,
      pid: proc.pid!,
      proc,
      logPath,
      output: () => out,
      alive: () => proc.exitCode === null && proc.signalCode === null,
    };
    this.processes.push(p);
    await waitFor(
      () => {
        if (!p.alive()) throw new Error(`${name} exited (${proc.exitCode ?? proc.signalCode}) before it was ready; log ${logPath}:\n${out.slice(-3000)}`);
        return ready.test(out);
      },
      { timeoutMs, intervalMs: 100, message: `${name} to print ${ready}`, describeLast: () => out.slice(-1500) },
    );
    return p;
  }

  /** Runs a one-shot command (the migrations) to its end. */
  run(kind: string, script: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
    return new Promise((resolve, reject) => {
      const proc = spawn(process.execPath, [script], { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      proc.stdout.on("data", (d: Buffer) => (output += d));
      proc.stderr.on("data", (d: Buffer) => (output += d));
      proc.on("error", reject);
      proc.on("close", (code) => resolve({ code, output: `${kind}: ${output}` }));
    });
  }

  live(kind: string): FleetProcess[] {
    return this.processes.filter((p) => p.kind === kind && p.alive());
  }

  sampleCpu(): void {
    for (const p of this.processes) {
      if (!p.alive()) continue;
      try {
        this.#cpu.set(p.pid, cpuSecondsOf(p.pid));
      } catch {
        // gone between the check and the read: its last reading stands
      }
    }
  }

  /** SIGKILL, as a crashed or evicted process: no drain, no goodbye. */
  async kill(p: FleetProcess): Promise<void> {
    this.sampleCpu();
    const exited = new Promise((resolve) => p.proc.once("exit", resolve));
    p.proc.kill("SIGKILL");
    await exited;
  }

  /** CPU seconds per pid now (live processes read afresh, dead ones as last read). */
  cpuSnapshot(): Map<number, number> {
    this.sampleCpu();
    return new Map(this.#cpu);
  }

  /** CPU seconds used per kind of process between two snapshots (a process started later counts from 0). */
  cpuByKind(from: Map<number, number>, to: Map<number, number>): Record<string, number> {
    const out: Record<string, number> = {};
    for (const p of this.processes) {
      const used = (to.get(p.pid) ?? 0) - (from.get(p.pid) ?? 0);
      out[p.kind] = (out[p.kind] ?? 0) + Math.max(0, used);
    }
    return out;
  }

  /** SIGTERM to every live process (workers drain), SIGKILL to what is still there after `graceMs`. */
  async stopAll(graceMs = 20_000): Promise<void> {
    clearInterval(this.#timer);
    const live = this.processes.filter((p) => p.alive());
    await Promise.all(
      live.map(async (p) => {
        const exited = new Promise((resolve) => p.proc.once("exit", resolve));
        p.proc.kill("SIGTERM");
        const timer = setTimeout(() => p.proc.kill("SIGKILL"), graceMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}

/**
 * Shared services outside the fleet (Redis, PostgreSQL, clamd): their CPU, read the same
 * way before and after. PostgreSQL forks a backend per connection, so its figure is the
 * postmaster with its reaped children plus every live backend; it and clamd are shared
 * with whatever else runs on the machine.
 */
export function sharedServiceCpu(): Record<string, number> {
  const procs = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        const cmdline = readFileSync(`/proc/${d}/cmdline`, "utf8").replace(/\0/g, " ");
        return { pid: Number(d), comm, ppid, cmdline };
      } catch {
        return null;
      }
    })
    .filter((p): p is NonNullable<typeof p> => p !== null);
  const safe = (pid: number, children = false) => {
    try {
      return cpuSecondsOf(pid, children);
    } catch {
      return 0;
    }
  };
  const pg = procs.filter((p) => p.comm === "postgres");
  const pgPids = new Set(pg.map((p) => p.pid));
  const postmasters = pg.filter((p) => !pgPids.has(p.ppid));
  return {
    redis: procs.filter((p) => p.comm === "redis-server" && /:6379\b/.test(p.cmdline)).reduce((s, p) => s + safe(p.pid), 0),
    postgres: postmasters.reduce((s, p) => s + safe(p.pid, true), 0) + pg.filter((p) => pgPids.has(p.ppid)).reduce((s, p) => s + safe(p.pid), 0),
    clamd: procs.filter((p) => p.comm === "clamd").reduce((s, p) => s + safe(p.pid), 0),
  };
}
