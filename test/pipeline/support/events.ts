import { waitFor } from "@intake/testkit";
import { GetQueueUrlCommand, ReceiveMessageCommand, SendMessageCommand, SetQueueAttributesCommand, GetQueueAttributesCommand, type SQSClient } from "@aws-sdk/client-sqs";

/** An S3 ObjectCreated notification as AWS documents it (Records[], URL-encoded key). */
export function objectCreatedBody(bucket: string, key: string, size: number, sequencer = "0055AED6DCD90281E5"): string {
  return JSON.stringify({
    Records: [
      {
        eventVersion: "2.1",
        eventSource: "aws:s3",
        awsRegion: "us-east-1",
        eventTime: new Date().toISOString(),
        eventName: "ObjectCreated:Put",
        s3: {
          s3SchemaVersion: "1.0",
          configurationId: "intake-pending-created",
          bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` },
          object: { key: encodeURIComponent(key).replace(/%2F/g, "/").replace(/%20/g, "+"), size, eTag: "d41d8cd98f00b204e9800998ecf8427e", sequencer },
        },
      },
    ],
  });
}

export async function send(sqs: SQSClient, queueUrl: string, body: string): Promise<void> {
  await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
}

/**
 * Makes redelivery quick for a test: a 1 s visibility timeout and the dead-letter queue
 * after `maxReceiveCount` receives (production: 60 s and 5).
 */
export async function fastRedrive(sqs: SQSClient, queueUrl: string, dlqName: string, maxReceiveCount: number): Promise<string> {
  const dlqUrl = (await sqs.send(new GetQueueUrlCommand({ QueueName: dlqName }))).QueueUrl!;
  const dlqArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ["QueueArn"] }))).Attributes!.QueueArn!;
  await sqs.send(new SetQueueAttributesCommand({ QueueUrl: queueUrl, Attributes: { VisibilityTimeout: "1", RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: String(maxReceiveCount) }) } }));
  return dlqUrl;
}

/** Messages on the queue, visible or in flight: 0 once every message sent was deleted. */
export async function queueDepth(sqs: SQSClient, queueUrl: string): Promise<number> {
  const out = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }));
  return Number(out.Attributes?.ApproximateNumberOfMessages ?? NaN) + Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? NaN);
}

/** Receives (and keeps) bodies until `count` arrived; fails at the deadline naming what came. */
export async function receiveBodies(sqs: SQSClient, queueUrl: string, count: number, timeoutMs: number): Promise<string[]> {
  const bodies: string[] = [];
  await waitFor(
    async () => {
      const out = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
      for (const m of out.Messages ?? []) bodies.push(m.Body ?? "");
      return bodies.length >= count;
    },
    { timeoutMs, intervalMs: 0, message: `${count} message(s) on ${queueUrl}`, describeLast: () => bodies },
  );
  return bodies;
}
