import { describe, expect, it } from "vitest";
import { compareSequencers, parseStorageMessage } from "./storage-event.ts";

// The example message of the AWS S3 user guide ("Event message structure" and the
// walkthrough "Configuring a bucket for notifications"), as S3 itself sends it to SQS.
const AWS_EXAMPLE = {
  Records: [
    {
      eventVersion: "2.1",
      eventSource: "aws:s3",
      awsRegion: "us-west-2",
      eventTime: "1970-01-01T00:00:00.000Z",
      eventName: "ObjectCreated:Put",
      userIdentity: { principalId: "AIDAJDPLRKLG7UEXAMPLE" },
      requestParameters: { sourceIPAddress: "172.16.0.1" },
      responseElements: { "x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD" },
      s3: {
        s3SchemaVersion: "1.0",
        configurationId: "testConfigRule",
        bucket: { name: "amzn-s3-demo-bucket", ownerIdentity: { principalId: "A3NL1KOZZKExample" }, arn: "arn:aws:s3:::amzn-s3-demo-bucket" },
        object: { key: "HappyFace.jpg", size: 1024, eTag: "d41d8cd98f00b204e9800998ecf8427e", versionId: "096fKKXTRTtl3on89fVO.nfljtsv6qko", sequencer: "0055AED6DCD90281E5" },
      },
    },
  ],
};

// What S3 sends once when a notification configuration is saved.
const AWS_TEST_EVENT = {
  Service: "Amazon S3",
  Event: "s3:TestEvent",
  Time: "2014-10-13T15:57:02.089Z",
  Bucket: "amzn-s3-demo-bucket",
  RequestId: "5582815E1AEA5ADF",
  HostId: "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
};

function withRecords(...objects: { key: string; eventName?: string }[]) {
  return {
    Records: objects.map((o) => ({
      ...AWS_EXAMPLE.Records[0],
      eventName: o.eventName ?? "ObjectCreated:Put",
      s3: { ...AWS_EXAMPLE.Records[0]!.s3, object: { ...AWS_EXAMPLE.Records[0]!.s3.object, key: o.key } },
    })),
  };
}

describe("parseStorageMessage", () => {
  it("reads AWS's documented example message", () => {
    const m = parseStorageMessage(JSON.stringify(AWS_EXAMPLE));
    expect(m).toEqual({
      kind: "objects",
      ignored: [],
      created: [
        { bucket: "amzn-s3-demo-bucket", key: "HappyFace.jpg", size: 1024, eTag: "d41d8cd98f00b204e9800998ecf8427e", sequencer: "0055AED6DCD90281E5", eventName: "ObjectCreated:Put", eventTime: "1970-01-01T00:00:00.000Z" },
      ],
    });
  });

  it("recognises the s3:TestEvent sent when notifications are configured", () => {
    expect(parseStorageMessage(JSON.stringify(AWS_TEST_EVENT))).toEqual({ kind: "test_event" });
  });

  it("reads every record of a message, not only the first", () => {
    const m = parseStorageMessage(JSON.stringify(withRecords({ key: "pending/a/1" }, { key: "pending/a/2", eventName: "ObjectCreated:CompleteMultipartUpload" }, { key: "pending/a/3", eventName: "ObjectCreated:Post" })));
    expect(m.kind === "objects" && m.created.map((c) => [c.key, c.eventName])).toEqual([
      ["pending/a/1", "ObjectCreated:Put"],
      ["pending/a/2", "ObjectCreated:CompleteMultipartUpload"],
      ["pending/a/3", "ObjectCreated:Post"],
    ]);
  });

  it("decodes URL-encoded keys with '+' for a space", () => {
    const m = parseStorageMessage(JSON.stringify(withRecords({ key: "pending/a/my+report+%C3%A9t%C3%A9%2B1.pdf" })));
    expect(m.kind === "objects" && m.created[0]!.key).toBe("pending/a/my report été+1.pdf");
  });

  it("unwraps an SNS notification envelope (no raw delivery)", () => {
    const envelope = { Type: "Notification", MessageId: "x", TopicArn: "arn:aws:sns:us-west-2:123:t", Message: JSON.stringify(AWS_EXAMPLE) };
    const m = parseStorageMessage(JSON.stringify(envelope));
    expect(m.kind === "objects" && m.created[0]!.key).toBe("HappyFace.jpg");
  });

  it("ignores records that are not object creations and says why", () => {
    const m = parseStorageMessage(JSON.stringify(withRecords({ key: "pending/a/1", eventName: "ObjectRemoved:Delete" })));
    expect(m).toEqual({ kind: "objects", created: [], ignored: ["record 0: ObjectRemoved:Delete is not an object creation"] });
  });

  it.each([
    ["not json", "body is not JSON"],
    ["[1,2]", "body is not a JSON object"],
    ['{"hello":"world"}', "no Records array: not an S3 event notification"],
    ['{"Records":[]}', "empty Records array"],
  ])("refuses %s with a reason", (body, reason) => {
    expect(parseStorageMessage(body)).toEqual({ kind: "invalid", reason });
  });

  it("reports a record whose key is broken URL encoding instead of throwing", () => {
    const m = parseStorageMessage(JSON.stringify(withRecords({ key: "pending/a/%E0%A4%A" })));
    expect(m).toEqual({ kind: "objects", created: [], ignored: ["record 0: object key is not valid URL encoding"] });
  });
});

describe("compareSequencers", () => {
  it("orders hex strings after right-padding the shorter one with zeros", () => {
    expect(compareSequencers("0055AED6DCD90281E5", "0055AED6DCD90281E6")).toBe(-1);
    expect(compareSequencers("0055AED6DCD90281E5", "0055AED6DCD90281E5")).toBe(0);
    // "FF" pads to "FF00": later than "FE99" although shorter.
    expect(compareSequencers("FF", "FE99")).toBe(1);
    expect(compareSequencers("0a", "0A00")).toBe(0);
  });
});
