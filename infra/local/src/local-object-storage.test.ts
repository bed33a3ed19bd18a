import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SQSClient,
} from "@aws-sdk/client-sqs";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { createPresignedPost } from "@aws-sdk/s3-presigned-post";
import { startLocalObjectStorage, type LocalObjectStorage } from "./local-object-storage.ts";
import type { S3EventMessage } from "./s3-event.ts";

const BUCKET = "intake-uploads";
const QUEUE = "intake-events";
const credentials = { accessKeyId: "test", secretAccessKey: "test" };

function clients(endpoint: string) {
  const s3 = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  const sqs = new SQSClient({ endpoint, region: "us-east-1", credentials });
  return { s3, sqs };
}

// What provisionStorage() does in product code; the emulator does not create them itself.
async function provision(s3: S3Client, sqs: SQSClient): Promise<string> {
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const q = await sqs.send(new CreateQueueCommand({ QueueName: QUEUE }));
  return q.QueueUrl!;
}

async function drain(sqs: SQSClient, queueUrl: string, waitSeconds = 1): Promise<S3EventMessage[]> {
  const out: S3EventMessage[] = [];
  for (;;) {
    const r = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: waitSeconds }),
    );
    const msgs = r.Messages ?? [];
    if (msgs.length === 0) return out;
    for (const m of msgs) out.push(JSON.parse(m.Body!) as S3EventMessage);
    await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: msgs.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
      }),
    );
    waitSeconds = 0;
  }
}

const md5 = (b: Buffer | string) => createHash("md5").update(b).digest("hex");
const decodeEventKey = (k: string) => decodeURIComponent(k.replace(/\+/g, " "));

describe("local object storage event emitter", () => {
  let storage: LocalObjectStorage;
  let s3: S3Client;
  let sqs: SQSClient;
  let queueUrl: string;

  beforeAll(async () => {
    storage = await startLocalObjectStorage({ port: 0, bucket: BUCKET, eventQueueName: QUEUE, region: "us-east-1" });
    ({ s3, sqs } = clients(storage.endpoint));
    queueUrl = await provision(s3, sqs);
  });
  afterAll(async () => {
    s3?.destroy();
    sqs?.destroy();
    await storage?.stop();
  });

  it("PUT under pending/ yields one S3-shaped ObjectCreated:Put message", async () => {
    const key = "pending/2024/hello wörld (1)+x.txt";
    const body = "hello, intake\n";
    const before = new Date();
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentType: "text/plain" }));
    await storage.idle();
    const messages = await drain(sqs, queueUrl);
    expect(messages).toHaveLength(1);
    expect(messages[0]!.Records).toHaveLength(1);
    const r = messages[0]!.Records[0]!;
    expect(r).toMatchObject({
      eventVersion: "2.1",
      eventSource: "aws:s3",
      awsRegion: "us-east-1",
      eventName: "ObjectCreated:Put",
      userIdentity: { principalId: "AWS:test" },
      requestParameters: { sourceIPAddress: "127.0.0.1" },
      s3: {
        s3SchemaVersion: "1.0",
        configurationId: expect.any(String),
        bucket: { name: BUCKET, ownerIdentity: { principalId: expect.any(String) }, arn: `arn:aws:s3:::${BUCKET}` },
        object: {
          // space -> '+', UTF-8 percent-encoded, parentheses and '+' escaped, '/' kept
          key: "pending/2024/hello+w%C3%B6rld+%281%29%2Bx.txt",
          size: Buffer.byteLength(body),
          eTag: md5(body),
        },
      },
    });
    expect(decodeEventKey(r.s3.object.key)).toBe(key);
    expect(r.s3.object.sequencer).toMatch(/^[0-9A-F]+$/);
    expect(r.responseElements["x-amz-request-id"]).toMatch(/\S/);
    expect(r.responseElements["x-amz-id-2"]).toMatch(/\S/);
    expect(new Date(r.eventTime).toISOString()).toBe(r.eventTime);
    expect(new Date(r.eventTime).getTime()).toBeGreaterThanOrEqual(before.getTime());
  });

  it("presigned PUT (fetch) yields an event with the stored size and increasing sequencers", async () => {
    const key = "pending/presigned.bin";
    const first = Buffer.alloc(1000, 1);
    const second = Buffer.alloc(2500, 2);
    for (const body of [first, second]) {
      const url = await getSignedUrl(
        s3,
        new PutObjectCommand({ Bucket: BUCKET, Key: key, ContentType: "application/octet-stream" }),
        { expiresIn: 300, signableHeaders: new Set(["content-type"]) },
      );
      const res = await fetch(url, { method: "PUT", body, headers: { "content-type": "application/octet-stream" } });
      expect(res.status).toBe(200);
    }
    await storage.idle();
    const records = (await drain(sqs, queueUrl)).flatMap((m) => m.Records);
    expect(records.map((r) => r.eventName)).toEqual(["ObjectCreated:Put", "ObjectCreated:Put"]);
    expect(records.map((r) => r.s3.object.size)).toEqual([1000, 2500]);
    expect(records[1]!.s3.object.eTag).toBe(md5(second));
    expect(records[0]!.userIdentity.principalId).toBe("AWS:test");
    const [a, b] = records.map((r) => BigInt(`0x${r.s3.object.sequencer}`));
    expect(b! > a!).toBe(true);
  });

  it("presigned POST (browser form) yields ObjectCreated:Post with the form's key", async () => {
    const { url, fields } = await createPresignedPost(s3, {
      Bucket: BUCKET,
      Key: "pending/form/${filename}",
      Conditions: [["content-length-range", 1, 1024 * 1024]],
      Fields: { "Content-Type": "image/png" },
      Expires: 300,
    });
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(200, 7)]);
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) form.append(k, v);
    form.append("file", new Blob([png], { type: "image/png" }), "cat photo.png");
    const res = await fetch(url, { method: "POST", body: form });
    expect(res.status).toBe(204);
    await storage.idle();
    const records = (await drain(sqs, queueUrl)).flatMap((m) => m.Records);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      eventName: "ObjectCreated:Post",
      userIdentity: { principalId: "AWS:test" },
      s3: { object: { key: "pending/form/cat+photo.png", size: png.length, eTag: md5(png) } },
    });
  });

  it("a multipart upload yields one CompleteMultipartUpload event, not one per part", async () => {
    const key = "pending/big/multi part.bin";
    const part1 = Buffer.alloc(5 * 1024 * 1024, 0x61);
    const part2 = Buffer.alloc(1234, 0x62);
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    const etags: string[] = [];
    for (const [i, body] of [part1, part2].entries()) {
      const r = await s3.send(
        new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: i + 1, Body: body }),
      );
      etags.push(r.ETag!);
    }
    await storage.idle();
    expect(await drain(sqs, queueUrl, 0)).toHaveLength(0);
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
      }),
    );
    await storage.idle();
    const records = (await drain(sqs, queueUrl)).flatMap((m) => m.Records);
    expect(records).toHaveLength(1);
    expect(records[0]!.eventName).toBe("ObjectCreated:CompleteMultipartUpload");
    expect(records[0]!.s3.object.key).toBe("pending/big/multi+part.bin");
    expect(records[0]!.s3.object.size).toBe(part1.length + part2.length);
    expect(records[0]!.s3.object.eTag).toMatch(/^[0-9a-f]{32}-2$/);
  });

  it("writes outside pending/ (the pipeline's own PUTs and copies) yield no event", async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "pending/src.txt", Body: "x" }));
    await storage.idle();
    expect(await drain(sqs, queueUrl)).toHaveLength(1);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "verified/a.txt", Body: "verified" }));
    await s3.send(
      new CopyObjectCommand({ Bucket: BUCKET, Key: "quarantine/src.txt", CopySource: `${BUCKET}/pending/src.txt` }),
    );
    await storage.idle();
    expect(await drain(sqs, queueUrl)).toHaveLength(0);
  });

  it("a failed PUT yields no event", async () => {
    const res = await fetch(`${storage.endpoint}/no-such-bucket/pending/x.txt`, { method: "PUT", body: "x" });
    expect(res.status).toBeGreaterThanOrEqual(400);
    await storage.idle();
    expect(await drain(sqs, queueUrl)).toHaveLength(0);
  });
});

describe("local object storage persistence", () => {
  it("keeps objects, the bucket and queued events across a restart", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "intake-local-s3-"));
    try {
      let storage = await startLocalObjectStorage({ port: 0, dataDir });
      let c = clients(storage.endpoint);
      const queueUrl = await provision(c.s3, c.sqs);
      await c.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "pending/keep.txt", Body: "persisted" }));
      await storage.idle();
      c.s3.destroy();
      c.sqs.destroy();
      await storage.stop();

      storage = await startLocalObjectStorage({ port: 0, dataDir });
      c = clients(storage.endpoint);
      try {
        const got = await c.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: "pending/keep.txt" }));
        expect(await got.Body!.transformToString()).toBe("persisted");
        // The event sent before the restart is still waiting in the queue.
        const records = (await drain(c.sqs, queueUrl)).flatMap((m) => m.Records);
        expect(records.map((r) => r.s3.object.key)).toEqual(["pending/keep.txt"]);
        // And the emitter still works after the restart.
        await c.s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "pending/after.txt", Body: "again" }));
        await storage.idle();
        const after = (await drain(c.sqs, queueUrl)).flatMap((m) => m.Records);
        expect(after.map((r) => r.s3.object.key)).toEqual(["pending/after.txt"]);
      } finally {
        c.s3.destroy();
        c.sqs.destroy();
        await storage.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("options and limits", () => {
  it("sendTestEvent: S3's s3:TestEvent comes once, before the first record", async () => {
    const storage = await startLocalObjectStorage({ port: 0, sendTestEvent: true });
    const { s3, sqs } = clients(storage.endpoint);
    try {
      const queueUrl = await provision(s3, sqs);
      for (const k of ["pending/1", "pending/2"]) {
        await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: k, Body: k }));
      }
      await storage.idle();
      const bodies = (await drain(sqs, queueUrl)) as unknown as Array<Record<string, unknown>>;
      expect(bodies).toHaveLength(3);
      expect(bodies[0]).toMatchObject({ Service: "Amazon S3", Event: "s3:TestEvent", Bucket: BUCKET });
      expect(bodies[0]!.Records).toBeUndefined();
    } finally {
      s3.destroy();
      sqs.destroy();
      await storage.stop();
    }
  });

  it("applies a presigned GET's response-content-disposition and response-content-type, as S3 does", async () => {
    const storage = await startLocalObjectStorage({ port: 0 });
    const { s3, sqs } = clients(storage.endpoint);
    try {
      await provision(s3, sqs);
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "verified/t/a.svg", Body: "<svg/>", ContentType: "application/xml" }));
      const disposition = `attachment; filename="a.svg"; filename*=UTF-8''a.svg`;
      const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: "verified/t/a.svg", ResponseContentDisposition: disposition, ResponseContentType: "image/svg+xml" }), { expiresIn: 60 });
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-disposition")).toBe(disposition);
      expect(res.headers.get("content-type")).toBe("image/svg+xml");
      expect(await res.text()).toBe("<svg/>");
      // Without the parameters the stored headers come back unchanged.
      const plain = await fetch(await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: "verified/t/a.svg" }), { expiresIn: 60 }));
      expect(plain.headers.get("content-type")).toBe("application/xml");
      await plain.arrayBuffer();
      // A failed read is not dressed up as the file.
      const missing = await fetch(await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: "verified/t/none", ResponseContentType: "image/svg+xml" }), { expiresIn: 60 }));
      expect(missing.status).toBe(404);
      expect(missing.headers.get("content-type")).not.toBe("image/svg+xml");
      await missing.arrayBuffer();
    } finally {
      s3.destroy();
      sqs.destroy();
      await storage.stop();
    }
  });

  it("answers a body over fauxqs's 11 MiB limit with S3's EntityTooLarge, and no event", async () => {
    const storage = await startLocalObjectStorage({ port: 0 });
    const { s3, sqs } = clients(storage.endpoint);
    try {
      const queueUrl = await provision(s3, sqs);
      const res = await fetch(`${storage.endpoint}/${BUCKET}/pending/huge.bin`, {
        method: "PUT",
        body: Buffer.alloc(12 * 1024 * 1024),
      });
      expect(res.status).toBe(413);
      expect(await res.text()).toContain("<Code>EntityTooLarge</Code>");
      await storage.idle();
      expect(await drain(sqs, queueUrl)).toHaveLength(0);
    } finally {
      s3.destroy();
      sqs.destroy();
      await storage.stop();
    }
  });

  it("drops (and logs) an event whose queue never appears, without blocking later ones", async () => {
    const errors: string[] = [];
    const storage = await startLocalObjectStorage({
      port: 0,
      queueWaitMs: 300,
      logger: { info: () => {}, warn: () => {}, error: (m) => errors.push(m) },
    });
    const { s3, sqs } = clients(storage.endpoint);
    try {
      await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "pending/lost", Body: "x" }));
      await storage.idle();
      expect(errors.join("\n")).toMatch(/dropping event for s3:\/\/intake-uploads\/pending\/lost/);
      const q = await sqs.send(new CreateQueueCommand({ QueueName: QUEUE }));
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "pending/found", Body: "x" }));
      await storage.idle();
      const records = (await drain(sqs, q.QueueUrl!)).flatMap((m) => m.Records);
      expect(records.map((r) => r.s3.object.key)).toEqual(["pending/found"]);
    } finally {
      s3.destroy();
      sqs.destroy();
      await storage.stop();
    }
  });
});

describe("startup errors", () => {
  it("reports a taken port clearly", async () => {
    const first = await startLocalObjectStorage({ port: 0 });
    try {
      await expect(startLocalObjectStorage({ port: first.port })).rejects.toThrow(/already in use/);
    } finally {
      await first.stop();
    }
  });
});
