import { DeleteMessageCommand, GetQueueAttributesCommand, GetQueueUrlCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs";
import { translateStorageError } from "./errors.ts";

export interface QueuedMessage {
  id: string;
  body: string;
  receiptHandle: string;
  receiveCount: number;
  /** When SQS accepted the message (its SentTimestamp attribute), if the queue said. */
  sentAt?: Date;
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
          // SentTimestamp: how long events wait before ingest sees them (the receive lag
          // an operator watches, see @intake/pipeline receive-lag.ts).
          MessageSystemAttributeNames: ["ApproximateReceiveCount", "SentTimestamp"],
        }),
        { abortSignal: o.signal },
      );
      return (out.Messages ?? []).map((m) => {
        const message: QueuedMessage = {
          id: m.MessageId ?? "",
          body: m.Body ?? "",
          receiptHandle: m.ReceiptHandle ?? "",
          receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? 1),
        };
        // Epoch milliseconds as a string; anything else is left out rather than guessed.
        const sent = Number(m.Attributes?.SentTimestamp);
        if (Number.isFinite(sent) && sent > 0) message.sentAt = new Date(sent);
        return message;
      });
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

/** What SQS says is in a queue (approximate, as SQS documents: eventually consistent). */
export interface QueueDepth {
  /** Messages available to receive (ApproximateNumberOfMessages). */
  visible: number;
  /** Received and not yet deleted (ApproximateNumberOfMessagesNotVisible). */
  inFlight: number;
  /** Sent with a delay that has not passed (ApproximateNumberOfMessagesDelayed). */
  delayed: number;
}

/**
 * GetQueueAttributes on a queue named by URL, or by name (resolved once, then kept: a
 * queue's URL does not change). For the dead-letter queue an operator watches: a message
 * there is an event ingest could not understand (see @intake/pipeline ingest.ts).
 */
export class SqsQueueDepth {
  private readonly sqs: SQSClient;
  private readonly queue: { url: string } | { name: string };
  private url: string | undefined;
  constructor(sqs: SQSClient, queue: { url: string } | { name: string }) {
    this.sqs = sqs;
    this.queue = queue;
    if ("url" in queue) this.url = queue.url;
  }

  /** The queue's name or URL, as configured (for the operator's page). */
  get label(): string {
    return "url" in this.queue ? this.queue.url : this.queue.name;
  }

  async depth(signal?: AbortSignal): Promise<QueueDepth> {
    try {
      this.url ??= (await this.sqs.send(new GetQueueUrlCommand({ QueueName: (this.queue as { name: string }).name }), { abortSignal: signal })).QueueUrl!;
      const out = await this.sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: this.url, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"] }),
        { abortSignal: signal },
      );
      const n = (name: string) => Number(out.Attributes?.[name as keyof typeof out.Attributes] ?? 0) || 0;
      return { visible: n("ApproximateNumberOfMessages"), inFlight: n("ApproximateNumberOfMessagesNotVisible"), delayed: n("ApproximateNumberOfMessagesDelayed") };
    } catch (err) {
      throw translateStorageError(err, "GetQueueAttributes");
    }
  }
}
