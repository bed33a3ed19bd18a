import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { AwsSolutionsChecks } from "cdk-nag";
import { APP_CONTEXT, IntakeStack, type IntakeStackProps } from "./stack.ts";

/** A fixed account and region: synthesis then needs no AWS credentials and no lookups. */
export const TEST_ENV = { account: "123456789012", region: "eu-west-1" } as const;

export const TEST_PROPS: IntakeStackProps = {
  env: TEST_ENV,
  bucketNamePrefix: "intake-test",
  corsOrigins: ["https://app.example.com", "https://admin.example.com"],
  image: { ecrRepository: "intake", tag: "test" },
  clamdImage: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/intake-clamd:test",
  vpc: { vpcId: "vpc-0123456789abcdef0", availabilityZones: ["eu-west-1a", "eu-west-1b"], privateSubnetIds: ["subnet-0aaaaaaaaaaaaaaa0", "subnet-0bbbbbbbbbbbbbbb0"], publicSubnetIds: ["subnet-01aaaaaaaaaaaaaa0", "subnet-01bbbbbbbbbbbbbb0"] },
  database: { urlSecretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:intake/database-url-AbCdEf", securityGroupId: "sg-0123456789abcdef0", port: 5432 },
  redis: { urlSecretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:intake/redis-url-AbCdEf", securityGroupId: "sg-0fedcba9876543210", port: 6379 },
  metricsTokenSecretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:intake/metrics-token-AbCdEf",
  certificateArn: "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000",
  publicUrl: "https://uploads.example.com",
};

export interface Synthesised {
  stack: IntakeStack;
  template: Template;
  /** cdk-nag's AwsSolutions findings that no acknowledgement covers, one line each. */
  nagFindings(): string[];
}

export function synthStack(overrides: Partial<IntakeStackProps> = {}, extend?: (stack: IntakeStack) => void): Synthesised {
  const app = new App({ context: APP_CONTEXT });
  const stack = new IntakeStack(app, "Intake", { ...TEST_PROPS, ...overrides });
  extend?.(stack);
  const template = Template.fromStack(stack);
  return {
    stack,
    template,
    nagFindings: () =>
      new AwsSolutionsChecks(undefined, { verbose: false })
        .validateScope(app)
        .violations.flatMap((v) => v.violatingResources.map((r) => `${v.severity} ${v.ruleName} ${r.constructPath}: ${v.description.split("\n")[0]}`)),
  };
}
