import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { IntakeAdminClient, IntakeClient } from "@intake/client/node";
import { devKeyFromSeed } from "@intake/db";
import { TourSetupError } from "./evidence.ts";

/**
 * The running dev stack (infra/bin/dev) as the tour finds it: by the same variables the
 * stack was started with (PORT, DATA_DIR, WORKER_METRICS_PORT; INTAKE_API_URL and
 * INTAKE_API_KEY as the CLI takes them) and the files it leaves in DATA_DIR: the dev key,
 * the dev admin's password, clamd's limits.env (host and port), its database directory and
 * the operators' rules directory.
 */
export const REPO_ROOT = fileURLToPath(new URL("../../../..", import.meta.url));
const SIGNATURES_CLI = join(REPO_ROOT, "services/worker/src/signatures-cli.ts");

export interface DevStackSettings {
  apiUrl: string;
  apiKey: string;
  dataDir: string;
  admin: { email: string; password: string };
  /** CLAMD_CUSTOM_RULES_DIR, default $DATA_DIR/clamd/rules (as the workers and the signatures command read it). */
  rulesDir: string;
  /** Where infra/clamd/up.sh writes the generated test database. */
  testDatabaseDir: string;
  clamd: { host: string; port: string };
  metricsUrl: string;
  metricsToken: string | undefined;
}

function envFile(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

export function devStackSettings(env: NodeJS.ProcessEnv): DevStackSettings {
  const dataDir = resolve(REPO_ROOT, env.DATA_DIR ?? ".data");
  const keyFile = join(dataDir, "dev-api-key");
  const apiKey = env.INTAKE_API_KEY ?? env.DEV_API_KEY ?? (existsSync(keyFile) ? readFileSync(keyFile, "utf8").trim() : "");
  if (!apiKey) throw new TourSetupError(`no development key: ${keyFile} is missing. Start the dev stack first (bash infra/bin/dev), with the same DATA_DIR.`);
  const adminFile = join(dataDir, "dev-admin.txt");
  const adminText = existsSync(adminFile) ? readFileSync(adminFile, "utf8") : "";
  const email = /^email: (\S+)$/m.exec(adminText)?.[1];
  const password = /^password: (\S+)$/m.exec(adminText)?.[1];
  if (!email || !password) throw new TourSetupError(`the dev admin's password is not in ${adminFile} (infra/bin/dev writes it at the first start; npm run admin -- set-password --email admin@intake.localhost sets a new one)`);
  const limits = envFile(join(dataDir, "clamd", "limits.env"));
  return {
    apiUrl: (env.INTAKE_API_URL ?? `http://127.0.0.1:${env.PORT ?? "3000"}`).replace(/\/+$/, ""),
    apiKey,
    dataDir,
    admin: { email, password },
    rulesDir: resolve(REPO_ROOT, env.CLAMD_CUSTOM_RULES_DIR ?? join(dataDir, "clamd", "rules")),
    testDatabaseDir: join(dataDir, "clamd", "db"),
    clamd: { host: env.CLAMD_HOST ?? limits.CLAMD_HOST ?? "127.0.0.1", port: env.CLAMD_PORT ?? limits.CLAMD_PORT ?? "3310" },
    metricsUrl: `http://127.0.0.1:${env.WORKER_METRICS_PORT ?? "9464"}/metrics`,
    metricsToken: env.METRICS_TOKEN,
  };
}

/** What /readyz says about the pipeline (packages/pipeline/src/health.ts). */
export interface Readiness {
  status: string;
  pipeline?: {
    signatures: { version: string | null; date: string | null; dateSource: string | null; ageHours: number | null; maxAgeHours: number; stale: boolean; testSignaturesOnly: boolean };
    held: { count: number; oldestSince: string | null } | null;
    flags: { code: string; severity: string; message: string }[];
  };
}

export class DevStack {
  readonly settings: DevStackSettings;
  readonly client: IntakeClient;
  #admin: IntakeAdminClient | null = null;

  constructor(settings: DevStackSettings) {
    this.settings = settings;
    this.client = new IntakeClient({ baseUrl: settings.apiUrl, apiKey: settings.apiKey });
  }

  /** The dev admin's session (signed in once, ended by close()). */
  async admin(): Promise<IntakeAdminClient> {
    if (this.#admin) return this.#admin;
    const { session } = await IntakeAdminClient.signIn(this.settings.apiUrl, this.settings.admin.email, this.settings.admin.password);
    this.#admin = new IntakeAdminClient({ baseUrl: this.settings.apiUrl, session });
    return this.#admin;
  }

  /** The dev key's tenant: the key's id (ik_dev_<id>_..., or derived from a DEV_API_KEY seed) among the admin's key list. */
  async tenantOfKey(): Promise<string> {
    const id = /^ik_(?:live|dev)_([a-z0-9]{16})_/.exec(devKeyFromSeed(this.settings.apiKey))?.[1];
    const key = id ? (await (await this.admin()).listApiKeys()).find((k) => k.id === id) : undefined;
    if (!key) throw new TourSetupError("the dev key is not among the stack's API keys: is the tour pointed at the stack that printed it (PORT, DATA_DIR)?");
    return key.tenantId;
  }

  async readiness(): Promise<Readiness> {
    const res = await fetch(`${this.settings.apiUrl}/readyz`);
    return (await res.json()) as Readiness;
  }

  /** intake_signature_version_changes_total on the worker: signature versions its watch has seen clamd load. */
  async signatureChangesSeen(): Promise<number> {
    const res = await fetch(this.settings.metricsUrl, this.settings.metricsToken ? { headers: { authorization: `Bearer ${this.settings.metricsToken}` } } : {});
    if (!res.ok) throw new Error(`${this.settings.metricsUrl} answered ${res.status}`);
    const text = await res.text();
    const lines = [...text.matchAll(/^intake_signature_version_changes_total(?:\{[^}]*\})? ([0-9.e+]+)$/gm)];
    if (lines.length === 0) throw new Error(`${this.settings.metricsUrl} has no intake_signature_version_changes_total: is it a scanning worker's?`);
    return lines.reduce((sum, m) => sum + Number(m[1]), 0);
  }

  /** `npm run signatures -- <command>` against the stack's clamd and rules directory. */
  signatures(command: "reload" | "status" | "check"): { code: number | null; output: string } {
    const r = spawnSync(process.execPath, [SIGNATURES_CLI, command], {
      cwd: REPO_ROOT,
      env: { ...process.env, DATA_DIR: this.settings.dataDir, CLAMD_HOST: this.settings.clamd.host, CLAMD_PORT: this.settings.clamd.port, CLAMD_CUSTOM_RULES_DIR: this.settings.rulesDir },
      encoding: "utf8",
      timeout: 180_000,
    });
    return { code: r.status, output: `${r.stdout ?? ""}${r.stderr ?? ""}` };
  }

  async close(): Promise<void> {
    await this.#admin?.signOut().catch(() => undefined);
    this.#admin = null;
  }
}
