import { Match, type Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { synthStack, TEST_PROPS } from "./fixture.ts";
import { METRIC_NAMESPACE, QUEUE_JOBS_METRIC } from "./queue-metrics.ts";
import { WORKER_ROLES, workerRole } from "./roles.ts";
import { ADMIN_PATHS } from "./web.ts";

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let template: Template;
let bucketId: string;
let queueId: string;
let dlqId: string;

beforeAll(() => {
  const s = synthStack();
  template = s.template;
  bucketId = s.stack.getLogicalId(s.stack.uploads.bucket.node.defaultChild as never);
  queueId = s.stack.getLogicalId(s.stack.events.queue.node.defaultChild as never);
  dlqId = s.stack.getLogicalId(s.stack.events.deadLetterQueue.node.defaultChild as never);
});

const resource = (id: string): Json => template.toJSON().Resources[id];
const ofType = (type: string): [string, Json][] => Object.entries(template.findResources(type));

/** The statements of the inline policy attached to the task role of one process kind. */
function roleStatements(pathPart: string): Json[] {
  const policies = ofType("AWS::IAM::Policy").filter(([id]) => id.startsWith(pathPart) && id.includes("TaskRoleAccess"));
  return policies.flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Json[]);
}
const workerStatements = (role: string) => roleStatements(`Workers${role}`);
/** `<space>/*` the statement's resource names, or "bucket" for the bucket ARN itself. */
function scopeOf(statement: Json): string {
  const r = statement.Resource;
  if (r?.["Fn::GetAtt"]?.[0] === bucketId) return "bucket";
  if (r?.["Fn::Join"]) {
    const [, parts] = r["Fn::Join"];
    expect(parts[0]).toEqual({ "Fn::GetAtt": [bucketId, "Arn"] });
    return String(parts[1]).replace(/^\//, "");
  }
  if (r?.["Fn::GetAtt"]?.[0] === queueId) return "event-queue";
  if (r?.["Fn::GetAtt"]?.[0] === dlqId) return "dead-letter-queue";
  return JSON.stringify(r);
}
/** { scope: actions[] } of a role's statements: what each process kind may do where. */
function grants(statements: Json[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const s of statements) {
    expect(s.Effect).toBe("Allow");
    const scope = scopeOf(s);
    out[scope] = [...(out[scope] ?? []), ...[s.Action].flat()].sort();
  }
  return out;
}

describe("the upload bucket", () => {
  it("blocks public access, encrypts with SSE-S3, disables ACLs and keeps no versions", () => {
    const b = resource(bucketId).Properties;
    expect(b.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(b.BucketEncryption).toEqual({ ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }] });
    expect(b.OwnershipControls).toEqual({ Rules: [{ ObjectOwnership: "BucketOwnerEnforced" }] });
    expect(b.VersioningConfiguration).toBeUndefined();
    expect(b.BucketName).toBe(`intake-test-${TEST_PROPS.env!.account}-${TEST_PROPS.env!.region}`);
  });

  it("refuses plain HTTP and TLS below 1.2 in its bucket policy", () => {
    const [[, policy]] = ofType("AWS::S3::BucketPolicy").filter(([, p]) => p.Properties.Bucket.Ref === bucketId);
    const denies = (policy!.Properties.PolicyDocument.Statement as Json[]).filter((s) => s.Effect === "Deny");
    expect(denies.find((s) => s.Condition?.Bool?.["aws:SecureTransport"] === "false")?.Action).toBe("s3:*");
    expect(denies.find((s) => s.Condition?.NumericLessThan?.["s3:TlsVersion"] === 1.2)).toBeDefined();
  });

  it("allows CORS from the configured origins exactly, for PUT and POST, exposing ETag", () => {
    const rules = resource(bucketId).Properties.CorsConfiguration.CorsRules;
    expect(rules).toEqual([
      {
        Id: "browser-uploads",
        AllowedMethods: ["PUT", "POST"],
        AllowedOrigins: ["https://app.example.com", "https://admin.example.com"],
        AllowedHeaders: ["Content-Type", "Content-MD5", "x-amz-checksum-sha256"],
        ExposedHeaders: ["ETag"],
        MaxAge: 3000,
      },
    ]);
  });

  it("has no CORS rule at all when no origin is configured", () => {
    const bare = synthStack({ corsOrigins: [] });
    const id = bare.stack.getLogicalId(bare.stack.uploads.bucket.node.defaultChild as never);
    expect(bare.template.toJSON().Resources[id].Properties.CorsConfiguration).toBeUndefined();
  });

  it("refuses a wildcard or a path as a CORS origin", () => {
    expect(() => synthStack({ corsOrigins: ["*"] })).toThrow(/CORS origin/);
    expect(() => synthStack({ corsOrigins: ["https://*.example.com"] })).toThrow(/CORS origin/);
    expect(() => synthStack({ corsOrigins: ["https://app.example.com/upload"] })).toThrow(/CORS origin/);
  });

  it("aborts incomplete multipart uploads and expires stray pending/ objects as backstops behind the reaper", () => {
    expect(resource(bucketId).Properties.LifecycleConfiguration.Rules).toEqual([
      { Id: "abort-incomplete-multipart", AbortIncompleteMultipartUpload: { DaysAfterInitiation: 3 }, Status: "Enabled" },
      { Id: "expire-stray-pending", Prefix: "pending/", ExpirationInDays: 7, Status: "Enabled" },
    ]);
  });

  it("expires nothing under quarantine/ or verified/: staging copies are the reaper's sweep's alone (upload-bucket.ts says why no tag rule)", () => {
    const rules = resource(bucketId).Properties.LifecycleConfiguration.Rules as Json[];
    for (const r of rules) {
      // A rule that expires objects names its prefix, and it is pending/; no rule filters on tags.
      if (r.ExpirationInDays !== undefined || r.ExpirationDate !== undefined) expect([r.Id, r.Prefix ?? r.Filter]).toEqual([r.Id, "pending/"]);
      expect([r.Id, r.TagFilters, r.Filter?.TagFilter, r.Filter?.And]).toEqual([r.Id, undefined, undefined, undefined]);
    }
    // The sweep's own grants: it lists the bucket and deletes under quarantine/, and cannot read there.
    const reaper = workerRole("reaper").access;
    expect(reaper.bucket).toContain("s3:ListBucket");
    expect(reaper.objects.quarantine).toEqual(["s3:DeleteObject"]);
  });

  it("refuses a multipart backstop that would abort before the reaper's MULTIPART_TTL_SECONDS", () => {
    expect(() => synthStack({ multipartTtlSeconds: 3 * 86_400 })).toThrow(/abortMultipartAfterDays/);
    expect(() => synthStack({ pendingExpiryDays: 3 })).toThrow(/pendingExpiryDays/);
  });

  it("logs server access to the log bucket, itself private, encrypted and TLS-only", () => {
    const logging = resource(bucketId).Properties.LoggingConfiguration;
    expect(logging.LogFilePrefix).toBe("uploads/");
    const logBucket = resource(logging.DestinationBucketName.Ref).Properties;
    expect(logBucket.PublicAccessBlockConfiguration.BlockPublicAcls).toBe(true);
    expect(logBucket.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm).toBe("AES256");
  });

  it("sends ObjectCreated events under pending/ only, to the event queue", () => {
    const [[, notifications]] = ofType("Custom::S3BucketNotifications");
    expect(notifications!.Properties.BucketName.Ref).toBe(bucketId);
    expect(notifications!.Properties.NotificationConfiguration).toEqual({
      QueueConfigurations: [{ Events: ["s3:ObjectCreated:*"], Filter: { Key: { FilterRules: [{ Name: "prefix", Value: "pending/" }] } }, QueueArn: { "Fn::GetAtt": [queueId, "Arn"] } }],
    });
  });
});

describe("the event queue", () => {
  it("redrives to the dead-letter queue after 5 receives; both use SSE", () => {
    const q = resource(queueId).Properties;
    expect(q.RedrivePolicy).toEqual({ deadLetterTargetArn: { "Fn::GetAtt": [dlqId, "Arn"] }, maxReceiveCount: 5 });
    expect(q.SqsManagedSseEnabled).toBe(true);
    expect(resource(dlqId).Properties.SqsManagedSseEnabled).toBe(true);
  });

  it("lets only this bucket in this account send, and refuses plain HTTP", () => {
    const [[, policy]] = ofType("AWS::SQS::QueuePolicy").filter(([, p]) => p.Properties.Queues[0].Ref === queueId);
    const statements = policy!.Properties.PolicyDocument.Statement as Json[];
    const allows = statements.filter((s) => s.Effect === "Allow");
    expect(allows).toEqual([
      {
        Sid: "OnlyTheUploadBucketSends",
        Effect: "Allow",
        Principal: { Service: "s3.amazonaws.com" },
        Action: "sqs:SendMessage",
        Resource: { "Fn::GetAtt": [queueId, "Arn"] },
        Condition: { ArnEquals: { "aws:SourceArn": { "Fn::GetAtt": [bucketId, "Arn"] } }, StringEquals: { "aws:SourceAccount": "123456789012" } },
      },
    ]);
    expect(statements.find((s) => s.Effect === "Deny")?.Condition).toEqual({ Bool: { "aws:SecureTransport": "false" } });
  });

  it("puts the notification configuration only after the queue policy exists", () => {
    const [[, notifications]] = ofType("Custom::S3BucketNotifications");
    const [[policyId]] = ofType("AWS::SQS::QueuePolicy").filter(([, p]) => p.Properties.Queues[0].Ref === queueId);
    expect(notifications!.DependsOn).toContain(policyId);
  });

  it("alarms on any message in the DLQ and on old events in the queue", () => {
    const alarms = ofType("AWS::CloudWatch::Alarm").map(([, a]) => a.Properties);
    const dlq = alarms.find((a) => a.MetricName === "ApproximateNumberOfMessagesVisible" && a.Dimensions[0].Value["Fn::GetAtt"][0] === dlqId);
    expect(dlq).toMatchObject({ Namespace: "AWS/SQS", Threshold: 0, ComparisonOperator: "GreaterThanThreshold" });
    const age = alarms.find((a) => a.MetricName === "ApproximateAgeOfOldestMessage");
    expect(age).toMatchObject({ Namespace: "AWS/SQS", Threshold: 300, ComparisonOperator: "GreaterThanThreshold" });
    expect(age!.Dimensions[0].Value["Fn::GetAtt"][0]).toBe(queueId);
  });
});

describe("task roles: least privilege per process kind", () => {
  it("API: pending/ for presigned uploads, verified/ reads, nothing under quarantine/, no wildcard action", () => {
    const statements = roleStatements("WebApi");
    expect(grants(statements)).toEqual({
      "pending/*": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
      "verified/*": ["s3:GetObject"],
      bucket: ["s3:ListBucket"],
    });
    const text = JSON.stringify(statements);
    expect(text).not.toContain("quarantine");
    expect(text).not.toMatch(/"s3:\*"|"\*"|sqs:/);
  });

  it("admin: the one reader of quarantine/ (and its delete action), the DLQ depth, nothing else", () => {
    expect(grants(roleStatements("WebAdmin"))).toEqual({
      "quarantine/*": ["s3:DeleteObject", "s3:GetObject"],
      bucket: ["s3:ListBucket"],
      "dead-letter-queue": ["sqs:GetQueueAttributes"],
    });
  });

  it("each worker role holds exactly its stage's grants", () => {
    const expected: Record<string, Record<string, string[]>> = {
      ingest: { "pending/*": ["s3:DeleteObject", "s3:GetObject"], bucket: ["s3:ListBucket"], "event-queue": ["sqs:DeleteMessage", "sqs:ReceiveMessage"] },
      inspect: { "pending/*": ["s3:GetObject"], bucket: ["s3:ListBucket"] },
      scan: { "pending/*": ["s3:GetObject"], bucket: ["s3:ListBucket"] },
      finalize: {
        "pending/*": ["s3:DeleteObject", "s3:GetObject"],
        "verified/*": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
        "quarantine/*": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
        bucket: ["s3:ListBucket"],
      },
      reaper: { "pending/*": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject"], "quarantine/*": ["s3:DeleteObject"], bucket: ["s3:ListBucket", "s3:ListBucketMultipartUploads"] },
      recheck: { "quarantine/*": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"], "verified/*": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"], bucket: ["s3:ListBucket"] },
      webhooks: {},
      rescan: { "verified/*": ["s3:DeleteObject", "s3:GetObject"], "quarantine/*": ["s3:GetObject", "s3:PutObject"], bucket: ["s3:ListBucket"] },
    };
    expect(Object.keys(expected).sort()).toEqual(WORKER_ROLES.map((r) => r.name).sort());
    for (const [role, g] of Object.entries(expected)) expect([role, grants(workerStatements(role))]).toEqual([role, g]);
  });

  it("only the admin, finalize (crash checks, staging copy), recheck (releases) and rescan (a retried move) can read quarantine/", () => {
    const readers = ofType("AWS::IAM::Policy")
      .filter(([id]) => id.includes("TaskRoleAccess"))
      .filter(([, p]) => (p.Properties.PolicyDocument.Statement as Json[]).some((s) => scopeOf(s) === "quarantine/*" && [s.Action].flat().includes("s3:GetObject")))
      .map(([id]) => id.replace(/TaskRoleAccess.*/, ""));
    expect(readers.sort()).toEqual(["WebAdmin", "Workersfinalize", "Workersrecheck", "Workersrescan"]);
  });

  it("only ingest touches the event queue; no role holds a wildcard action or an unscoped resource", () => {
    for (const [id, p] of ofType("AWS::IAM::Policy").filter(([id]) => id.includes("TaskRoleAccess"))) {
      for (const s of p.Properties.PolicyDocument.Statement as Json[]) {
        for (const a of [s.Action].flat()) expect([id, a]).not.toEqual([id, expect.stringMatching(/\*/)]);
        expect([id, s.Resource]).not.toEqual([id, "*"]);
        if (scopeOf(s) === "event-queue") expect(id.startsWith("Workersingest")).toBe(true);
      }
    }
  });

  it("the migration task and the webhooks role hold no storage or queue grants", () => {
    expect(roleStatements("Migrate")).toEqual([]);
    expect(workerStatements("webhooks")).toEqual([]);
  });
});

/** The container definition of the task whose logical id starts with `prefix`. */
function container(prefix: string, name = "intake"): Json {
  const [[, task]] = ofType("AWS::ECS::TaskDefinition").filter(([id]) => id.startsWith(prefix));
  return (task!.Properties.ContainerDefinitions as Json[]).find((c) => c.Name === name)!;
}
const env = (c: Json) => Object.fromEntries((c.Environment as Json[]).map((e) => [e.Name, e.Value]));

describe("compute", () => {
  it("runs every worker role as its own service with WORKER_ROLES=<role> and the worker command", () => {
    for (const role of WORKER_ROLES) {
      const c = container(`Workers${role.name}Task`);
      expect(c.Command).toEqual(["node", "services/worker/src/main.ts"]);
      expect(env(c).WORKER_ROLES).toBe(role.name);
    }
    expect(container("WebApiTask").Command).toEqual(["node", "services/api/src/main.ts"]);
    expect(container("MigrateTask").Command).toEqual(["node", "services/api/src/migrate-cli.ts"]);
  });

  it("hands DATABASE_URL and REDIS_URL (and METRICS_TOKEN) as Secrets Manager secrets, never as plain values", () => {
    for (const [id, task] of ofType("AWS::ECS::TaskDefinition")) {
      for (const c of task.Properties.ContainerDefinitions as Json[]) {
        const names = (c.Environment ?? []).map((e: Json) => e.Name);
        for (const secret of ["DATABASE_URL", "REDIS_URL", "METRICS_TOKEN", "OIDC_CLIENT_SECRET"]) expect([id, names]).not.toEqual([id, expect.arrayContaining([secret])]);
      }
    }
    const secrets = Object.fromEntries((container("WebAdminTask").Secrets as Json[]).map((s) => [s.Name, s.ValueFrom]));
    expect(secrets).toEqual({ DATABASE_URL: TEST_PROPS.database.urlSecretArn, REDIS_URL: TEST_PROPS.redis.urlSecretArn, METRICS_TOKEN: TEST_PROPS.metricsTokenSecretArn });
    expect(Object.keys(Object.fromEntries((container("WebApiTask").Secrets as Json[]).map((s) => [s.Name, 1])))).toEqual(["DATABASE_URL", "REDIS_URL"]);
  });

  it("serves HTTPS with the given certificate and redirects HTTP to it", () => {
    const listeners = ofType("AWS::ElasticLoadBalancingV2::Listener").map(([, l]) => l.Properties);
    const httpsListener = listeners.find((l) => l.Port === 443)!;
    expect(httpsListener).toMatchObject({ Protocol: "HTTPS", Certificates: [{ CertificateArn: TEST_PROPS.certificateArn }] });
    expect(listeners.find((l) => l.Port === 80)!.DefaultActions[0]).toMatchObject({ Type: "redirect", RedirectConfig: { Protocol: "HTTPS", Port: "443" } });
  });

  it("falls back to a plain HTTP listener without a certificate", () => {
    const http = synthStack({ certificateArn: undefined });
    const listeners = Object.values(http.template.findResources("AWS::ElasticLoadBalancingV2::Listener")).map((l) => l.Properties);
    expect(listeners.map((l) => [l.Port, l.Protocol])).toEqual([[80, "HTTP"]]);
  });

  it("routes the admin paths to the admin service and answers 404 for /metrics", () => {
    const rules = ofType("AWS::ElasticLoadBalancingV2::ListenerRule").map(([, r]) => r.Properties);
    const admin = rules.find((r) => r.Priority === 10)!;
    expect(admin.Conditions).toEqual([{ Field: "path-pattern", PathPatternConfig: { Values: [...ADMIN_PATHS] } }]);
    const [[adminTargets]] = ofType("AWS::ElasticLoadBalancingV2::TargetGroup").filter(([id]) => id.startsWith("WebAdminTargets"));
    expect(admin.Actions[0].TargetGroupArn.Ref).toBe(adminTargets);
    expect(rules.find((r) => r.Priority === 20)).toMatchObject({ Conditions: [{ Field: "path-pattern", PathPatternConfig: { Values: ["/metrics"] } }], Actions: [{ Type: "fixed-response", FixedResponseConfig: { StatusCode: "404" } }] });
  });

  it("scales the API on CPU", () => {
    template.hasResourceProperties("AWS::ApplicationAutoScaling::ScalingPolicy", {
      PolicyType: "TargetTrackingScaling",
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({ PredefinedMetricSpecification: { PredefinedMetricType: "ECSServiceAverageCPUUtilization" }, TargetValue: 60 }),
    });
  });

  it("scales ingest on the event queue's visible messages and each BullMQ role on its queue's waiting count", () => {
    const alarms = ofType("AWS::CloudWatch::Alarm").map(([, a]) => a.Properties);
    const ingest = alarms.filter((a) => a.MetricName === "ApproximateNumberOfMessagesVisible" && a.Dimensions[0].Value["Fn::GetAtt"][0] === queueId);
    expect(ingest.length).toBeGreaterThanOrEqual(2); // scale-out and scale-in alarms of the step policy
    for (const role of WORKER_ROLES) {
      if (role.scaling.signal !== "bullmq-waiting") continue;
      const queue = role.scaling.queue;
      const own = alarms.filter((a) => a.Namespace === METRIC_NAMESPACE && a.MetricName === QUEUE_JOBS_METRIC && a.Dimensions.some((d: Json) => d.Name === "queue" && d.Value === queue));
      expect([role.name, own.length]).toEqual([role.name, 2]);
      for (const a of own) expect(a.Dimensions).toEqual(expect.arrayContaining([{ Name: "state", Value: "waiting" }]));
      for (const a of own) expect([role.name, (a.AlarmActions as Json[])[0].Ref]).toEqual([role.name, expect.stringMatching(new RegExp(`^Workers${role.name}ServiceTaskCount`))]);
    }
  });

  it("publishes that metric: the collector sidecar scrapes the admin API and writes intake_queue_jobs to the Intake namespace", () => {
    const c = container("WebAdminTask", "queue-metrics");
    const config = env(c).AOT_CONFIG_CONTENT;
    // Fn::Join of literal text and the log group's Ref: the literal parts are the configuration.
    const text = typeof config === "string" ? config : (config["Fn::Join"][1] as unknown[]).map((p) => (typeof p === "string" ? p : "<token>")).join("");
    expect(text).toContain(`namespace: ${METRIC_NAMESPACE}`);
    expect(text).toContain(`metric_name_selectors: ["${QUEUE_JOBS_METRIC}"]`);
    expect(text).toContain("dimensions: [[queue, state]]");
    expect(text).toContain("credentials: ${env:METRICS_TOKEN}");
    expect(c.Secrets).toEqual([{ Name: "METRICS_TOKEN", ValueFrom: TEST_PROPS.metricsTokenSecretArn }]);
  });

  it("keeps the reaper at one task, unscaled", () => {
    const [[, reaper]] = ofType("AWS::ECS::Service").filter(([id]) => id.startsWith("WorkersreaperService"));
    expect(reaper!.Properties.DesiredCount).toBe(1);
    const targets = ofType("AWS::ApplicationAutoScaling::ScalableTarget").filter(([id]) => id.startsWith("WorkersreaperService"));
    expect(targets).toEqual([]);
  });

  it("runs clamd with 4 GiB behind Cloud Map, reachable on 3310 only from the scanning workers and the admin service", () => {
    const [[, task]] = ofType("AWS::ECS::TaskDefinition").filter(([id]) => id.startsWith("ClamdTask"));
    expect(task!.Properties).toMatchObject({ Cpu: "1024", Memory: "4096" });
    expect(task!.Properties.ContainerDefinitions[0].Image).toBe(TEST_PROPS.clamdImage);
    template.hasResourceProperties("AWS::ServiceDiscovery::Service", { Name: "clamd" });
    const [[clamdSg]] = ofType("AWS::EC2::SecurityGroup").filter(([id]) => id.startsWith("ClamdSg"));
    const ingress = ofType("AWS::EC2::SecurityGroupIngress").filter(([, r]) => r.Properties.GroupId?.["Fn::GetAtt"]?.[0] === clamdSg).map(([, r]) => r.Properties);
    for (const r of ingress) expect([r.FromPort, r.ToPort]).toEqual([3310, 3310]);
    const sources = ingress.map((r) => String(r.SourceSecurityGroupId["Fn::GetAtt"][0]).replace(/Sg[0-9A-F]{8}$/, "")).sort();
    expect(sources).toEqual(["WebAdmin", ...WORKER_ROLES.filter((r) => r.access.clamd).map((r) => `Workers${r.name}`)].sort());
    expect(resource(clamdSg).Properties.SecurityGroupIngress).toBeUndefined();
    for (const role of WORKER_ROLES) expect([role.name, env(container(`Workers${role.name}Task`)).CLAMD_HOST]).toEqual([role.name, role.access.clamd ? "clamd.intake.internal" : undefined]);
  });

  it("opens the imported PostgreSQL and Redis security groups to each Intake task on their ports", () => {
    const ingress = ofType("AWS::EC2::SecurityGroupIngress").map(([, r]) => r.Properties);
    const toDb = ingress.filter((r) => r.GroupId === TEST_PROPS.database.securityGroupId);
    const toRedis = ingress.filter((r) => r.GroupId === TEST_PROPS.redis.securityGroupId);
    const processes = 2 + WORKER_ROLES.length + 1; // api, admin, workers, migrate
    expect(toDb.length).toBe(processes);
    expect(toRedis.length).toBe(processes);
    for (const r of toDb) expect([r.FromPort, r.ToPort]).toEqual([5432, 5432]);
    for (const r of toRedis) expect([r.FromPort, r.ToPort]).toEqual([6379, 6379]);
  });
});
