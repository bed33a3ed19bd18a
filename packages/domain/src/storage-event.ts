/**
 * S3 event notifications, as they arrive in an SQS message body.
 *
 * What real queues carry (AWS S3 user guide, "Event message structure"):
 * - one message may hold several Records: never read only Records[0];
 * - when notifications are configured S3 sends {"Service":"Amazon S3","Event":"s3:TestEvent"}
 *   with no Records;
 * - through SNS without raw delivery the body is {"Type":"Notification","Message":"<json>"};
 * - object keys are URL-encoded with '+' for a space;
 * - eventName carries no "s3:" prefix (ObjectCreated:Put, :Post, :Copy,
 *   :CompleteMultipartUpload);
 * - delivery is at least once and unordered; `sequencer` orders events of one key only.
 */
export interface ObjectCreated {
  bucket: string;
  key: string; // decoded
  size: number | null;
  eTag: string | null;
  sequencer: string | null;
  eventName: string;
  eventTime: string | null;
}

export type StorageMessage =
  | { kind: "objects"; created: ObjectCreated[]; ignored: string[] }
  | { kind: "test_event" }
  | { kind: "invalid"; reason: string };

export function decodeEventKey(raw: string): string {
  return decodeURIComponent(raw.replace(/\+/g, " "));
}

export function parseStorageMessage(body: string): StorageMessage {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return { kind: "invalid", reason: "body is not JSON" };
  }
  if (isObject(doc) && doc.Type === "Notification" && typeof doc.Message === "string") {
    return parseStorageMessage(doc.Message);
  }
  if (!isObject(doc)) return { kind: "invalid", reason: "body is not a JSON object" };
  if (doc.Event === "s3:TestEvent") return { kind: "test_event" };
  if (!Array.isArray(doc.Records)) return { kind: "invalid", reason: "no Records array: not an S3 event notification" };
  if (doc.Records.length === 0) return { kind: "invalid", reason: "empty Records array" };

  const created: ObjectCreated[] = [];
  const ignored: string[] = [];
  for (const [i, rec] of doc.Records.entries()) {
    if (!isObject(rec) || typeof rec.eventName !== "string" || !isObject(rec.s3)) {
      ignored.push(`record ${i}: not an S3 record`);
      continue;
    }
    if (rec.eventSource !== undefined && rec.eventSource !== "aws:s3") {
      ignored.push(`record ${i}: eventSource ${String(rec.eventSource)}`);
      continue;
    }
    const eventName = rec.eventName.replace(/^s3:/, "");
    if (!eventName.startsWith("ObjectCreated:")) {
      ignored.push(`record ${i}: ${eventName} is not an object creation`);
      continue;
    }
    const bucket = isObject(rec.s3.bucket) ? rec.s3.bucket.name : undefined;
    const object = isObject(rec.s3.object) ? rec.s3.object : undefined;
    if (typeof bucket !== "string" || !object || typeof object.key !== "string") {
      ignored.push(`record ${i}: missing bucket name or object key`);
      continue;
    }
    let key: string;
    try {
      key = decodeEventKey(object.key);
    } catch {
      ignored.push(`record ${i}: object key is not valid URL encoding`);
      continue;
    }
    created.push({
      bucket,
      key,
      size: typeof object.size === "number" ? object.size : null,
      eTag: typeof object.eTag === "string" ? object.eTag : null,
      sequencer: typeof object.sequencer === "string" ? object.sequencer : null,
      eventName,
      eventTime: typeof rec.eventTime === "string" ? rec.eventTime : null,
    });
  }
  return { kind: "objects", created, ignored };
}

/**
 * Orders two sequencers of the same key: hex strings of unequal length compare after the
 * shorter one is right-padded with zeros (AWS's documented rule).
 */
export function compareSequencers(a: string, b: string): number {
  const len = Math.max(a.length, b.length);
  const pa = a.toUpperCase().padEnd(len, "0");
  const pb = b.toUpperCase().padEnd(len, "0");
  return pa < pb ? -1 : pa > pb ? 1 : 0;
}

function isObject(v: unknown): v is Record<string, any> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
