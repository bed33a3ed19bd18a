import { describe, expect, it } from "vitest";
import { isAlias, isMap, isScalar, isSeq, parse, parseDocument, visit, type Node } from "yaml";
import { configProblems, DEFAULT_MAX_UPLOAD_BYTES, loadDatabaseConfig } from "@intake/runtime";
import { ROLES } from "@intake/worker";
import { readRepoFile, repoPathExists } from "./support/repo.ts";
import { SECRET_NAME, unknownVariables } from "./support/config-env.ts";

/**
 * docker-compose.yml checked against the configuration schema and the rules of the stack
 * (no Docker engine here to run it). Each rule is also shown catching its mistake.
 */
type Service = {
  image?: string;
  build?: unknown;
  command?: string[];
  restart?: string;
  environment?: Record<string, string> | string[];
  healthcheck?: { test?: unknown; disable?: boolean };
  depends_on?: Record<string, { condition?: string }> | string[];
  volumes?: (string | { source?: string })[];
};
type Compose = { services: Record<string, Service> };

const load = (text: string) => parse(text, { merge: true }) as Compose;
const envOf = (s: Service): Record<string, string> =>
  Array.isArray(s.environment) ? Object.fromEntries(s.environment.map((e) => [e.split("=")[0], e.split("=").slice(1).join("=")])) : Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]));
type Build = string | { context?: string; dockerfile?: string; args?: Record<string, string> };
const buildOf = (s: Service): { context: string; dockerfile: string; args: Record<string, string> } | undefined => {
  const b = s.build as Build | undefined;
  if (b === undefined) return undefined;
  return typeof b === "string" ? { context: b, dockerfile: "Dockerfile", args: {} } : { context: b.context ?? ".", dockerfile: b.dockerfile ?? "Dockerfile", args: Object.fromEntries(Object.entries(b.args ?? {}).map(([k, v]) => [k, String(v)])) };
};
/** An Intake process: the root Dockerfile's image (intake-clamd, infra/clamd/Dockerfile, is clamd). */
const isIntake = (s: Service) => {
  const b = buildOf(s);
  return b ? b.context === "." && b.dockerfile === "Dockerfile" : /^intake(:|$)/.test(s.image ?? "");
};
const CLAMD_DOCKERFILE = "infra/clamd/Dockerfile";
const REQUIRED = /^\$\{[A-Z0-9_]+:\?[^}]*\}$/;

/** Interpolations replaced by a value a user would give (the variables compose requires). */
const interpolate = (v: string) => v.replace(/\$\{([A-Z0-9_]+)(:?[?-][^}]*)?\}/g, (_, name: string) => (name.includes("TOKEN") ? "t".repeat(32) : `value-of-${name.toLowerCase()}`));

/** Secrets written into the file: every secret must be a required `${NAME:?}` outside the x-development block. */
function secretProblems(text: string): string[] {
  const doc = parseDocument(text, { merge: true });
  const problems: string[] = [];
  const dev = (doc.contents as { get(k: string, keepScalar: true): Node | undefined } | null)?.get("x-development", true);
  const inDevelopment = (n: Node | null | undefined) => !!(n?.range && dev?.range && n.range[0] >= dev.range[0] && n.range[1] <= dev.range[1]);
  const checkValue = (name: string, value: Node | null, where: Node | null) => {
    const resolved = isAlias(value) ? value.resolve(doc) : value;
    if (inDevelopment(where) || inDevelopment(resolved)) return;
    if (!isScalar(resolved)) return;
    const v = String(resolved.value ?? "");
    if (!REQUIRED.test(v)) problems.push(`${name}: a secret with a value or default in the file (${v.startsWith("${") ? v : "a literal"}); use \${${name}:?...} or the x-development block`);
  };
  visit(doc, {
    Pair(_, pair) {
      if (!isScalar(pair.key)) return;
      const key = String(pair.key.value);
      if (SECRET_NAME.test(key) && !isMap(pair.value) && !isSeq(pair.value)) checkValue(key, pair.value as Node | null, pair.key as Node);
    },
    Scalar(_, node) {
      if (inDevelopment(node) || typeof node.value !== "string") return;
      const s = node.value;
      // KEY=value list entries.
      const entry = /^([A-Z0-9_]+)=(.*)$/.exec(s);
      if (entry && SECRET_NAME.test(entry[1]) && !REQUIRED.test(entry[2])) problems.push(`${entry[1]}: a secret with a value in the file`);
      // A secret interpolated with a default: ${NAME:-x} or ${NAME-x}.
      for (const m of s.matchAll(/\$\{([A-Z0-9_]+)(:?-)[^}]*\}/g)) if (SECRET_NAME.test(m[1])) problems.push(`${m[1]}: a secret interpolated with a default`);
      // A password inside a URL must be a required interpolation.
      const userinfo = /\/\/[^/:@\s]+:([^@\s]+)@/.exec(s);
      if (userinfo && !REQUIRED.test(userinfo[1])) problems.push(`a URL with a password written into the file (${s.replace(userinfo[1], "***")})`);
    },
  });
  return [...new Set(problems)];
}

function composeProblems(text: string): string[] {
  const problems = secretProblems(text);
  const { services } = load(text);
  const names = Object.keys(services);
  const oneShots = names.filter((n) => services[n].restart === "no");

  for (const [name, s] of Object.entries(services)) {
    // Healthchecks everywhere but one-shots, which the others wait for instead.
    const hc = s.healthcheck;
    if (!oneShots.includes(name) && (!hc || hc.disable || !hc.test)) problems.push(`${name}: no healthcheck`);
    // Start order on health: a dependency is waited for healthy (or completed, a one-shot).
    const deps = s.depends_on ?? {};
    if (Array.isArray(deps)) problems.push(`${name}: depends_on without conditions`);
    else
      for (const [dep, { condition } = {}] of Object.entries(deps)) {
        if (!services[dep]) problems.push(`${name}: depends on ${dep}, which is not a service`);
        const want = oneShots.includes(dep) ? "service_completed_successfully" : "service_healthy";
        if (condition !== want) problems.push(`${name}: depends on ${dep} with ${condition ?? "no condition"} (want ${want})`);
      }
    for (const v of s.volumes ?? []) {
      const source = typeof v === "string" ? v.split(":")[0] : v.source ?? "";
      if (source.startsWith(".") && !repoPathExists(source)) problems.push(`${name}: mounts ${source}, which is not in the repository`);
    }
    if (!isIntake(s)) continue;

    const env = envOf(s);
    for (const v of unknownVariables(Object.keys(env))) problems.push(`${name}: sets ${v}, which no Intake process reads`);
    const concrete = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(v)]));
    const isMigration = (s.command ?? []).some((c) => c.includes("migrate-cli.ts"));
    if (isMigration) {
      try {
        loadDatabaseConfig(concrete);
      } catch (err) {
        problems.push(`${name}: ${(err as Error).message}`);
      }
    } else {
      for (const p of configProblems(concrete)) problems.push(`${name}: ${p}`);
      if (!oneShots.some((o) => (services[o].command ?? []).some((c) => c.includes("migrate-cli.ts")) && !Array.isArray(s.depends_on) && s.depends_on?.[o]?.condition === "service_completed_successfully"))
        problems.push(`${name}: does not wait for the migration to complete`);
    }
  }
  // Each worker role in a service of its own.
  for (const role of ROLES) {
    const running = names.filter((n) => isIntake(services[n]) && envOf(services[n]).WORKER_ROLES === role);
    if (running.length !== 1) problems.push(`worker role ${role}: ${running.length} services run it alone (want 1)`);
  }
  if (names.some((n) => isIntake(services[n]) && /(^|,)all(,|$)/.test(envOf(services[n]).WORKER_ROLES ?? ""))) problems.push("a service runs WORKER_ROLES=all");
  // BullMQ's Redis: noeviction and persistence.
  const redis = Object.values(services).find((s) => (s.image ?? "").startsWith("redis"));
  const redisArgs = (redis?.command ?? []).join(" ");
  if (!/--maxmemory-policy noeviction/.test(redisArgs)) problems.push("redis: maxmemory-policy is not noeviction");
  if (!/--appendonly yes/.test(redisArgs)) problems.push("redis: appendonly is not on");
  // clamd: the intake-clamd image (the stock one fails the workers' limits probe), rendered
  // for the upload limit the Intake processes use, its databases on a volume.
  const clamd = services[names.find((n) => /clamd/.test(n)) ?? ""];
  const clamdBuild = clamd && buildOf(clamd);
  if (!clamd) problems.push("no clamd service");
  else if (!clamdBuild || clamdBuild.dockerfile !== CLAMD_DOCKERFILE || clamdBuild.context !== ".") problems.push(`clamd: not built from ${CLAMD_DOCKERFILE} with the repository as context (image ${clamd.image ?? "none"})`);
  else {
    const intakeUploads = new Set(names.filter((n) => isIntake(services[n]) && !(services[n].command ?? []).some((c) => c.includes("migrate-cli.ts"))).map((n) => envOf(services[n]).MAX_UPLOAD_BYTES ?? String(DEFAULT_MAX_UPLOAD_BYTES)));
    const built = clamdBuild.args.MAX_UPLOAD_BYTES ?? /^ARG MAX_UPLOAD_BYTES=(\d+)$/m.exec(readRepoFile(CLAMD_DOCKERFILE))?.[1];
    if (intakeUploads.size !== 1 || !intakeUploads.has(built ?? "")) problems.push(`clamd: built for MAX_UPLOAD_BYTES=${built}, the Intake services use ${[...intakeUploads].join(", ")}`);
  }
  for (const v of clamd?.volumes ?? []) {
    const target = typeof v === "string" ? v.split(":")[1] : (v as { target?: string }).target;
    if (target?.startsWith("/etc/clamav")) problems.push(`clamd: mounts ${target} over the image's rendered config`);
  }
  if (clamd && !(clamd.volumes ?? []).some((v) => (typeof v === "string" ? v.split(":")[1] : (v as { target?: string }).target) === "/var/lib/clamav")) problems.push("clamd: no volume at /var/lib/clamav (the databases, and what the signatures command writes)");
  // Custom rules: the image's intake-rules reads /rules (CLAMD_CUSTOM_RULES_DIR's default there), mounted read-only.
  const rulesMount = (clamd?.volumes ?? []).map((v) => (typeof v === "string" ? v.split(":") : [(v as { source?: string }).source, (v as { target?: string }).target, (v as { read_only?: boolean }).read_only ? "ro" : ""])).find((p) => p[1] === "/rules");
  if (clamd && !rulesMount) problems.push("clamd: nothing mounted at /rules (custom rules could not be loaded)");
  else if (rulesMount && rulesMount[2] !== "ro") problems.push("clamd: /rules is not mounted read-only");
  return problems;
}

const COMPOSE = readRepoFile("docker-compose.yml");

describe("docker-compose.yml", () => {
  it("sets only variables the configuration reads, with values it accepts, healthchecks and health-ordered starts everywhere, and no secret in the file", () => {
    expect(composeProblems(COMPOSE)).toEqual([]);
  });

  it("has the stack's parts: redis, postgres, clamd with freshclam, LocalStack with S3+SQS, the API, one service per worker role and the one-shot migration", () => {
    const { services } = load(COMPOSE);
    expect(buildOf(services.clamd)).toMatchObject({ context: ".", dockerfile: CLAMD_DOCKERFILE });
    expect(isIntake(services.clamd)).toBe(false);
    expect(envOf(services.localstack)).toMatchObject({ SERVICES: "s3,sqs" });
    expect(services.migrate).toMatchObject({ restart: "no", command: ["node", "services/api/src/migrate-cli.ts"] });
    expect(services.api.command).toEqual(["node", "services/api/src/main.ts"]);
    // Production: no process migrates as a side effect of its start.
    for (const [name, s] of Object.entries(services)) if (isIntake(s)) expect(envOf(s), name).toMatchObject({ NODE_ENV: "production" }), expect(envOf(s).MIGRATE_ON_START, name).toBeUndefined();
  });

  it("LocalStack's ready hook creates the bucket, the queue with its DLQ and ObjectCreated notifications for pending/ only", () => {
    const script = readRepoFile("infra/localstack/init-aws.sh");
    expect(script).toMatch(/put-bucket-notification-configuration/);
    expect(script).toMatch(/s3:ObjectCreated:\*/);
    expect(script).toMatch(/\\"Name\\":\\"prefix\\",\\"Value\\":\\"pending\/\\"/);
    expect(script).toMatch(/RedrivePolicy/);
    expect(script).toMatch(/ExposeHeaders\\?":\[\\?"ETag/);
  });

  const mutations: [string, (t: string) => string, RegExp][] = [
    ["a secret with a default", (t) => t.replace("POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}", "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:-postgres}"), /POSTGRES_PASSWORD: a secret/],
    ["a secret written out", (t) => t.replace(/METRICS_TOKEN: \$\{METRICS_TOKEN:\?[^}]*\}/, "METRICS_TOKEN: 0123456789abcdef0123"), /METRICS_TOKEN: a secret with a value/],
    ["a password in a URL", (t) => t.replace("postgres://intake:${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}@postgres:5432/intake\n  # 9", "postgres://intake:hunter2@postgres:5432/intake\n  # 9"), /a URL with a password written into the file/],
    ["a secret defaulted inside a URL", (t) => t.replace("postgres://intake:${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}@postgres:5432/intake\n  # 9", "postgres://intake:${POSTGRES_PASSWORD:-x}@postgres:5432/intake\n  # 9"), /POSTGRES_PASSWORD: a secret interpolated with a default/],
    ["development credentials outside the marked block", (t) => t.replace("      WORKER_ROLES: ingest\n", "      WORKER_ROLES: ingest\n      AWS_SECRET_ACCESS_KEY: test\n"), /AWS_SECRET_ACCESS_KEY: a secret/],
    ["a key in list form", (t) => t.replace("      WORKER_ROLES: ingest\n", "      WORKER_ROLES: ingest\n    labels: [\"DEV_API_KEY=devdevdev\"]\n"), /DEV_API_KEY: a secret with a value/],
    ["a variable no process reads", (t) => t.replace("      WORKER_ROLES: inspect\n", "      WORKER_ROLES: inspect\n      INSPECT_CONCURENCY: \"4\"\n"), /worker-inspect: sets INSPECT_CONCURENCY/],
    ["a value the schema refuses", (t) => t.replace("WORKER_ROLES: finalize", "WORKER_ROLES: finalise"), /worker-finalize: WORKER_ROLES: unknown role finalise/],
    ["a production rule broken", (t) => t.replace("      WORKER_ROLES: reaper\n", "      WORKER_ROLES: reaper\n      DEV_API_KEY: ${DEV_API_KEY:?x}\n"), /worker-reaper: DEV_API_KEY: not allowed in production/],
    ["a service without healthcheck", (t) => t.replace(/    healthcheck:\n      test: \["CMD", "redis-cli", "ping"\]\n      interval: 5s\n      timeout: 3s\n      retries: 10\n/, ""), /redis: no healthcheck/],
    ["a dependency started but not healthy", (t) => t.replace("  redis:\n    condition: service_healthy", "  redis:\n    condition: service_started"), /depends on redis with service_started/],
    ["a worker that does not wait for the migration", (t) => t.replace("x-after-migration: &after-migration\n  migrate:\n    condition: service_completed_successfully\n", "x-after-migration: &after-migration\n"), /does not wait for the migration/],
    ["a worker role without its service", (t) => t.replace("WORKER_ROLES: recheck", "WORKER_ROLES: webhooks"), /worker role recheck: 0 services/],
    ["redis that evicts", (t) => t.replace('"--maxmemory-policy", "noeviction"', '"--maxmemory-policy", "allkeys-lru"'), /redis: maxmemory-policy is not noeviction/],
    ["the stock clamd image", (t) => t.replace(/  clamd:\n([\s\S]*?)    build:\n      context: \.\n      dockerfile: infra\/clamd\/Dockerfile\n      args:\n[^\n]*\n[^\n]*\n    image: intake-clamd:local\n/, "  clamd:\n$1    image: clamav/clamav:1.4.5\n"), /clamd: not built from infra\/clamd\/Dockerfile/],
    ["clamd built for another upload limit", (t) => t.replace('MAX_UPLOAD_BYTES: "1048576000"', 'MAX_UPLOAD_BYTES: "524288000"'), /clamd: built for MAX_UPLOAD_BYTES=524288000, the Intake services use 1048576000/],
    ["Intake processes with another upload limit than clamd's", (t) => t.replace("  QUEUE_PREFIX: intake\n", "  QUEUE_PREFIX: intake\n  MAX_UPLOAD_BYTES: \"524288000\"\n"), /clamd: built for MAX_UPLOAD_BYTES=1048576000, the Intake services use 524288000/],
    ["a clamd.conf mounted over the image's", (t) => t.replace("      - clamav-db:/var/lib/clamav\n", "      - clamav-db:/var/lib/clamav\n      - ./infra/clamd/clamd.conf.template:/etc/clamav/clamd.conf:ro\n"), /clamd: mounts \/etc\/clamav\/clamd\.conf over the image's rendered config/],
    ["clamd without its database volume", (t) => t.replace("      - clamav-db:/var/lib/clamav\n", ""), /clamd: no volume at \/var\/lib\/clamav/],
    ["clamd without its rules", (t) => t.replace("      - ./infra/clamd/rules:/rules:ro\n", ""), /clamd: nothing mounted at \/rules/],
    ["clamd's rules writable", (t) => t.replace("./infra/clamd/rules:/rules:ro", "./infra/clamd/rules:/rules"), /clamd: \/rules is not mounted read-only/],
    ["a mount of a missing file", (t) => t.replace("./infra/localstack/init-aws.sh:", "./infra/localstack/init.sh:"), /mounts \.\/infra\/localstack\/init\.sh/],
  ];
  for (const [what, mutate, problem] of mutations) {
    it(`catches ${what}`, () => {
      const changed = mutate(COMPOSE);
      expect(changed, "the mutation changed nothing").not.toBe(COMPOSE);
      expect(composeProblems(changed).join("\n")).toMatch(problem);
    });
  }
});
