import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import * as core from "kubernetes-models/v1";
import * as apps from "kubernetes-models/apps/v1";
import * as batch from "kubernetes-models/batch/v1";
import * as autoscaling from "kubernetes-models/autoscaling/v2";
import * as policy from "kubernetes-models/policy/v1";
import * as keda from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { configProblems, loadDatabaseConfig } from "@intake/runtime";
import { queueName, RECHECK_QUEUE, RESCAN_QUEUE, STAGES } from "@intake/pipeline";
import { WEBHOOK_QUEUE } from "@intake/webhooks";
import { ROLES } from "@intake/worker";
import { readRepoFile, repoPathExists, ROOT } from "./support/repo.ts";
import { SECRET_NAME, unknownVariables } from "./support/config-env.ts";
import { applyPatch, type PatchOp } from "./support/json-patch.ts";

/**
 * infra/k8s validated against the Kubernetes (kubernetes-models, the official OpenAPI
 * schemas) and KEDA schemas, then against the configuration schema and the deployment's
 * rules. Each rule is also shown catching its mistake.
 */
type Obj = Record<string, any>;
type Model = new (data: Obj) => { validate(): void };
const MODELS: Record<string, Record<string, unknown>> = { v1: core, "apps/v1": apps, "batch/v1": batch, "autoscaling/v2": autoscaling, "policy/v1": policy, "keda.sh/v1alpha1": keda };

const BASE = "infra/k8s/base";
/** infra/clamd/Dockerfile's image, as the manifests name it (the kustomization sets registry and tag). */
const CLAMD_IMAGE = "intake-clamd";
const manifestFiles = (dir: string): string[] =>
  readdirSync(join(ROOT, dir)).flatMap((e) => {
    const path = `${dir}/${e}`;
    if (statSync(join(ROOT, path)).isDirectory()) return manifestFiles(path);
    return /\.ya?ml$/.test(e) && e !== "kustomization.yaml" ? [path] : [];
  });

interface Manifest {
  file: string;
  obj: Obj;
}
const documents = (file: string, text: string): Manifest[] =>
  parseAllDocuments(text)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null)
    .map((obj) => ({ file, obj }));

function schemaProblems(m: Manifest): string[] {
  const { apiVersion, kind } = m.obj;
  const model = MODELS[apiVersion]?.[kind] as Model | undefined;
  if (!model) return [`${m.file}: ${apiVersion}/${kind} is not a kind this test knows (add its model, or remove it)`];
  try {
    new model(m.obj).validate();
    return [];
  } catch (err) {
    return [`${m.file}: ${kind} ${m.obj.metadata?.name}: ${(err as Error).message}`];
  }
}

const intakeContainers = (pod: Obj): Obj[] => [...(pod.containers ?? []), ...(pod.initContainers ?? [])].filter((c: Obj) => c.image === "intake");
const podSpec = (o: Obj): Obj | undefined => (o.kind === "Deployment" || o.kind === "Job" ? o.spec?.template?.spec : undefined);

/** The rules beyond the schemas, over every manifest at once. */
function deploymentProblems(all: Manifest[]): string[] {
  const problems: string[] = [];
  const byKind = (kind: string) => all.map((m) => m.obj).filter((o) => o.kind === kind);
  const configMap = byKind("ConfigMap").find((c) => c.metadata.name === "intake-config");
  const configData: Record<string, string> = configMap?.data ?? {};
  for (const name of unknownVariables(Object.keys(configData))) problems.push(`ConfigMap intake-config: ${name} is read by no Intake process`);
  for (const name of Object.keys(configData)) if (SECRET_NAME.test(name)) problems.push(`ConfigMap intake-config: ${name} is a secret (it belongs in a Secret)`);

  for (const o of all.map((m) => m.obj)) {
    const pod = podSpec(o);
    if (!pod) continue;
    const where = `${o.kind} ${o.metadata.name}`;
    for (const c of [...(pod.containers ?? []), ...(pod.initContainers ?? [])]) {
      if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory) problems.push(`${where}/${c.name}: no cpu and memory requests`);
      if (!c.resources?.limits?.memory) problems.push(`${where}/${c.name}: no memory limit`);
      if (c.securityContext?.allowPrivilegeEscalation !== false) problems.push(`${where}/${c.name}: allowPrivilegeEscalation is not false`);
    }
    for (const c of intakeContainers(pod)) {
      const runAsNonRoot = c.securityContext?.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
      const uid = c.securityContext?.runAsUser ?? pod.securityContext?.runAsUser;
      if (runAsNonRoot !== true || uid === 0) problems.push(`${where}/${c.name}: not runAsNonRoot`);
      if (c.securityContext?.readOnlyRootFilesystem !== true) problems.push(`${where}/${c.name}: root filesystem not read-only`);
      const env: Record<string, string> = {};
      const usesConfig = (c.envFrom ?? []).some((e: Obj) => e.configMapRef?.name === "intake-config");
      if (usesConfig) Object.assign(env, configData);
      for (const e of c.env ?? []) {
        if (SECRET_NAME.test(e.name) || e.name === "DATABASE_URL") {
          if (e.value !== undefined || !e.valueFrom?.secretKeyRef) problems.push(`${where}/${c.name}: ${e.name} is a secret written into the manifest (use secretKeyRef)`);
          env[e.name] = e.name === "DATABASE_URL" ? "postgres://intake:x@postgres:5432/intake" : "t".repeat(32);
        } else env[e.name] = String(e.value ?? "");
      }
      for (const name of unknownVariables((c.env ?? []).map((e: Obj) => e.name))) problems.push(`${where}/${c.name}: sets ${name}, which no Intake process reads`);
      const isMigration = (c.command ?? []).some((x: string) => x.includes("migrate-cli.ts"));
      if (isMigration) {
        try {
          loadDatabaseConfig(env);
        } catch (err) {
          problems.push(`${where}/${c.name}: ${(err as Error).message}`);
        }
      } else {
        if (env.NODE_ENV !== "production") problems.push(`${where}/${c.name}: NODE_ENV is not production`);
        for (const p of configProblems({ S3_BUCKET: undefined, ...env })) problems.push(`${where}/${c.name}: ${p}`);
      }
    }
  }

  // The API: Deployment, Service, HPA on CPU, PodDisruptionBudget.
  const api = byKind("Deployment").find((d) => intakeContainers(podSpec(d)!).some((c) => (c.command ?? []).includes("services/api/src/main.ts")));
  if (!api) problems.push("no API Deployment");
  else {
    const labels = api.spec.template.metadata.labels;
    const selects = (sel: Obj | undefined) => !!sel && Object.entries(sel).every(([k, v]) => labels[k] === v);
    if (!byKind("Service").some((s) => selects(s.spec.selector))) problems.push("no Service for the API");
    if (!byKind("PodDisruptionBudget").some((p) => selects(p.spec.selector?.matchLabels))) problems.push("no PodDisruptionBudget for the API");
    const hpa = byKind("HorizontalPodAutoscaler").find((h) => h.spec.scaleTargetRef.name === api.metadata.name);
    if (!hpa?.spec.metrics?.some((m: Obj) => m.type === "Resource" && m.resource?.name === "cpu")) problems.push("no HPA on CPU for the API");
  }

  // Each worker role its own Deployment; each but the reaper scaled by KEDA on its backlog.
  // On a Redis Cluster (REDIS_CLUSTER_NODES) the prefix defaults to "{intake}" and KEDA needs
  // its redis-cluster trigger, on the same nodes (the plain redis one talks to one server).
  const clusterNodes = configData.REDIS_CLUSTER_NODES;
  const prefix = configData.QUEUE_PREFIX ?? (clusterNodes ? "{intake}" : "intake");
  const nodeList = (v: string | undefined) => (v ?? "").split(",").map((n) => n.trim().replace(/^rediss?:\/\/([^@]*@)?/, "")).sort().join(",");
  const queues: Record<string, string> = { ...Object.fromEntries(STAGES.map((s) => [s, queueName(s)])), recheck: RECHECK_QUEUE, rescan: RESCAN_QUEUE, webhooks: WEBHOOK_QUEUE };
  for (const role of ROLES) {
    const deployments = byKind("Deployment").filter((d) => intakeContainers(podSpec(d)!).some((c) => (c.env ?? []).some((e: Obj) => e.name === "WORKER_ROLES" && e.value === role)));
    if (deployments.length !== 1) {
      problems.push(`worker role ${role}: ${deployments.length} Deployments run it (want 1)`);
      continue;
    }
    const d = deployments[0];
    const scaled = byKind("ScaledObject").filter((s) => s.spec.scaleTargetRef?.name === d.metadata.name);
    if (role === "reaper") {
      if (d.spec.replicas !== 1 || scaled.length || byKind("HorizontalPodAutoscaler").some((h) => h.spec.scaleTargetRef.name === d.metadata.name)) problems.push("the reaper must be a single replica, not autoscaled");
      continue;
    }
    if (scaled.length !== 1) {
      problems.push(`worker role ${role}: ${scaled.length} ScaledObjects (want 1)`);
      continue;
    }
    const triggers: Obj[] = scaled[0].spec.triggers ?? [];
    if (role === "ingest") {
      if (!triggers.some((t) => t.type === "aws-sqs-queue")) problems.push("worker role ingest: not scaled on the SQS queue");
      continue;
    }
    const want = `${prefix}:${queues[role]}:wait`;
    const type = clusterNodes ? "redis-cluster" : "redis";
    const trigger = triggers.find((t) => t.type === type && t.metadata?.listName === want);
    if (!trigger) problems.push(`worker role ${role}: not scaled on its BullMQ wait list ${want} (a ${type} trigger)`);
    else if (clusterNodes && nodeList(trigger.metadata.addresses) !== nodeList(clusterNodes)) problems.push(`worker role ${role}: its redis-cluster trigger's addresses ${trigger.metadata.addresses} are not REDIS_CLUSTER_NODES ${clusterNodes}`);
  }

  // clamd: its own Deployment on the intake-clamd image (infra/clamd/Dockerfile: the stock
  // clamav/clamav fails the workers' limits probe), freshclam beside it, a readiness probe,
  // the clamd container on the image's entrypoint (it writes the container signatures), non-root.
  const clamd = byKind("Deployment").find((d) => d.metadata.name === "clamd");
  const clamdPod: Obj = clamd?.spec.template.spec ?? {};
  const containers: Obj[] = clamdPod.containers ?? [];
  for (const c of [...containers, ...(clamdPod.initContainers ?? [])]) {
    if (c.image !== CLAMD_IMAGE) problems.push(`clamd/${c.name}: runs ${c.image}, not ${CLAMD_IMAGE} (infra/clamd/Dockerfile)`);
    const runAsNonRoot = c.securityContext?.runAsNonRoot ?? clamdPod.securityContext?.runAsNonRoot;
    const uid = c.securityContext?.runAsUser ?? clamdPod.securityContext?.runAsUser;
    if (runAsNonRoot !== true || uid === undefined || uid === 0) problems.push(`clamd/${c.name}: not runAsNonRoot with the image's clamav uid`);
  }
  const daemon = containers.find((c) => !(c.command ?? []).includes("freshclam"));
  if (!daemon?.readinessProbe) problems.push("clamd: no clamd container with a readiness probe");
  else if (daemon.command || daemon.args) problems.push(`clamd/${daemon.name}: command/args replace the image's entrypoint, which writes the container signatures`);
  if (!containers.some((c) => (c.command ?? []).includes("freshclam"))) problems.push("clamd: no freshclam sidecar");
  // Custom rules: the ConfigMap intake-clamd-rules, optional, read-only at /rules (where the image's intake-rules reads).
  const rulesMount = (daemon?.volumeMounts ?? []).find((m: Obj) => m.mountPath === "/rules");
  const rulesVolume = (clamdPod.volumes ?? []).find((v: Obj) => v.name === rulesMount?.name);
  if (!rulesMount) problems.push("clamd: nothing mounted at /rules (custom rules could not be loaded)");
  else if (rulesMount.readOnly !== true) problems.push("clamd: /rules is not mounted read-only");
  else if (rulesVolume?.configMap?.name !== "intake-clamd-rules" || rulesVolume.configMap.optional !== true) problems.push("clamd: /rules is not the optional ConfigMap intake-clamd-rules");
  if (configData.CLAMD_HOST && !byKind("Service").some((s) => s.metadata.name === configData.CLAMD_HOST)) problems.push(`CLAMD_HOST ${configData.CLAMD_HOST} is no Service`);

  // The migration Job, and no pod migrating at start.
  if (!byKind("Job").some((j) => intakeContainers(podSpec(j)!).some((c) => (c.command ?? []).some((x: string) => x.includes("migrate-cli.ts"))))) problems.push("no migration Job");
  if (configData.MIGRATE_ON_START !== "false") problems.push("MIGRATE_ON_START is not false: pods would migrate at start");
  return problems;
}

function kustomizationProblems(text: string): string[] {
  const k = parse(text) as { resources?: string[]; configMapGenerator?: { files?: string[] }[]; images?: { name: string; newName?: string; newTag?: string }[] };
  const problems: string[] = [];
  for (const name of ["intake", CLAMD_IMAGE]) if (!(k.images ?? []).some((i) => i.name === name && i.newName && /^\S+$/.test(i.newTag ?? ""))) problems.push(`kustomization: no images entry giving ${name} a registry name and a tag`);
  const listed = new Set((k.resources ?? []).map((r) => `${BASE}/${r}`));
  for (const r of listed) if (!repoPathExists(r)) problems.push(`kustomization: ${r} does not exist`);
  for (const f of manifestFiles(BASE)) if (!listed.has(f)) problems.push(`kustomization: ${relative(BASE, f)} is not among its resources`);
  for (const g of k.configMapGenerator ?? []) for (const f of g.files ?? []) if (!repoPathExists(`${BASE}/${f.split("=").pop()}`)) problems.push(`kustomization: generator file ${f} does not exist`);
  return problems;
}

const FILES = manifestFiles("infra/k8s");
const MANIFESTS = FILES.flatMap((f) => documents(f, readRepoFile(f)));
const problemsOf = (all: Manifest[]) => [...all.flatMap(schemaProblems), ...deploymentProblems(all)];

describe("infra/k8s", () => {
  it("every manifest is a kind the schemas know and validates against its schema", () => {
    expect(MANIFESTS.length).toBeGreaterThan(10);
    expect(MANIFESTS.flatMap(schemaProblems)).toEqual([]);
  });

  it("config variables the configuration accepts, secrets from Secrets, the API, each role, clamd and the migration Job as the deployment needs them", () => {
    expect(deploymentProblems(MANIFESTS)).toEqual([]);
  });

  it("the kustomization lists every manifest, and only files that exist", () => {
    expect(kustomizationProblems(readRepoFile(`${BASE}/kustomization.yaml`))).toEqual([]);
  });

  /** A copy of the manifests with one object changed. */
  const changed = (match: (o: Obj) => boolean, edit: (o: Obj) => void): Manifest[] =>
    MANIFESTS.map((m) => {
      const obj = structuredClone(m.obj);
      if (match(obj)) edit(obj);
      return { ...m, obj };
    });
  const named = (kind: string, name: string) => (o: Obj) => o.kind === kind && o.metadata?.name === name;
  const container = (o: Obj) => o.spec.template.spec.containers[0];
  const mutations: [string, () => Manifest[], RegExp][] = [
    ["an unknown kind", () => [...MANIFESTS, { file: "x.yaml", obj: { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } } }], /example\.com\/v1\/Widget is not a kind this test knows/],
    ["a schema violation", () => changed(named("Deployment", "intake-api"), (o) => (o.spec.replicas = "two")), /Deployment intake-api: .*replicas/],
    ["a KEDA field of the wrong type", () => changed(named("ScaledObject", "intake-worker-scan"), (o) => (o.spec.minReplicaCount = "one")), /ScaledObject intake-worker-scan: .*minReplicaCount/],
    ["a ScaledObject without its target", () => changed(named("ScaledObject", "intake-worker-scan"), (o) => delete o.spec.scaleTargetRef), /ScaledObject intake-worker-scan: .*scaleTargetRef/],
    ["a variable no process reads", () => changed(named("ConfigMap", "intake-config"), (o) => (o.data.REDIS_HOST = "redis")), /REDIS_HOST is read by no Intake process/],
    ["a value the configuration refuses", () => changed(named("ConfigMap", "intake-config"), (o) => (o.data.DATABASE_POOL_MAX = "500")), /DATABASE_POOL_MAX/],
    ["a secret in the ConfigMap", () => changed(named("ConfigMap", "intake-config"), (o) => (o.data.METRICS_TOKEN = "x".repeat(20))), /METRICS_TOKEN is a secret/],
    ["a secret written into a pod", () => changed(named("Deployment", "intake-worker-scan"), (o) => container(o).env.push({ name: "AWS_SECRET_ACCESS_KEY", value: "abc" })), /AWS_SECRET_ACCESS_KEY is a secret written into the manifest/],
    ["a container without requests", () => changed(named("Deployment", "intake-worker-finalize"), (o) => delete container(o).resources.requests), /intake-worker-finalize\/worker: no cpu and memory requests/],
    ["a writable root filesystem", () => changed(named("Deployment", "intake-worker-inspect"), (o) => (container(o).securityContext.readOnlyRootFilesystem = false)), /root filesystem not read-only/],
    ["a root pod", () => changed(named("Deployment", "intake-api"), (o) => (o.spec.template.spec.securityContext.runAsNonRoot = false)), /intake-api\/api: not runAsNonRoot/],
    ["the wrong wait list", () => changed(named("ScaledObject", "intake-worker-scan"), (o) => (o.spec.triggers[0].metadata.listName = "bull:intake-scan:wait")), /worker role scan: not scaled on its BullMQ wait list intake:intake-scan:wait/],
    ["an autoscaled reaper", () => changed(named("Deployment", "intake-worker-reaper"), (o) => (o.spec.replicas = 3)), /reaper must be a single replica/],
    ["a role without its Deployment", () => changed(named("Deployment", "intake-worker-webhooks"), (o) => (container(o).env[0].value = "recheck")), /worker role webhooks: 0 Deployments/],
    ["no HPA", () => MANIFESTS.filter((m) => m.obj.kind !== "HorizontalPodAutoscaler"), /no HPA on CPU for the API/],
    ["no PDB", () => MANIFESTS.filter((m) => !named("PodDisruptionBudget", "intake-api")(m.obj)), /no PodDisruptionBudget for the API/],
    ["clamd without freshclam", () => changed(named("Deployment", "clamd"), (o) => o.spec.template.spec.containers.pop()), /no freshclam sidecar/],
    ["clamd without readiness", () => changed(named("Deployment", "clamd"), (o) => delete container(o).readinessProbe), /no clamd container with a readiness probe/],
    ["the stock clamav/clamav image", () => changed(named("Deployment", "clamd"), (o) => (container(o).image = "clamav/clamav:1.4.5")), /clamd\/clamd: runs clamav\/clamav:1\.4\.5, not intake-clamd/],
    ["a stock freshclam sidecar", () => changed(named("Deployment", "clamd"), (o) => (o.spec.template.spec.containers[1].image = "clamav/clamav:1.4.5")), /clamd\/freshclam: runs clamav\/clamav:1\.4\.5/],
    ["clamd's entrypoint replaced (no container signatures)", () => changed(named("Deployment", "clamd"), (o) => (container(o).command = ["clamd", "--foreground"])), /clamd\/clamd: command\/args replace the image's entrypoint/],
    ["clamd without its rules", () => changed(named("Deployment", "clamd"), (o) => (container(o).volumeMounts = container(o).volumeMounts.filter((m: Obj) => m.mountPath !== "/rules"))), /clamd: nothing mounted at \/rules/],
    ["clamd's rules writable", () => changed(named("Deployment", "clamd"), (o) => (container(o).volumeMounts.find((m: Obj) => m.mountPath === "/rules").readOnly = false)), /clamd: \/rules is not mounted read-only/],
    ["a rules ConfigMap that must exist", () => changed(named("Deployment", "clamd"), (o) => (o.spec.template.spec.volumes.find((v: Obj) => v.name === "rules").configMap.optional = false)), /not the optional ConfigMap intake-clamd-rules/],
    ["clamd as root", () => changed(named("Deployment", "clamd"), (o) => (o.spec.template.spec.securityContext.runAsUser = 0)), /clamd\/clamd: not runAsNonRoot/],
    ["no migration Job", () => MANIFESTS.filter((m) => m.obj.kind !== "Job"), /no migration Job/],
    ["pods migrating at start", () => changed(named("ConfigMap", "intake-config"), (o) => (o.data.MIGRATE_ON_START = "true")), /MIGRATE_ON_START is not false/],
  ];
  for (const [what, mutate, problem] of mutations) {
    it(`catches ${what}`, () => {
      expect(problemsOf(mutate()).join("\n")).toMatch(problem);
    });
  }

  it("catches a kustomization that misses a manifest or names a missing one", () => {
    const k = readRepoFile(`${BASE}/kustomization.yaml`);
    expect(kustomizationProblems(k.replace("  - clamd.yaml\n", "")).join("\n")).toMatch(/clamd\.yaml is not among its resources/);
    expect(kustomizationProblems(k.replace("  - clamd.yaml\n", "  - clamd.yaml\n  - redis.yaml\n")).join("\n")).toMatch(/redis\.yaml does not exist/);
    expect(kustomizationProblems(k.replace(/  - name: intake-clamd\n[^\n]*\n[^\n]*\n/, "")).join("\n")).toMatch(/no images entry giving intake-clamd a registry name and a tag/);
  });
});

/**
 * infra/k8s/components/redis-cluster: the base with its patches applied (as kustomize would:
 * this helper applies the same RFC 6902 operations), validated by the same rules.
 */
const COMPONENT = "infra/k8s/components/redis-cluster";
interface ComponentFile {
  kind?: string;
  patches?: { target: { kind: string; name: string }; patch: string }[];
}
function withComponent(base: Manifest[], component: ComponentFile): Manifest[] {
  const patches = component.patches ?? [];
  for (const p of patches) if (!base.some((m) => m.obj.kind === p.target.kind && m.obj.metadata?.name === p.target.name)) throw new Error(`${COMPONENT}: patch target ${p.target.kind}/${p.target.name} is in no base manifest`);
  return base.map((m) => {
    let obj = m.obj;
    for (const p of patches) if (p.target.kind === obj.kind && p.target.name === obj.metadata?.name) obj = applyPatch(obj, parse(p.patch) as PatchOp[]);
    return { ...m, obj };
  });
}

describe("infra/k8s/components/redis-cluster", () => {
  const BASE_MANIFESTS = MANIFESTS.filter((m) => m.file.startsWith(`${BASE}/`));
  const component = parse(readRepoFile(`${COMPONENT}/kustomization.yaml`)) as ComponentFile;
  const clustered = withComponent(BASE_MANIFESTS, component);
  const config = (all: Manifest[]) => all.find((m) => m.obj.kind === "ConfigMap" && m.obj.metadata.name === "intake-config")!.obj.data as Record<string, string>;

  it("is a kustomize Component; the overlay applies it to the base", () => {
    expect(component.kind).toBe("Component");
    const overlay = parse(readRepoFile("infra/k8s/overlays/redis-cluster/kustomization.yaml")) as { resources?: string[]; components?: string[] };
    expect(overlay).toMatchObject({ resources: ["../../base"], components: ["../../components/redis-cluster"] });
  });

  it("switches the config to the cluster (nodes, a hash-tagged prefix, no REDIS_URL) and every BullMQ trigger to redis-cluster on {intake}:<queue>:wait, validated like the base", () => {
    expect(config(clustered)).toMatchObject({ QUEUE_PREFIX: "{intake}" });
    expect(config(clustered).REDIS_CLUSTER_NODES).toMatch(/^[^,:]+:\d+(,[^,:]+:\d+)+$/);
    expect(config(clustered).REDIS_URL).toBeUndefined();
    expect(clustered.flatMap(schemaProblems)).toEqual([]);
    expect(deploymentProblems(clustered)).toEqual([]);
    const triggers = clustered.filter((m) => m.obj.kind === "ScaledObject").flatMap((m) => m.obj.spec.triggers as Obj[]);
    expect(triggers.filter((t) => t.type === "redis")).toEqual([]);
    expect(triggers.filter((t) => t.type === "redis-cluster").map((t) => t.metadata.listName).sort()).toEqual(["{intake}:intake-finalize:wait", "{intake}:intake-inspect:wait", "{intake}:intake-recheck:wait", "{intake}:intake-rescan:wait", "{intake}:intake-scan:wait", "{intake}:intake-webhooks:wait"]);
    // listLength is the base's, untouched.
    const base = BASE_MANIFESTS.find((m) => m.obj.metadata?.name === "intake-worker-scan" && m.obj.kind === "ScaledObject")!.obj.spec.triggers[0].metadata.listLength;
    expect(clustered.find((m) => m.obj.metadata?.name === "intake-worker-scan" && m.obj.kind === "ScaledObject")!.obj.spec.triggers[0].metadata.listLength).toBe(base);
  });

  const edited = (edit: (c: ComponentFile) => void): ComponentFile => {
    const c = structuredClone(component);
    edit(c);
    return c;
  };
  const patchOf = (c: ComponentFile, name: string) => c.patches!.find((p) => p.target.name === name)!;
  const mutations: [string, () => Manifest[], RegExp][] = [
    ["a role left on the plain redis trigger", () => withComponent(BASE_MANIFESTS, edited((c) => (c.patches = c.patches!.filter((p) => p.target.name !== "intake-worker-scan")))), /worker role scan: not scaled on its BullMQ wait list \{intake\}:intake-scan:wait \(a redis-cluster trigger\)/],
    ["the wait list without the hash tag", () => withComponent(BASE_MANIFESTS, edited((c) => (patchOf(c, "intake-worker-finalize").patch = patchOf(c, "intake-worker-finalize").patch.replace('"{intake}:intake-finalize:wait"', '"intake:intake-finalize:wait"')))), /worker role finalize: not scaled on its BullMQ wait list \{intake\}:intake-finalize:wait/],
    ["a prefix without a hash tag", () => withComponent(BASE_MANIFESTS, edited((c) => (patchOf(c, "intake-config").patch = patchOf(c, "intake-config").patch.replace('value: "{intake}"', "value: intake")))), /QUEUE_PREFIX: "intake" has no hash tag/],
    ["REDIS_URL kept beside the cluster", () => withComponent(BASE_MANIFESTS, edited((c) => (patchOf(c, "intake-config").patch = patchOf(c, "intake-config").patch.replace(/- op: remove\n\s+path: \/data\/REDIS_URL\n/, "")))), /REDIS_URL and REDIS_CLUSTER_NODES: set one, not both/],
    ["a trigger on other nodes than the config's", () => withComponent(BASE_MANIFESTS, edited((c) => (patchOf(c, "intake-worker-rescan").patch = patchOf(c, "intake-worker-rescan").patch.replace(/(addresses\n\s+value: )"[^"]+"/, '$1"redis-other:6379"')))), /worker role rescan: its redis-cluster trigger's addresses redis-other:6379 are not REDIS_CLUSTER_NODES/],
  ];
  for (const [what, build, problem] of mutations) {
    it(`catches ${what}`, () => {
      expect(deploymentProblems(build()).join("\n")).toMatch(problem);
    });
  }

  it("fails to build, as kustomize would, when the base's triggers change shape (its test operations) or a target is gone", () => {
    const moved = BASE_MANIFESTS.map((m) => (m.obj.kind === "ScaledObject" && m.obj.metadata.name === "intake-worker-inspect" ? { ...m, obj: { ...m.obj, spec: { ...m.obj.spec, triggers: [{ type: "cpu", metadata: { value: "60" } }, ...m.obj.spec.triggers] } } } : m));
    expect(() => withComponent(moved, component)).toThrow(/test \/spec\/triggers\/0\/type/);
    expect(() => withComponent(BASE_MANIFESTS.filter((m) => m.obj.metadata?.name !== "intake-worker-webhooks"), component)).toThrow(/ScaledObject\/intake-worker-webhooks is in no base manifest/);
  });
});
