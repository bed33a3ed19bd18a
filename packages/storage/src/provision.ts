import {
  CreateBucketCommand,
  PutBucketCorsCommand,
  PutBucketNotificationConfigurationCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { CreateQueueCommand, GetQueueAttributesCommand, SetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";
import { codeOf } from "./errors.ts";

export interface ProvisionOptions {
  bucket: string;
  queueName: string;
  region: string;
  corsOrigins: string[];
  /** Seconds a received message stays invisible; longer than an ingest round trip. */
  visibilityTimeoutSeconds?: number;
  /** Receives before SQS moves a message to the dead-letter queue. */
  maxReceiveCount?: number;
}

export interface ProvisionResult {
  queueUrl: string;
  deadLetterQueueUrl: string;
  /** Things the storage could not do, said once by the caller (fauxqs has no notifications). */
  warnings: string[];
}

/**
 * Creates (idempotently) what the pipeline needs in an AWS account or an S3/SQS emulator:
 * the bucket, its CORS rules, the event queue with a dead-letter queue, and the bucket
 * notification that sends ObjectCreated events for the pending prefix only — so our own
 * copies to verified/ and quarantine/ never come back as new uploads.
 */
export async function provisionStorage(s3: S3Client, sqs: SQSClient, o: ProvisionOptions): Promise<ProvisionResult> {
  const warnings: string[] = [];
  try {
    await s3.send(new CreateBucketCommand({ Bucket: o.bucket }));
  } catch (err) {
    const code = codeOf(err);
    if (code !== "BucketAlreadyOwnedByYou" && code !== "BucketAlreadyExists") throw err;
  }

  if (o.corsOrigins.length > 0) {
    try {
      await s3.send(
        new PutBucketCorsCommand({
          Bucket: o.bucket,
          CORSConfiguration: {
            CORSRules: [
              {
                AllowedOrigins: o.corsOrigins,
                AllowedMethods: ["PUT", "POST", "GET"],
                AllowedHeaders: ["content-type", "content-md5", "x-amz-checksum-sha256"],
                // Multipart clients read each part's ETag from the response (Uppy does).
                ExposeHeaders: ["ETag"],
                MaxAgeSeconds: 3000,
              },
            ],
          },
        }),
      );
    } catch (err) {
      warnings.push(`bucket CORS not applied: ${codeOf(err)}`);
    }
  }

  const dlq = await sqs.send(new CreateQueueCommand({ QueueName: `${o.queueName}-dlq`, Attributes: { MessageRetentionPeriod: "1209600" } }));
  const dlqUrl = dlq.QueueUrl!;
  const dlqAttrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ["QueueArn"] }));
  const dlqArn = dlqAttrs.Attributes?.QueueArn ?? `arn:aws:sqs:${o.region}:000000000000:${o.queueName}-dlq`;

  const attributes = {
    VisibilityTimeout: String(o.visibilityTimeoutSeconds ?? 60),
    ReceiveMessageWaitTimeSeconds: "20",
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: String(o.maxReceiveCount ?? 5) }),
  };
  let queueUrl: string;
  try {
    queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: o.queueName, Attributes: attributes }))).QueueUrl!;
  } catch (err) {
    // CreateQueue refuses different attributes for an existing queue: create, then update.
    if (codeOf(err) !== "QueueAlreadyExists" && codeOf(err) !== "QueueNameExists") throw err;
    queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: o.queueName }))).QueueUrl!;
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: queueUrl, Attributes: attributes }));
  }
  const queueArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }))).Attributes?.QueueArn;

  if (queueArn) {
    // On AWS the queue must also allow s3.amazonaws.com to SendMessage (a queue policy with
    // aws:SourceArn = the bucket); that belongs to the infrastructure code, not the app.
    try {
      await s3.send(
        new PutBucketNotificationConfigurationCommand({
          Bucket: o.bucket,
          NotificationConfiguration: {
            QueueConfigurations: [
              {
                Id: "intake-pending-created",
                QueueArn: queueArn,
                Events: ["s3:ObjectCreated:*"],
                Filter: { Key: { FilterRules: [{ Name: "prefix", Value: "pending/" }] } },
              },
            ],
          },
        }),
      );
    } catch (err) {
      warnings.push(`bucket notification not configured (${codeOf(err)}): this storage will not send ObjectCreated events by itself`);
    }
  }
  return { queueUrl, deadLetterQueueUrl: dlqUrl, warnings };
}
