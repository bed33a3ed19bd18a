import { Duration, Validations } from "aws-cdk-lib";
import * as ecs from "aws-cdk-lib/aws-ecs";
import * as elbv2 from "aws-cdk-lib/aws-elasticloadbalancingv2";
import type * as s3 from "aws-cdk-lib/aws-s3";
import type * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { IntakeProcess, type ProcessContext } from "./process.ts";
import { QueueMetricsPublisher } from "./queue-metrics.ts";
import { ADMIN_ACCESS, API_ACCESS } from "./roles.ts";
import type { ClamdService } from "./workers.ts";

export const API_PORT = 3000;
/** Paths the load balancer sends to the admin service (services/api admin routes). */
export const ADMIN_PATHS = ["/admin", "/admin/*", "/v1/admin", "/v1/admin/*"] as const;

export interface WebProps {
  /** HTTPS with this ACM certificate; without one the listener is plain HTTP (see the README's AWS section). */
  certificateArn?: string;
  logBucket: s3.IBucket;
  metricsToken: secretsmanager.ISecret;
  clamd: ClamdService;
  clamdHost: string;
  region: string;
  api: { minCount: number; maxCount: number; cpuTargetPercent: number };
  adminCount: number;
  collectorImage?: string;
}

/**
 * The API behind an internet-facing ALB, and the admin surface as a second service of the
 * same program with its own task role: the ALB routes /admin and /v1/admin to it, so the
 * public API's role never holds quarantine/ access, and a request that reached the public
 * tasks' admin routes anyway would still be refused by S3. /metrics is not served through
 * the ALB at all (the collector sidecar scrapes it inside the admin task).
 */
export class WebTier extends Construct {
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;
  readonly api: IntakeProcess;
  readonly admin: IntakeProcess;
  readonly apiService: ecs.FargateService;
  readonly adminService: ecs.FargateService;
  readonly queueMetrics: QueueMetricsPublisher;

  constructor(scope: Construct, id: string, ctx: ProcessContext, props: WebProps) {
    super(scope, id);
    const https = props.certificateArn !== undefined;
    // Behind the ALB: one proxy hop whose X-Forwarded-For entry is the client's address.
    const web = { HOST: "0.0.0.0", PORT: String(API_PORT), TRUSTED_PROXY_HOPS: "1", ADMIN_COOKIE_SECURE: String(https) };
    const ports = [{ containerPort: API_PORT }];
    const command = ["node", "services/api/src/main.ts"];
    this.api = new IntakeProcess(this, "Api", ctx, { kind: "api", access: API_ACCESS, command, cpu: 512, memoryMiB: 1024, environment: web, portMappings: ports });
    this.admin = new IntakeProcess(this, "Admin", ctx, {
      kind: "admin",
      access: ADMIN_ACCESS,
      command,
      cpu: 512,
      memoryMiB: 1024,
      environment: { ...web, SQS_DLQ_URL: ctx.targets.deadLetterQueue.queueUrl, CLAMD_HOST: props.clamdHost },
      secrets: { METRICS_TOKEN: ecs.Secret.fromSecretsManager(props.metricsToken) },
      portMappings: ports,
    });
    props.clamd.allowFrom(this.admin.securityGroup, "Intake admin (health page)");
    this.queueMetrics = new QueueMetricsPublisher(this, "QueueMetrics", {
      taskDefinition: this.admin.taskDefinition,
      apiPort: API_PORT,
      metricsToken: ecs.Secret.fromSecretsManager(props.metricsToken),
      region: props.region,
      image: props.collectorImage,
      logGroup: ctx.logGroup,
    });

    const service = (id: string, p: IntakeProcess, count: number) =>
      new ecs.FargateService(this, id, { cluster: ctx.cluster, taskDefinition: p.taskDefinition, desiredCount: count, securityGroups: [p.securityGroup], circuitBreaker: { rollback: true }, minHealthyPercent: 100, healthCheckGracePeriod: Duration.seconds(60) });
    this.apiService = service("ApiService", this.api, props.api.minCount);
    this.adminService = service("AdminService", this.admin, props.adminCount);
    this.apiService.autoScaleTaskCount({ minCapacity: props.api.minCount, maxCapacity: props.api.maxCount }).scaleOnCpuUtilization("Cpu", { targetUtilizationPercent: props.api.cpuTargetPercent });

    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, "Alb", { vpc: ctx.vpc, internetFacing: true, dropInvalidHeaderFields: true });
    this.loadBalancer.logAccessLogs(props.logBucket, "alb");
    Validations.of(this.loadBalancer).acknowledge({ id: "AwsSolutions-EC23", reason: "The upload API is public: applications and browsers anywhere call it; only the listener ports are open, and the tasks accept traffic from the load balancer alone." });
    const listener = https
      ? this.loadBalancer.addListener("Https", { port: 443, protocol: elbv2.ApplicationProtocol.HTTPS, certificates: [elbv2.ListenerCertificate.fromArn(props.certificateArn!)], sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS })
      : this.loadBalancer.addListener("Http", { port: 80, protocol: elbv2.ApplicationProtocol.HTTP });
    if (https) this.loadBalancer.addRedirect({ sourcePort: 80, targetPort: 443 });

    // /healthz, not /readyz: readiness includes clamd, and a scanner outage must not take
    // upload creation down with it (nothing is promoted without a scan anyway).
    const healthCheck = { path: "/healthz", healthyHttpCodes: "200", interval: Duration.seconds(15) };
    const targets = (id: string, s: ecs.FargateService) =>
      new elbv2.ApplicationTargetGroup(this, id, { vpc: ctx.vpc, port: API_PORT, protocol: elbv2.ApplicationProtocol.HTTP, targets: [s], healthCheck, deregistrationDelay: Duration.seconds(20) });
    listener.addTargetGroups("Api", { targetGroups: [targets("ApiTargets", this.apiService)] });
    listener.addTargetGroups("Admin", { priority: 10, conditions: [elbv2.ListenerCondition.pathPatterns([...ADMIN_PATHS])], targetGroups: [targets("AdminTargets", this.adminService)] });
    listener.addAction("NoMetrics", { priority: 20, conditions: [elbv2.ListenerCondition.pathPatterns(["/metrics"])], action: elbv2.ListenerAction.fixedResponse(404, { contentType: "text/plain", messageBody: "not found" }) });
  }
}
