import { Stack, Validations, type CfnElement } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import type * as s3 from "aws-cdk-lib/aws-s3";
import type * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { KEY_SPACES, type ProcessAccess } from "./roles.ts";

export interface AccessTargets {
  bucket: s3.IBucket;
  eventQueue: sqs.IQueue;
  deadLetterQueue: sqs.IQueue;
}

/** A statement id per key space: the tests and cdk-nag's suppressions name them. */
export function objectSid(space: string): string {
  return `Objects${space[0]!.toUpperCase()}${space.slice(1)}`;
}

/**
 * The policy statements of one process kind, from its row in roles.ts: one statement per key
 * space (actions on `<bucket>/<space>/*` only), one for bucket-level actions, one per queue.
 */
export function accessStatements(access: ProcessAccess, t: AccessTargets): iam.PolicyStatement[] {
  const statements: iam.PolicyStatement[] = [];
  for (const space of KEY_SPACES) {
    const actions = access.objects[space];
    if (actions?.length) statements.push(new iam.PolicyStatement({ sid: objectSid(space), actions: [...actions], resources: [t.bucket.arnForObjects(`${space}/*`)] }));
  }
  if (access.bucket.length) statements.push(new iam.PolicyStatement({ sid: "Bucket", actions: [...access.bucket], resources: [t.bucket.bucketArn] }));
  if (access.eventQueue) statements.push(new iam.PolicyStatement({ sid: "EventQueue", actions: ["sqs:ReceiveMessage", "sqs:DeleteMessage"], resources: [t.eventQueue.queueArn] }));
  if (access.deadLetterDepth) statements.push(new iam.PolicyStatement({ sid: "DeadLetterDepth", actions: ["sqs:GetQueueAttributes"], resources: [t.deadLetterQueue.queueArn] }));
  return statements;
}

/** A task role holding exactly the process kind's statements (one inline policy, no managed ones). */
export class ProcessRole extends Construct {
  readonly role: iam.Role;
  readonly policy: iam.Policy | undefined;

  constructor(scope: Construct, id: string, props: { kind: string; access: ProcessAccess; targets: AccessTargets }) {
    super(scope, id);
    this.role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
      description: `Intake ${props.kind}: the S3 and SQS actions its code calls, per key space (infra/aws/src/roles.ts)`,
    });
    const statements = accessStatements(props.access, props.targets);
    if (statements.length) this.policy = new iam.Policy(this, "Access", { statements, roles: [this.role] });
    const bucketId = Stack.of(this).getLogicalId(props.targets.bucket.node.defaultChild as CfnElement);
    for (const space of KEY_SPACES) {
      if (!this.policy || !props.access.objects[space]?.length) continue;
      Validations.of(this.policy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/${space}/*]`,
        reason: `Object keys are server-generated per upload (${space}/<tenant>/<upload>), so the ${space}/ prefix is the narrowest resource that names them; the actions are the ${props.kind}'s own (roles.ts), and no other key space is granted by this statement.`,
      });
    }
  }
}
