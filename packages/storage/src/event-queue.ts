import { DeleteMessageCommand, GetQueueUrlCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { translateStorageError } from "./errors.ts";

export interface QueuedMessage {
  id: string;
  body: string;
  receiptHandle: string;
  receiveCount: number;
}

/** The SQS queue that storage event notifications arrive on. */
export interface EventQueue {
  receive(opts: { max: number; waitSeconds: number; signal?: AbortSignal }): Promise<QueuedMessage[]>;
  delete(message: QueuedMessage): Promise<void>;
}

export function createSqsClient(s: { region: string; endpoint?: string; credentials?: { accessKeyId: string; secretAccessKey: string } }): SQSClient {
  return new SQSClient({ region: s.region, endpoint: s.endpoint, credentials: s.credentials });
}

export async function resolveQueueUrl(sqs: SQSClient, name: string): Promise<string> {
  const out = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
  return out.QueueUrl!;
}

export class SqsEventQueue implements EventQueue {
  private readonly sqs: SQSClient;
  readonly queueUrl: string;
  constructor(sqs: SQSClient, queueUrl: string) {
    this.sqs = sqs;
    this.queueUrl = queueUrl;
  }

  async receive(o: { max: number; waitSeconds: number; signal?: AbortSignal }): Promise<QueuedMessage[]> {
    try {
      const out = await this.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.queueUrl,
          MaxNumberOfMessages: o.max,
          WaitTimeSeconds: o.waitSeconds,
          MessageSystemAttributeNames: ["ApproximateReceiveCount"],
        }),
        { abortSignal: o.signal },
      );
      return (out.Messages ?? []).map((m) => ({
        id: m.MessageId ?? "",
        body: m.Body ?? "",
        receiptHandle: m.ReceiptHandle ?? "",
        receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 1),
      }));
    } catch (err) {
      if (o.signal?.aborted) return [];
      throw translateStorageError(err, "ReceiveMessage");
    }
  }

  async delete(message: QueuedMessage): Promise<void> {
    try {
      await this.sqs.send(new DeleteMessageCommand({ QueueUrl: this.queueUrl, ReceiptHandle: message.receiptHandle }));
    } catch (err) {
      throw translateStorageError(err, "DeleteMessage");
    }
  }
}
