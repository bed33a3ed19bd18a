import { Duration, Validations } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecs from "aws-cdk-lib/aws-ecs";
import type * as logs from "aws-cdk-lib/aws-logs";
import type * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Construct } from "constructs";
import { ProcessRole, type AccessTargets } from "./access.ts";
import type { ProcessAccess } from "./roles.ts";

/** What every Intake process of the stack shares: the image, the cluster, the secrets, the base environment. */
export interface ProcessContext {
  cluster: ecs.ICluster;
  vpc: ec2.IVpc;
  image: ecs.ContainerImage;
  logGroup: logs.ILogGroup;
  targets: AccessTargets;
  /** Non-secret variables every process reads (names from packages/runtime/src/config.ts). */
  environment: Record<string, string>;
  /** DATABASE_URL and REDIS_URL: Secrets Manager secrets holding the whole URL (password inside). */
  databaseUrl: secretsmanager.ISecret;
  redisUrl: secretsmanager.ISecret;
  /** Security groups of the imported PostgreSQL and Redis, opened to each process on their port. */
  dataStores: { securityGroup: ec2.ISecurityGroup; port: number }[];
}

export interface IntakeProcessProps {
  kind: string;
  access: ProcessAccess;
  command: string[];
  cpu: number;
  memoryMiB: number;
  environment?: Record<string, string>;
  secrets?: Record<string, ecs.Secret>;
  portMappings?: ecs.PortMapping[];
}

/**
 * One Intake process kind: its task role (roles.ts), task definition, container, security
 * group and data-store ingress. Services (or run-task, for the migration) are built on it.
 */
export class IntakeProcess extends Construct {
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly container: ecs.ContainerDefinition;
  readonly securityGroup: ec2.SecurityGroup;
  readonly role: ProcessRole;

  constructor(scope: Construct, id: string, ctx: ProcessContext, props: IntakeProcessProps) {
    super(scope, id);
    this.role = new ProcessRole(this, "TaskRole", { kind: props.kind, access: props.access, targets: ctx.targets });
    this.taskDefinition = new ecs.FargateTaskDefinition(this, "Task", {
      cpu: props.cpu,
      memoryLimitMiB: props.memoryMiB,
      taskRole: this.role.role,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.X86_64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    });
    this.container = this.taskDefinition.addContainer("intake", {
      image: ctx.image,
      command: props.command,
      environment: { ...ctx.environment, ...props.environment },
      secrets: { DATABASE_URL: ecs.Secret.fromSecretsManager(ctx.databaseUrl), REDIS_URL: ecs.Secret.fromSecretsManager(ctx.redisUrl), ...props.secrets },
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: props.kind, logGroup: ctx.logGroup }),
      portMappings: props.portMappings,
      // Workers drain in-flight jobs for up to 60 s after SIGTERM (services/worker main.ts);
      // Fargate's longest stop timeout leaves them that time before SIGKILL.
      stopTimeout: Duration.seconds(120),
    });
    Validations.of(this.taskDefinition).acknowledge({
      id: "AwsSolutions-ECS2",
      reason: "The environment holds non-secret settings only (names from packages/runtime config.ts: bucket, queue URL, roles, limits); DATABASE_URL, REDIS_URL and METRICS_TOKEN come from Secrets Manager as ECS secrets.",
    });
    // The execution role's ecr:GetAuthorizationToken (CDK's ECR pull grant) has no resource-level permission in IAM.
    Validations.of(this.taskDefinition).acknowledge({ id: "AwsSolutions-IAM5[Resource::*]", reason: "ecr:GetAuthorizationToken supports no resource other than *; the image pull itself is granted on the one repository." });
    this.securityGroup = new ec2.SecurityGroup(this, "Sg", { vpc: ctx.vpc, description: `Intake ${props.kind} tasks`, allowAllOutbound: true });
    for (const store of ctx.dataStores) store.securityGroup.addIngressRule(this.securityGroup, ec2.Port.tcp(store.port), `Intake ${props.kind}`);
  }
}
