import { randomBytes } from "node:crypto";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ObjectChangedError } from "@intake/storage";
import { STORAGE_KINDS, startStorage, storeIgnoringIfMatch, type TestStorage } from "@intake/test";

async function bytesOf(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks);
}

// The workers read each object with GETs alone (no HeadObject around them): the size and
// ETag they act on come from the GET's own response, so those must be right on every
// storage the pipeline runs on.
describe.each(STORAGE_KINDS)("ObjectStore.read on %s", (kind) => {
  let s: TestStorage;
  const data = randomBytes(200_000);
  const put = (key: string, body: Buffer) => s.s3.send(new PutObjectCommand({ Bucket: s.bucket, Key: key, Body: body, ContentType: "application/octet-stream" }));
  beforeAll(async () => {
    s = await startStorage(kind);
    await put("pending/t/whole", data);
    await put("pending/t/empty", Buffer.alloc(0));
  });
  afterAll(async () => s?.stop());

  it("gives the whole object's size and ETag with its bytes", async () => {
    const head = await s.store.head("pending/t/whole");
    const object = (await s.store.read("pending/t/whole"))!;
    expect({ size: object.size, eTag: object.eTag }).toEqual({ size: data.length, eTag: head!.eTag });
    expect((await bytesOf(object.body)).equals(data)).toBe(true);
  });

  it("gives the whole object's size for a range, and only the range's bytes; a range past the end stops at the end", async () => {
    const first = (await s.store.read("pending/t/whole", { range: { start: 0, end: 65_535 } }))!;
    expect(first.size).toBe(data.length);
    expect((await bytesOf(first.body)).equals(data.subarray(0, 65_536))).toBe(true);
    const tail = (await s.store.read("pending/t/whole", { range: { start: 199_000, end: 299_999 } }))!;
    expect(tail.size).toBe(data.length);
    expect((await bytesOf(tail.body)).equals(data.subarray(199_000))).toBe(true);
  });

  it("reads an empty object through a range (S3 answers 416 there) as size 0", async () => {
    const head = await s.store.head("pending/t/empty");
    const object = (await s.store.read("pending/t/empty", { range: { start: 0, end: 65_535 } }))!;
    expect({ size: object.size, eTag: object.eTag }).toEqual({ size: 0, eTag: head!.eTag });
    expect((await bytesOf(object.body)).length).toBe(0);
  });

  it("returns null for a missing object", async () => {
    expect(await s.store.read("pending/t/missing")).toBeNull();
    expect(await s.store.read("pending/t/missing", { range: { start: 0, end: 10 } })).toBeNull();
  });

  it("reads with If-Match only while the object still has that ETag", async () => {
    const key = "pending/t/replaced";
    await put(key, Buffer.from("first version"));
    const before = (await s.store.head(key))!.eTag!;
    const same = (await s.store.read(key, { ifMatch: before }))!;
    expect((await bytesOf(same.body)).toString()).toBe("first version");
    await put(key, Buffer.from("second version"));
    await expect(s.store.read(key, { ifMatch: before })).rejects.toBeInstanceOf(ObjectChangedError);
    await expect(s.store.read(key, { ifMatch: before, range: { start: 0, end: 3 } })).rejects.toBeInstanceOf(ObjectChangedError);
  });

  it("upholds If-Match itself where storage ignores the header", async () => {
    const key = "pending/t/replaced-unchecked";
    await put(key, Buffer.from("first version"));
    const before = (await s.store.head(key))!.eTag!;
    await put(key, Buffer.from("second version"));
    const ignoring = storeIgnoringIfMatch(s);
    try {
      // Without the header the storage serves the second version; the store refuses it.
      expect((await bytesOf((await ignoring.store.read(key))!.body)).toString()).toBe("second version");
      await expect(ignoring.store.read(key, { ifMatch: before })).rejects.toBeInstanceOf(ObjectChangedError);
    } finally {
      ignoring.close();
    }
  });
});
