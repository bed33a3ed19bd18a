/**
 * The image's HEALTHCHECK (Dockerfile): one command for every role. It finds which program
 * this container runs (the API or a worker; under an init process the program is not PID 1,
 * hence the scan of /proc) and asks that program's own liveness endpoint:
 *   API     GET http://127.0.0.1:$PORT/healthz
 *   worker  GET http://127.0.0.1:$WORKER_METRICS_PORT/healthz (served with the metrics)
 * Exit 0 healthy, 1 unhealthy (Docker's convention), with one line saying why.
 */
import { readdirSync, readFileSync } from "node:fs";

const TIMEOUT_MS = 3000;

function runningProgram(): "api" | "worker" | null {
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    if (cmdline.includes("services/api/src/main.ts")) return "api";
    if (cmdline.includes("services/worker/src/main.ts")) return "worker";
  }
  return null;
}

function unhealthy(why: string): never {
  process.stdout.write(`unhealthy: ${why}\n`);
  process.exit(1);
}

const program = runningProgram();
if (!program) unhealthy("neither services/api/src/main.ts nor services/worker/src/main.ts is running in this container");
const port = program === "api" ? (process.env.PORT ?? "3000") : (process.env.WORKER_METRICS_PORT ?? "9464");
if (port === "0") unhealthy(`${program === "api" ? "PORT" : "WORKER_METRICS_PORT"} is 0: there is no listener to ask`);
const url = `http://127.0.0.1:${port}/healthz`;
try {
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!res.ok) unhealthy(`${program} ${url} answered ${res.status}`);
  process.stdout.write(`healthy: ${program} ${url}\n`);
} catch (err) {
  unhealthy(`${program} ${url}: ${(err as Error).message}`);
}
