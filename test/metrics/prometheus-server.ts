import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, waitFor } from "@intake/testkit";

/**
 * A real Prometheus (Debian's package, /usr/bin/prometheus) on a free loopback port, with
 * a throwaway configuration and data directory: what an operator runs, scraping what the
 * test points it at. Stopped (SIGTERM, then SIGKILL) and removed by stop().
 */
export const PROMETHEUS = process.env.PROMETHEUS_BIN ?? "/usr/bin/prometheus";

export interface RunningPrometheus {
  url: string;
  /** Everything Prometheus printed (its log), for a failure's message. */
  output(): string;
  /** An instant query through the HTTP API (/api/v1/query): the vector's samples. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: number }[]>;
  get<T = unknown>(path: string): Promise<T>;
  stop(): Promise<void>;
}

export async function startPrometheus(config: string, files: Record<string, string> = {}): Promise<RunningPrometheus> {
  if (!existsSync(PROMETHEUS)) throw new Error(`${PROMETHEUS} is missing: install Debian's prometheus package (infra/bin/provision.sh does)`);
  const dir = mkdtempSync(join(tmpdir(), "intake-prometheus-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  writeFileSync(join(dir, "prometheus.yml"), config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    PROMETHEUS,
    [`--config.file=${join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=warn"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  child.stdout!.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (log += d.toString()));
  let exited = false;
  child.once("exit", () => (exited = true));

  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(url + path);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== "success") throw new Error(`Prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  };
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
      if (!exited) await once(child, "exit");
      clearTimeout(killer);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    await waitFor(
      async () => {
        if (exited) throw new Error(`prometheus exited during startup:\n${log}`);
        return fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
      },
      { timeoutMs: 20_000, intervalMs: 100, message: "Prometheus to be ready", describeLast: () => log.slice(-2000) },
    );
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    url,
    output: () => log,
    get,
    query: async (expr) => {
      const data = await get<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    stop,
  };
}
