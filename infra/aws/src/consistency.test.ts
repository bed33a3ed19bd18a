import { METRICS } from "@intake/metrics";
import { queueName, RECHECK_QUEUE, RESCAN_QUEUE, STAGES } from "@intake/pipeline";
import { CONFIG_VARIABLES, loadConfig } from "@intake/runtime";
import { WEBHOOK_QUEUE } from "@intake/webhooks";
import { ROLES } from "@intake/worker";
import { beforeAll, describe, expect, it } from "vitest";
import { synthStack, TEST_PROPS } from "./fixture.ts";
import { QUEUE_JOBS_METRIC } from "./queue-metrics.ts";
import { WORKER_ROLES } from "./roles.ts";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

// The stack names things the code defines elsewhere: each is checked against its source here.
let containers: { task: string; name: string; environment: Record<string, unknown>; secrets: string[] }[];
beforeAll(() => {
  const { template } = synthStack();
  containers = Object.entries(template.findResources("AWS::ECS::TaskDefinition")).flatMap(([task, t]) =>
    (t.Properties.ContainerDefinitions as Json[]).map((c) => ({
      task,
      name: c.Name,
      environment: Object.fromEntries((c.Environment ?? []).map((e: Json) => [e.Name, e.Value])),
      secrets: (c.Secrets ?? []).map((s: Json) => s.Name),
    })),
  );
});

describe("the stack against the code it deploys", () => {
  it("has a service for every worker role the worker knows, and none it does not", () => {
    const infra = WORKER_ROLES.map((r) => r.name);
    expect([...infra].sort()).toEqual([...ROLES].sort());
  });

  it("scales each stage role on the BullMQ queue that role consumes", () => {
    const byRole = Object.fromEntries(WORKER_ROLES.map((r) => [r.name, r.scaling.signal === "bullmq-waiting" ? r.scaling.queue : r.scaling.signal]));
    for (const stage of STAGES) expect(byRole[stage]).toBe(queueName(stage));
    expect(byRole.recheck).toBe(RECHECK_QUEUE);
    expect(byRole.rescan).toBe(RESCAN_QUEUE);
    expect(byRole.webhooks).toBe(WEBHOOK_QUEUE);
    expect(byRole.ingest).toBe("event-queue");
  });

  it("alarms on the gauge the API really exports", () => {
    expect(QUEUE_JOBS_METRIC).toBe(METRICS.queueJobs.name);
    expect(METRICS.queueJobs.labelNames).toEqual(["queue", "state"]);
    expect(METRICS.queueJobs.exportedBy).toContain("api");
  });

  it("sets only variables the configuration reads, on the Intake containers", () => {
    const intake = containers.filter((c) => c.name === "intake" && !c.task.startsWith("Clamd"));
    expect(intake.length).toBe(2 + WORKER_ROLES.length + 1);
    for (const c of intake) for (const name of [...Object.keys(c.environment), ...c.secrets]) expect([c.task, name, CONFIG_VARIABLES.includes(name)]).toEqual([c.task, name, true]);
  });

  it("gives each process an environment the configuration loads in production", () => {
    // Values CloudFormation resolves at deploy time, and the secrets, stand in as samples.
    const samples: Record<string, string> = {
      S3_BUCKET: "intake-test-123456789012-eu-west-1",
      SQS_QUEUE_URL: "https://sqs.eu-west-1.amazonaws.com/123456789012/intake-events",
      SQS_DLQ_URL: "https://sqs.eu-west-1.amazonaws.com/123456789012/intake-dlq",
      DATABASE_URL: "postgres://intake:secret@db.internal:5432/intake",
      REDIS_URL: "rediss://:secret@redis.internal:6379",
      METRICS_TOKEN: "0123456789abcdef0123456789abcdef",
    };
    for (const c of containers.filter((x) => x.name === "intake" && !x.task.startsWith("Clamd") && !x.task.startsWith("Migrate"))) {
      const source: Record<string, string> = {};
      for (const [k, v] of Object.entries(c.environment)) source[k] = typeof v === "string" ? v : samples[k]!;
      for (const k of c.secrets) source[k] = samples[k]!;
      const role = source.WORKER_ROLES;
      const config = loadConfig(source);
      expect(config.env).toBe("production");
      expect(config.storage.bucket).toBe(samples.S3_BUCKET);
      if (role) expect(config.worker.roles).toEqual([role]);
    }
    expect(TEST_PROPS.corsOrigins.length).toBeGreaterThan(0);
  });
});
