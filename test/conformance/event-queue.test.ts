import { PutObjectCommand } from "@aws-sdk/client-s3";
import { GetQueueAttributesCommand, SendMessageCommand, SetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { createSqsClient, SqsEventQueue } from "@intake/storage";
import { FAUXQS_CREDENTIALS, freePort, startFauxqsStorage, TEST_REGION } from "@intake/test";
import { eventQueueContract } from "./event-queue-contract.ts";

/**
 * The EventQueue contract on fauxqs's SQS, fed by infra/local's S3 event emitter as in the
 * dev stack. (AWS SQS is the production implementation; RGW has no SQS.)
 */
const VISIBILITY_SECONDS = 1;

eventQueueContract("SQS on fauxqs, fed by infra/local's emitter", async () => {
  const s = await startFauxqsStorage();
  const queueUrl = s.env.SQS_QUEUE_URL!;
  // Production waits 60 s before redelivering; a second keeps the test short.
  await s.sqs!.send(new SetQueueAttributesCommand({ QueueUrl: queueUrl, Attributes: { VisibilityTimeout: String(VISIBILITY_SECONDS) } }));
  const deadClients: { destroy(): void }[] = [];
  return {
    queue: s.events!,
    visibilitySeconds: VISIBILITY_SECONDS,
    send: async (body) => {
      await s.sqs!.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: body }));
    },
    createObject: async (key) => {
      await s.s3.send(new PutObjectCommand({ Bucket: s.bucket, Key: key, Body: "x" }));
    },
    depth: async () => {
      const out = await s.sqs!.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"] }));
      return Number(out.Attributes?.ApproximateNumberOfMessages ?? NaN) + Number(out.Attributes?.ApproximateNumberOfMessagesNotVisible ?? NaN);
    },
    unreachable: async () => {
      const endpoint = `http://127.0.0.1:${await freePort()}`;
      const sqs = createSqsClient({ region: TEST_REGION, endpoint, credentials: FAUXQS_CREDENTIALS });
      deadClients.push(sqs);
      return new SqsEventQueue(sqs, `${endpoint}/000000000000/nowhere`);
    },
    stop: async () => {
      for (const c of deadClients) c.destroy();
      await s.stop();
    },
  };
});
