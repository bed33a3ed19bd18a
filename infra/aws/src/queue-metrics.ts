import { Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as logs from "aws-cdk-lib/aws-logs";
import { Construct } from "constructs";

/**
 * BullMQ's waiting counts live in Redis, not in CloudWatch. The API process already exports
 * them on /metrics as `intake_queue_jobs{queue,state}` (@intake/metrics definitions.ts,
 * read from Redis when scraped). An OpenTelemetry collector (ADOT) sidecar in the admin
 * service's task scrapes that endpoint on localhost with METRICS_TOKEN and publishes the
 * gauge to CloudWatch through the embedded metric format; each worker role's step scaling
 * alarms on it. No Intake code publishes to CloudWatch itself.
 */
export const METRIC_NAMESPACE = "Intake";
export const QUEUE_JOBS_METRIC = "intake_queue_jobs";
export const DEFAULT_COLLECTOR_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0";

/** The waiting count of one BullMQ queue, as the scaling alarms read it. */
export function waitingJobs(queue: string): cloudwatch.Metric {
  // Every API task would report the same reading: Maximum, never Sum.
  return new cloudwatch.Metric({ namespace: METRIC_NAMESPACE, metricName: QUEUE_JOBS_METRIC, dimensionsMap: { queue, state: "waiting" }, statistic: "Maximum", period: Duration.minutes(1) });
}

/** The collector's configuration; ${env:METRICS_TOKEN} is expanded by the collector from its ECS secret. */
export function collectorConfig(o: { apiPort: number; logGroupName: string; region: string }): string {
  return [
    "receivers:",
    "  prometheus:",
    "    config:",
    "      scrape_configs:",
    "        - job_name: intake-api",
    "          scrape_interval: 30s",
    "          metrics_path: /metrics",
    "          authorization:",
    "            type: Bearer",
    "            credentials: ${env:METRICS_TOKEN}",
    "          static_configs:",
    `            - targets: ["127.0.0.1:${o.apiPort}"]`,
    "exporters:",
    "  awsemf:",
    `    namespace: ${METRIC_NAMESPACE}`,
    `    log_group_name: ${o.logGroupName}`,
    `    region: ${o.region}`,
    "    dimension_rollup_option: NoDimensionRollup",
    "    metric_declarations:",
    "      - dimensions: [[queue, state]]",
    `        metric_name_selectors: ["${QUEUE_JOBS_METRIC}"]`,
    "service:",
    "  pipelines:",
    "    metrics:",
    "      receivers: [prometheus]",
    "      exporters: [awsemf]",
    "",
  ].join("\n");
}

export interface QueueMetricsPublisherProps {
  taskDefinition: ecs.FargateTaskDefinition;
  apiPort: number;
  metricsToken: ecs.Secret;
  region: string;
  image?: string;
  logGroup: logs.ILogGroup;
}

/** The collector sidecar and the log group its EMF records go to (the task role may write only there). */
export class QueueMetricsPublisher extends Construct {
  readonly emfLogGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: QueueMetricsPublisherProps) {
    super(scope, id);
    this.emfLogGroup = new logs.LogGroup(this, "Emf", { retention: logs.RetentionDays.ONE_WEEK, removalPolicy: RemovalPolicy.DESTROY });
    this.emfLogGroup.grantWrite(props.taskDefinition.taskRole);
    props.taskDefinition.addContainer("queue-metrics", {
      image: ecs.ContainerImage.fromRegistry(props.image ?? DEFAULT_COLLECTOR_IMAGE),
      essential: false,
      memoryLimitMiB: 128,
      environment: { AOT_CONFIG_CONTENT: collectorConfig({ apiPort: props.apiPort, logGroupName: this.emfLogGroup.logGroupName, region: props.region }) },
      secrets: { METRICS_TOKEN: props.metricsToken },
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: "queue-metrics", logGroup: props.logGroup }),
    });
    Validations.of(props.taskDefinition).acknowledge({ id: "CloudFormation-Validate::E1029", reason: "${env:METRICS_TOKEN} is the collector's own variable syntax, expanded by the collector from its ECS secret, not a CloudFormation parameter." });
  }
}
