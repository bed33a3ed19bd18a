// The S3 event notification message, built exactly as AWS S3 delivers it to SQS
// (AWS S3 user guide, "Event message structure", version 2.1), so that the product's
// event consumer is exercised locally against the real wire format and not a
// simplified stand-in that would hide decoding bugs.

export type ObjectCreatedEventName =
  | "ObjectCreated:Put"
  | "ObjectCreated:Post"
  | "ObjectCreated:Copy"
  | "ObjectCreated:CompleteMultipartUpload";

export interface S3EventRecord {
  eventVersion: "2.1";
  eventSource: "aws:s3";
  awsRegion: string;
  eventTime: string;
  eventName: ObjectCreatedEventName;
  userIdentity: { principalId: string };
  requestParameters: { sourceIPAddress: string };
  responseElements: { "x-amz-request-id": string; "x-amz-id-2": string };
  s3: {
    s3SchemaVersion: "1.0";
    configurationId: string;
    bucket: { name: string; ownerIdentity: { principalId: string }; arn: string };
    object: { key: string; size: number; eTag: string; sequencer: string };
  };
}

export interface S3EventMessage {
  Records: S3EventRecord[];
}

/** What S3 sends once when a notification configuration is saved: no Records at all. */
export interface S3TestEventMessage {
  Service: "Amazon S3";
  Event: "s3:TestEvent";
  Time: string;
  Bucket: string;
  RequestId: string;
  HostId: string;
}

/**
 * Encode an object key the way S3 writes it into event notifications: form-style
 * (application/x-www-form-urlencoded) encoding of the UTF-8 bytes, a space becoming '+',
 * but with '/' left as is. This is not encodeURIComponent: S3 also escapes ( ) ! ' ~,
 * which is where consumers that only handle '+' break on names like "photo (1).jpg".
 * Consumers decode with decodeURIComponent(key.replace(/\+/g, " ")).
 */
export function encodeS3EventKey(key: string): string {
  let out = "";
  for (const byte of Buffer.from(key, "utf8")) {
    const ch = String.fromCharCode(byte);
    if (/[A-Za-z0-9._\-*/]/.test(ch)) out += ch;
    else if (byte === 0x20) out += "+";
    else out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/**
 * A source of S3-style sequencers: uppercase hex strings, strictly increasing. They are
 * derived from the clock (milliseconds shifted left by 20 bits, plus a counter), so they
 * keep increasing across restarts of the emulator as long as the clock does not jump
 * backwards. Consumers use them to order events of the same key, since SQS delivery is
 * unordered and at least once.
 */
export function createSequencer(): () => string {
  let last = 0n;
  return () => {
    const fromClock = BigInt(Date.now()) << 20n;
    last = fromClock > last ? fromClock : last + 1n;
    return last.toString(16).toUpperCase().padStart(18, "0");
  };
}

export interface ObjectCreatedInput {
  region: string;
  eventName: ObjectCreatedEventName;
  eventTime: Date;
  principalId: string;
  sourceIPAddress: string;
  requestId: string;
  hostId: string;
  configurationId: string;
  bucket: string;
  bucketOwnerId: string;
  /** The raw (decoded) object key; it is encoded here. */
  key: string;
  size: number;
  /** The ETag, with or without surrounding quotes; the event carries it without. */
  eTag: string;
  sequencer: string;
}

export function buildObjectCreatedRecord(input: ObjectCreatedInput): S3EventRecord {
  return {
    eventVersion: "2.1",
    eventSource: "aws:s3",
    awsRegion: input.region,
    eventTime: input.eventTime.toISOString(),
    eventName: input.eventName,
    userIdentity: { principalId: input.principalId },
    requestParameters: { sourceIPAddress: input.sourceIPAddress },
    responseElements: { "x-amz-request-id": input.requestId, "x-amz-id-2": input.hostId },
    s3: {
      s3SchemaVersion: "1.0",
      configurationId: input.configurationId,
      bucket: {
        name: input.bucket,
        ownerIdentity: { principalId: input.bucketOwnerId },
        arn: `arn:aws:s3:::${input.bucket}`,
      },
      object: {
        key: encodeS3EventKey(input.key),
        size: input.size,
        eTag: input.eTag.replace(/^"+|"+$/g, ""),
        sequencer: input.sequencer,
      },
    },
  };
}
