import { Duration } from "aws-cdk-lib";
import * as appscaling from "aws-cdk-lib/aws-applicationautoscaling";
import type * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as ecs from "aws-cdk-lib/aws-ecs";
import { Construct } from "constructs";
import { IntakeProcess, type ProcessContext } from "./process.ts";
import { waitingJobs } from "./queue-metrics.ts";
import { WORKER_ROLES, type WorkerRole } from "./roles.ts";

export const CLAMD_PORT = 3310;
export const CLAMD_SERVICE_NAME = "clamd";

export interface ClamdProps {
  image: string;
  /** Tasks: each holds its own signature database (~1.5 GiB resident with the official databases). */
  minCount: number;
  maxCount: number;
}

/**
 * clamd as its own service, found through Cloud Map (clamd.<namespace>), reachable on 3310
 * only from the security groups that are allowed to scan (workers that scan, the admin
 * service's health page). 4 GiB per task: ClamAV with the official databases holds ~1.5 GiB
 * and a signature reload briefly holds two copies; 1 vCPU per task, scaled on CPU.
 */
export class ClamdService extends Construct {
  readonly service: ecs.FargateService;
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, ctx: ProcessContext, props: ClamdProps) {
    super(scope, id);
    const task = new ecs.FargateTaskDefinition(this, "Task", { cpu: 1024, memoryLimitMiB: 4096 });
    task.addContainer("clamd", {
      // intake-clamd (props.image): its entrypoint writes Intake's container signatures, then
      // the clamav/clamav entrypoint starts freshclam and clamd, as the image's clamav user.
      image: ecs.ContainerImage.fromRegistry(props.image),
      portMappings: [{ containerPort: CLAMD_PORT }],
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: "clamd", logGroup: ctx.logGroup }),
      // The first freshclam download takes minutes; clamd answers only after it.
      healthCheck: { command: ["CMD-SHELL", "clamdcheck.sh"], interval: Duration.seconds(30), timeout: Duration.seconds(10), retries: 3, startPeriod: Duration.seconds(300) },
    });
    this.securityGroup = new ec2.SecurityGroup(this, "Sg", { vpc: ctx.vpc, description: "clamd: port 3310 from scanning Intake tasks only", allowAllOutbound: true });
    this.service = new ecs.FargateService(this, "Service", {
      cluster: ctx.cluster,
      taskDefinition: task,
      desiredCount: props.minCount,
      securityGroups: [this.securityGroup],
      cloudMapOptions: { name: CLAMD_SERVICE_NAME, containerPort: CLAMD_PORT },
      circuitBreaker: { rollback: true },
      minHealthyPercent: 100,
    });
    this.service.autoScaleTaskCount({ minCapacity: props.minCount, maxCapacity: props.maxCount }).scaleOnCpuUtilization("Cpu", { targetUtilizationPercent: 70 });
  }

  allowFrom(peer: ec2.ISecurityGroup, description: string): void {
    this.securityGroup.addIngressRule(peer, ec2.Port.tcp(CLAMD_PORT), description);
  }
}

export interface WorkerServicesProps {
  /** CLAMD_HOST as the workers resolve it (the Cloud Map name). */
  clamdHost: string;
  eventQueueMetric: cloudwatch.IMetric;
  clamd: ClamdService;
  roles?: readonly WorkerRole[];
}

/** One Fargate service per worker role (WORKER_ROLES=<role>), each scaled on its own signal (roles.ts). */
export class WorkerServices extends Construct {
  readonly services = new Map<string, { process: IntakeProcess; service: ecs.FargateService }>();

  constructor(scope: Construct, id: string, ctx: ProcessContext, props: WorkerServicesProps) {
    super(scope, id);
    for (const role of props.roles ?? WORKER_ROLES) {
      const process = new IntakeProcess(this, role.name, ctx, {
        kind: `worker ${role.name}`,
        access: role.access,
        command: ["node", "services/worker/src/main.ts"],
        cpu: role.cpu,
        memoryMiB: role.memoryMiB,
        environment: { WORKER_ROLES: role.name, ...(role.access.clamd ? { CLAMD_HOST: props.clamdHost, CLAMD_PORT: String(CLAMD_PORT) } : {}) },
      });
      if (role.access.clamd) props.clamd.allowFrom(process.securityGroup, `Intake worker ${role.name}`);
      const fixed = role.scaling.signal === "fixed" ? role.scaling.count : undefined;
      const service = new ecs.FargateService(this, `${role.name}Service`, {
        cluster: ctx.cluster,
        taskDefinition: process.taskDefinition,
        desiredCount: fixed ?? (role.scaling.signal !== "fixed" ? role.scaling.min : 1),
        securityGroups: [process.securityGroup],
        circuitBreaker: { rollback: true },
        minHealthyPercent: 100,
      });
      if (role.scaling.signal !== "fixed") {
        const metric = role.scaling.signal === "event-queue" ? props.eventQueueMetric : waitingJobs(role.scaling.queue);
        const at = role.scaling.scaleOutAt;
        service.autoScaleTaskCount({ minCapacity: role.scaling.min, maxCapacity: role.scaling.max }).scaleOnMetric("Backlog", {
          metric,
          adjustmentType: appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
          // Nothing waiting: one task fewer; a backlog: one more, three more past five times it.
          scalingSteps: [{ upper: 0, change: -1 }, { lower: at, change: +1 }, { lower: at * 5, change: +3 }],
          cooldown: Duration.seconds(120),
        });
      }
      this.services.set(role.name, { process, service });
    }
  }
}
