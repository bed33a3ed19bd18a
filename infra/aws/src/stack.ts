import { CfnOutput, Stack, type StackProps } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecr from "aws-cdk-lib/aws-ecr";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import type { Construct } from "constructs";
import { StorageEventQueue } from "./event-queue.ts";
import { IntakeProcess, type ProcessContext } from "./process.ts";
import { MIGRATE_ACCESS } from "./roles.ts";
import { suppressFindings } from "./suppressions.ts";
import { UploadBucket } from "./upload-bucket.ts";
import { WebTier } from "./web.ts";
import { CLAMD_SERVICE_NAME, ClamdService, WorkerServices } from "./workers.ts";

/** The one Intake image (the repository's Dockerfile): an ECR repository and tag, or a full image URI. */
export type ImageSource = { ecrRepository: string; tag: string } | { imageUri: string };

/**
 * PostgreSQL and Redis are imported, not created: they hold the uploads' records and the
 * queues, outlive any release of this stack (a stack deleted or replaced must not take
 * them along), and their durability choices (RDS or Aurora; ElastiCache with replicas or
 * MemoryDB; Redis must run maxmemory-policy noeviction with persistence, PITFALLS.md) are
 * the site's. The stack gets each as a Secrets Manager secret holding the whole URL
 * (DATABASE_URL postgres://..., REDIS_URL rediss://...) and, optionally, its security group
 * to open to every Intake task.
 */
export interface DataStore {
  urlSecretArn: string;
  securityGroupId?: string;
  port: number;
}

export interface IntakeStackProps extends StackProps {
  /** The bucket is named <prefix>-<account>-<region>. */
  bucketNamePrefix: string;
  corsOrigins: readonly string[];
  image: ImageSource;
  /**
   * The intake-clamd image (infra/clamd/Dockerfile, pushed to a registry the tasks can pull
   * from): clamav/clamav with infra/clamd's clamd.conf, rendered from the MAX_UPLOAD_BYTES the
   * workers use, and Intake's container signatures. The stock clamav/clamav image fails the
   * workers' limits probe and they refuse to start (RUNBOOK, "The clamd image").
   */
  clamdImage: string;
  vpc: { vpcId: string; availabilityZones: string[]; privateSubnetIds: string[]; publicSubnetIds: string[] };
  database: DataStore;
  redis: DataStore;
  /** METRICS_TOKEN (>= 16 characters) for the admin service's /metrics, read by the collector sidecar. */
  metricsTokenSecretArn: string;
  certificateArn?: string;
  /** PUBLIC_URL: the API's address as clients see it. */
  publicUrl?: string;
  /** MULTIPART_TTL_SECONDS and PENDING_GRACE_SECONDS for the API and the reaper; the lifecycle backstops must be longer. */
  multipartTtlSeconds?: number;
  pendingGraceSeconds?: number;
  abortMultipartAfterDays?: number;
  pendingExpiryDays?: number;
  maxReceiveCount?: number;
  maxEventAgeSeconds?: number;
  api?: { minCount: number; maxCount: number; cpuTargetPercent: number };
  clamd?: { minCount: number; maxCount: number };
  collectorImage?: string;
}

const DAY = 86_400;

/**
 * Feature flags the app runs with (app.ts and the tests): server access logs delivered
 * through a bucket policy, so the log bucket can keep ACLs disabled (BucketOwnerEnforced).
 */
export const APP_CONTEXT = { "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": true } as const;

export class IntakeStack extends Stack {
  readonly uploads: UploadBucket;
  readonly events: StorageEventQueue;
  readonly web: WebTier;
  readonly workers: WorkerServices;
  readonly clamd: ClamdService;
  readonly migrate: IntakeProcess;

  constructor(scope: Construct, id: string, props: IntakeStackProps) {
    super(scope, id, props);
    const multipartTtl = props.multipartTtlSeconds ?? DAY;
    const pendingGrace = props.pendingGraceSeconds ?? 3600;
    const abortAfterDays = props.abortMultipartAfterDays ?? 3;
    if (abortAfterDays * DAY <= multipartTtl) throw new Error(`abortMultipartAfterDays (${abortAfterDays}) must be longer than MULTIPART_TTL_SECONDS (${multipartTtl} s): the lifecycle rule is the reaper's backstop, not its replacement`);

    this.uploads = new UploadBucket(this, "Storage", {
      bucketName: `${props.bucketNamePrefix}-${this.account}-${this.region}`,
      corsOrigins: props.corsOrigins,
      abortMultipartAfterDays: abortAfterDays,
      pendingExpiryDays: props.pendingExpiryDays ?? 7,
    });
    this.events = new StorageEventQueue(this, "Events", { maxReceiveCount: props.maxReceiveCount ?? 5, maxMessageAgeSeconds: props.maxEventAgeSeconds ?? 300 });
    this.uploads.bucket.addEventNotification(s3.EventType.OBJECT_CREATED, this.events.destinationFor(this.uploads.bucket, this.account), { prefix: "pending/" });

    const vpc = ec2.Vpc.fromVpcAttributes(this, "Vpc", props.vpc);
    const cluster = new ecs.Cluster(this, "Cluster", { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED, defaultCloudMapNamespace: { name: "intake.internal", vpc } });
    const secret = (id: string, arn: string) => secretsmanager.Secret.fromSecretCompleteArn(this, id, arn);
    const store = (id: string, s: DataStore) => (s.securityGroupId ? [{ securityGroup: ec2.SecurityGroup.fromSecurityGroupId(this, id, s.securityGroupId, { mutable: true }), port: s.port }] : []);
    const ctx: ProcessContext = {
      cluster,
      vpc,
      image: "imageUri" in props.image ? ecs.ContainerImage.fromRegistry(props.image.imageUri) : ecs.ContainerImage.fromEcrRepository(ecr.Repository.fromRepositoryName(this, "Repo", props.image.ecrRepository), props.image.tag),
      logGroup: new logs.LogGroup(this, "Logs", { retention: logs.RetentionDays.ONE_MONTH }),
      targets: { bucket: this.uploads.bucket, eventQueue: this.events.queue, deadLetterQueue: this.events.deadLetterQueue },
      environment: {
        NODE_ENV: "production",
        LOG_LEVEL: "info",
        AWS_REGION: this.region,
        STORAGE_KIND: "aws",
        S3_BUCKET: this.uploads.bucket.bucketName,
        SQS_QUEUE_URL: this.events.queue.queueUrl,
        MULTIPART_TTL_SECONDS: String(multipartTtl),
        PENDING_GRACE_SECONDS: String(pendingGrace),
        // Many processes share PostgreSQL's connections (max_connections 100 by default).
        DATABASE_POOL_MAX: "5",
        ...(props.publicUrl ? { PUBLIC_URL: props.publicUrl } : {}),
        ...(props.corsOrigins.length ? { CORS_ORIGINS: props.corsOrigins.join(",") } : {}),
      },
      databaseUrl: secret("DatabaseUrl", props.database.urlSecretArn),
      redisUrl: secret("RedisUrl", props.redis.urlSecretArn),
      dataStores: [...store("DatabaseSg", props.database), ...store("RedisSg", props.redis)],
    };

    const clamdHost = `${CLAMD_SERVICE_NAME}.intake.internal`;
    this.clamd = new ClamdService(this, "Clamd", ctx, { image: props.clamdImage, ...(props.clamd ?? { minCount: 2, maxCount: 6 }) });
    this.web = new WebTier(this, "Web", ctx, {
      certificateArn: props.certificateArn,
      logBucket: this.uploads.logBucket,
      metricsToken: secret("MetricsToken", props.metricsTokenSecretArn),
      clamd: this.clamd,
      clamdHost,
      region: this.region,
      api: props.api ?? { minCount: 2, maxCount: 8, cpuTargetPercent: 60 },
      adminCount: 1,
      collectorImage: props.collectorImage,
    });
    this.workers = new WorkerServices(this, "Workers", ctx, { clamdHost, eventQueueMetric: this.events.queue.metricApproximateNumberOfMessagesVisible({ statistic: "Maximum" }), clamd: this.clamd });
    // Run before each release (RUNBOOK): aws ecs run-task with this task definition.
    this.migrate = new IntakeProcess(this, "Migrate", ctx, { kind: "migrate", access: MIGRATE_ACCESS, command: ["node", "services/api/src/migrate-cli.ts"], cpu: 256, memoryMiB: 512 });

    new CfnOutput(this, "BucketName", { value: this.uploads.bucket.bucketName });
    new CfnOutput(this, "EventQueueUrl", { value: this.events.queue.queueUrl });
    new CfnOutput(this, "DeadLetterQueueUrl", { value: this.events.deadLetterQueue.queueUrl });
    new CfnOutput(this, "LoadBalancerDns", { value: this.web.loadBalancer.loadBalancerDnsName });
    new CfnOutput(this, "MigrateTaskDefinition", { value: this.migrate.taskDefinition.taskDefinitionArn });
    new CfnOutput(this, "MigrateSecurityGroup", { value: this.migrate.securityGroup.securityGroupId });
    suppressFindings(this);
  }
}
