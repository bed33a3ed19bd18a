import { Duration } from "aws-cdk-lib";
import * as cloudwatch from "aws-cdk-lib/aws-cloudwatch";
import * as iam from "aws-cdk-lib/aws-iam";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";

export interface StorageEventQueueProps {
  /** Receives before a message moves to the dead-letter queue. */
  maxReceiveCount: number;
  /** ApproximateAgeOfOldestMessage above which the age alarm fires (seconds). */
  maxMessageAgeSeconds: number;
}

/**
 * The S3 event queue (ObjectCreated under pending/) with its dead-letter queue, and the
 * alarms an operator needs: anything in the DLQ, and events waiting too long (the ingest
 * role is down or too small). SQS-managed SSE rather than KMS: S3 can publish to an SSE-SQS
 * queue without a key policy, and the messages hold key names and sizes, no bytes.
 */
export class StorageEventQueue extends Construct {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly deadLetterAlarm: cloudwatch.Alarm;
  readonly ageAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: StorageEventQueueProps) {
    super(scope, id);
    this.deadLetterQueue = new sqs.Queue(this, "DeadLetters", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // The longest SQS keeps anything: time for an operator to read and redrive (RUNBOOK).
      retentionPeriod: Duration.days(14),
    });
    this.queue = new sqs.Queue(this, "Events", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // The ingest loop turns a message into a BullMQ job in milliseconds; a minute covers a
      // slow database without a second delivery of every message.
      visibilityTimeout: Duration.seconds(60),
      retentionPeriod: Duration.days(4),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount },
    });

    this.deadLetterAlarm = new cloudwatch.Alarm(this, "DeadLettersAlarm", {
      alarmDescription: "S3 events in the dead-letter queue: storage events the ingest role could not handle (RUNBOOK: DLQ redrive)",
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: "Maximum" }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.ageAlarm = new cloudwatch.Alarm(this, "EventAgeAlarm", {
      alarmDescription: `S3 events older than ${props.maxMessageAgeSeconds} s in the event queue: the ingest role is down or too small`,
      metric: this.queue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(5), statistic: "Maximum" }),
      threshold: props.maxMessageAgeSeconds,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  /** Only this bucket (its ARN, in this account) may send; the notification waits for the policy. */
  destinationFor(bucket: s3.IBucket, account: string): s3.IBucketNotificationDestination {
    const queue = this.queue;
    return {
      bind: () => {
        queue.addToResourcePolicy(
          new iam.PolicyStatement({
            sid: "OnlyTheUploadBucketSends",
            principals: [new iam.ServicePrincipal("s3.amazonaws.com")],
            actions: ["sqs:SendMessage"],
            resources: [queue.queueArn],
            conditions: { ArnEquals: { "aws:SourceArn": bucket.bucketArn }, StringEquals: { "aws:SourceAccount": account } },
          }),
        );
        // S3 checks the destination when the configuration is put: the policy must exist first.
        return { arn: queue.queueArn, type: s3.BucketNotificationDestinationType.QUEUE, dependencies: [queue.node.findChild("Policy")] };
      },
    };
  }
}
