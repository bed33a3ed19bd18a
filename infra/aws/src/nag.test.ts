import * as sqs from "aws-cdk-lib/aws-sqs";
import { describe, expect, it } from "vitest";
import { synthStack } from "./fixture.ts";

// Every AwsSolutions finding is either fixed or acknowledged, with its reason, next to its
// cause (access.ts, process.ts, web.ts, queue-metrics.ts, suppressions.ts); an
// unacknowledged error or warning fails here.
describe("cdk-nag AwsSolutions", () => {
  it("reports no unacknowledged error or warning with a certificate (HTTPS)", () => {
    expect(synthStack().nagFindings()).toEqual([]);
  });

  it("reports no unacknowledged error or warning without a certificate (HTTP)", () => {
    expect(synthStack({ certificateArn: undefined }).nagFindings()).toEqual([]);
  });

  it("does report a finding the stack does not acknowledge (the check is live)", () => {
    const findings = synthStack({}, (stack) => new sqs.Queue(stack, "Unguarded", { encryption: sqs.QueueEncryption.UNENCRYPTED })).nagFindings();
    expect(findings.some((f) => f.includes("AwsSolutions-SQS3") && f.includes("Unguarded"))).toBe(true);
    expect(findings.some((f) => f.includes("AwsSolutions-SQS4"))).toBe(true);
  });
});
