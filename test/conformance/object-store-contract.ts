import { createHash, randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { ObjectChangedError, StorageUnsupportedError, type ObjectStore, type PresignedRequest } from "@intake/storage";
import { beforeAllOrFailEach } from "@intake/test";
import { waitFor } from "@intake/testkit";

/**
 * The ObjectStore contract, run once per storage backend (tus-node-server runs one store
 * test suite on every DataStore the same way). A guarantee a backend lacks must be declared
 * in `store.capabilities`; every test that depends on one asserts that the declaration is
 * what the backend does, so a store claiming a guarantee it does not give fails here, and a
 * store giving one it does not declare fails too (the declaration would be stale).
 */
export interface StoreUnderTest {
  store: ObjectStore;
  /** Writes an object directly (as a client's PUT would), outside the interface under test. */
  put(key: string, body: Buffer, contentType?: string): Promise<void>;
  /** The same store with If-Match dropped from its requests on the wire, as by storage that ignores it. */
  ignoringIfMatch(): { store: ObjectStore; close(): void };
  stop(): Promise<void>;
}

const MiB = 1024 * 1024;
// S3's minimum part size for every part but the last (RGW enforces it at complete).
const MIN_PART = 5 * MiB;

const md5Hex = (b: Buffer) => createHash("md5").update(b).digest("hex");

async function bytesOf(body: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(Buffer.from(c));
  return Buffer.concat(chunks);
}

function send(p: PresignedRequest, body: Buffer, headers: Record<string, string> = p.headers): Promise<Response> {
  return fetch(p.url, { method: p.method, headers, body });
}

export function objectStoreContract(name: string, start: () => Promise<StoreUnderTest>): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let t: StoreUnderTest;
    let store: ObjectStore;
    const key = (what: string) => `pending/contract/${what}-${randomBytes(4).toString("hex")}`;
    beforeAllOrFailEach(async () => {
      t = await start();
      store = t.store;
    });
    afterAll(async () => t?.stop());

    it("answers ping", async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    describe("presigned PUT", () => {
      it("stores exactly the bytes sent with the headers it was signed for, with that type", async () => {
        const k = key("put");
        const body = randomBytes(4096);
        const signed = await store.presignPut(k, { contentType: "image/png", contentLength: body.length, expiresIn: 300 });
        expect(signed.method).toBe("PUT");
        expect(signed.expiresAt.getTime()).toBeGreaterThan(Date.now() + 290_000);
        const res = await send(signed, body);
        expect(res.status, await res.text()).toBe(200);
        expect(await store.head(k)).toMatchObject({ size: body.length, eTag: md5Hex(body), contentType: "image/png" });
      });

      it("refuses another type or length where storage verifies signatures, as declared", async () => {
        const attempts: [string, (body: Buffer, s: PresignedRequest) => Promise<Response>][] = [
          ["another Content-Type", (b, s) => send(s, b, { ...s.headers, "Content-Type": "text/html" })],
          ["one byte more", (b, s) => send(s, Buffer.concat([b, Buffer.from("x")]))],
          ["one byte less", (b, s) => send(s, b.subarray(1))],
        ];
        for (const [what, attempt] of attempts) {
          const k = key("misused");
          const body = randomBytes(1000);
          const signed = await store.presignPut(k, { contentType: "image/png", contentLength: body.length, expiresIn: 300 });
          const res = await attempt(body, signed);
          await res.arrayBuffer();
          const refused = res.status === 403;
          expect({ what, refused }).toEqual({ what, refused: store.capabilities.verifiesSignatures });
          if (refused) expect(await store.head(k)).toBeNull();
          else expect(res.status).toBe(200);
        }
      });

      it("refuses bytes that do not match a declared MD5 or SHA-256 where storage verifies it, as declared", async () => {
        const body = randomBytes(64);
        const tampered = Buffer.from(body);
        tampered[0] = tampered[0]! ^ 0xff;
        const bindings = [
          ["md5", { md5Base64: createHash("md5").update(body).digest("base64") }, store.capabilities.verifiesContentMd5],
          ["sha256", { sha256Hex: createHash("sha256").update(body).digest("hex") }, store.capabilities.verifiesSha256Checksum],
        ] as const;
        for (const [what, checksum, declared] of bindings) {
          const k = key(what);
          const signed = await store.presignPut(k, { contentType: "application/pdf", contentLength: 64, expiresIn: 300, ...checksum });
          const res = await send(signed, tampered);
          const text = await res.text();
          expect({ what, refused: res.status === 400 }).toEqual({ what, refused: declared });
          if (declared) {
            expect(text).toMatch(/BadDigest|XAmzContentChecksumMismatch|InvalidDigest/);
            expect(await store.head(k)).toBeNull();
            expect((await send(signed, body)).status).toBe(200);
          } else {
            expect(res.status).toBe(200);
          }
        }
      });

      it("is refused once expired where storage verifies signatures, as declared", async () => {
        const k = key("expired");
        const body = randomBytes(10);
        const signed = await store.presignPut(k, { contentType: "image/png", contentLength: 10, expiresIn: 1 });
        // X-Amz-Date has one-second resolution: a second past the stated expiry is past it.
        await waitFor(() => Date.now() > signed.expiresAt.getTime() + 1000, { timeoutMs: 5000, message: "the URL's expiry to pass" });
        const res = await send(signed, body);
        const text = await res.text();
        expect(res.status === 403).toBe(store.capabilities.verifiesSignatures);
        if (store.capabilities.verifiesSignatures) expect(text).toMatch(/AccessDenied|expired/i);
      });
    });

    describe("presigned GET", () => {
      it("serves the object with the Content-Type and Content-Disposition it was signed with", async () => {
        const k = key("get");
        const body = randomBytes(2000);
        await t.put(k, body, "application/octet-stream");
        const signed = await store.presignGet(k, { contentType: "image/png", contentDisposition: 'attachment; filename="a.png"', expiresIn: 60 });
        expect(signed.method).toBe("GET");
        const res = await fetch(signed.url);
        expect(res.status).toBe(200);
        expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
        expect(res.headers.get("content-type")).toBe("image/png");
        expect(res.headers.get("content-disposition")).toBe('attachment; filename="a.png"');
      });
    });

    describe("head and read", () => {
      const data = randomBytes(200_000);
      const whole = "pending/contract/read-whole";
      const empty = "pending/contract/read-empty";
      const ready = async () => {
        if (!(await store.head(whole))) await t.put(whole, data);
        if (!(await store.head(empty))) await t.put(empty, Buffer.alloc(0));
      };

      it("heads an object (size, ETag, type) and answers null for a missing one", async () => {
        await ready();
        expect(await store.head(whole)).toMatchObject({ size: data.length, eTag: md5Hex(data), contentType: "application/octet-stream" });
        expect(await store.head("pending/contract/missing")).toBeNull();
      });

      it("reads the whole object with its size and ETag from one GET", async () => {
        await ready();
        const object = (await store.read(whole))!;
        expect({ size: object.size, eTag: object.eTag }).toEqual({ size: data.length, eTag: md5Hex(data) });
        expect((await bytesOf(object.body)).equals(data)).toBe(true);
      });

      it("reads a range with the whole object's size; a range past the end stops at the end", async () => {
        await ready();
        const first = (await store.read(whole, { range: { start: 0, end: 65_535 } }))!;
        expect(first.size).toBe(data.length);
        expect((await bytesOf(first.body)).equals(data.subarray(0, 65_536))).toBe(true);
        const tail = (await store.read(whole, { range: { start: 199_000, end: 299_999 } }))!;
        expect(tail.size).toBe(data.length);
        expect((await bytesOf(tail.body)).equals(data.subarray(199_000))).toBe(true);
        const last = (await store.read(whole, { range: { start: data.length - 1, end: data.length - 1 } }))!;
        expect((await bytesOf(last.body)).equals(data.subarray(-1))).toBe(true);
      });

      it("reads an empty object through a range (S3 answers 416 there) as size 0", async () => {
        await ready();
        const object = (await store.read(empty, { range: { start: 0, end: 65_535 } }))!;
        expect({ size: object.size, eTag: object.eTag }).toEqual({ size: 0, eTag: md5Hex(Buffer.alloc(0)) });
        expect((await bytesOf(object.body)).length).toBe(0);
      });

      it("never hands out bytes for a range that starts past the end of a non-empty object", async () => {
        await ready();
        await expect(store.read(whole, { range: { start: data.length, end: data.length + 10 } })).rejects.toThrow();
      });

      it("answers null for a missing object, with or without a range", async () => {
        expect(await store.read("pending/contract/missing")).toBeNull();
        expect(await store.read("pending/contract/missing", { range: { start: 0, end: 10 } })).toBeNull();
      });

      it("reads with If-Match only while the object still has that ETag", async () => {
        const k = key("if-match");
        await t.put(k, Buffer.from("first version"));
        const before = (await store.head(k))!.eTag!;
        expect((await bytesOf((await store.read(k, { ifMatch: before }))!.body)).toString()).toBe("first version");
        await t.put(k, Buffer.from("second version"));
        await expect(store.read(k, { ifMatch: before })).rejects.toBeInstanceOf(ObjectChangedError);
        await expect(store.read(k, { ifMatch: before, range: { start: 0, end: 3 } })).rejects.toBeInstanceOf(ObjectChangedError);
      });

      it("upholds If-Match itself where storage ignores the header (it compares the ETag it was served)", async () => {
        const k = key("if-match-unchecked");
        await t.put(k, Buffer.from("first version"));
        const before = (await store.head(k))!.eTag!;
        await t.put(k, Buffer.from("second version"));
        const ignoring = t.ignoringIfMatch();
        try {
          // Without the header the storage serves the second version; the store refuses it.
          expect((await bytesOf((await ignoring.store.read(k))!.body)).toString()).toBe("second version");
          await expect(ignoring.store.read(k, { ifMatch: before })).rejects.toBeInstanceOf(ObjectChangedError);
          await expect(ignoring.store.read(k, { ifMatch: before, range: { start: 0, end: 3 } })).rejects.toBeInstanceOf(ObjectChangedError);
        } finally {
          ignoring.close();
        }
      });
    });

    describe("copy", () => {
      it("copies with the type, disposition and metadata given, not the source's, and names the copy's ETag", async () => {
        const src = key("copy-src");
        const dst = key("copy-dst").replace("pending/", "verified/");
        const body = randomBytes(10_000);
        await t.put(src, body, "text/html");
        const eTag = (await store.head(src))!.eTag!;
        const result = await store.copy(src, dst, { size: body.length, contentType: "image/png", contentDisposition: "attachment", metadata: { "intake-upload": "u1" }, ifMatch: eTag });
        const head = (await store.head(dst))!;
        expect(head).toMatchObject({ size: body.length, eTag: md5Hex(body), contentType: "image/png", metadata: { "intake-upload": "u1" } });
        expect(result.eTag).toBe(head.eTag);
        // A SHA-256 is optional (AWS computes one on request; fauxqs and RGW do not), never wrong.
        if (result.sha256 !== null) expect(result.sha256).toBe(createHash("sha256").update(body).digest("hex"));
        expect((await bytesOf((await store.read(dst))!.body)).equals(body)).toBe(true);
      });

      it("refuses a copy whose source no longer has the ETag named, where storage honours copy-if-match, as declared", async () => {
        const src = key("copy-replaced");
        const dst = key("copy-replaced-dst").replace("pending/", "verified/");
        await t.put(src, Buffer.from("checked bytes"));
        const checked = (await store.head(src))!.eTag!;
        const replacement = Buffer.from("replaced bytes!");
        await t.put(src, replacement);
        const outcome = await store.copy(src, dst, { size: replacement.length, contentType: "application/octet-stream", metadata: {}, ifMatch: checked }).then(
          (r) => r,
          (e: unknown) => e,
        );
        if (store.capabilities.honoursCopyIfMatch) {
          expect(outcome).toBeInstanceOf(ObjectChangedError);
          expect(await store.head(dst)).toBeNull();
        } else {
          // Declared: storage copies whatever is there. What it copied shows in the result,
          // which is what a caller that must know (finalize) has to compare.
          expect(outcome).not.toBeInstanceOf(Error);
          expect((outcome as { eTag: string | null }).eTag).toBe(md5Hex(replacement));
          expect((outcome as { eTag: string | null }).eTag).not.toBe(checked);
        }
      });

      it("fails a copy of a missing source without creating the target", async () => {
        const dst = key("copy-nothing").replace("pending/", "verified/");
        await expect(store.copy(key("copy-missing"), dst, { size: 1, contentType: "image/png", metadata: {} })).rejects.toThrow();
        expect(await store.head(dst)).toBeNull();
      });
    });

    describe("put (bytes held in memory)", () => {
      const sha256Hex = (b: Buffer) => createHash("sha256").update(b).digest("hex");
      it("stores exactly the bytes with the type, disposition and metadata given, and names their ETag", async () => {
        const k = key("put").replace("pending/", "verified/");
        const body = randomBytes(20_000);
        const { eTag } = await store.put(k, body, { contentType: "image/png", contentDisposition: 'attachment; filename="a.png"', metadata: { sha256: sha256Hex(body), "upload-id": "u1" }, sha256Hex: sha256Hex(body) });
        expect(eTag).toBe(md5Hex(body));
        const head = await store.head(k);
        expect(head).toMatchObject({ size: body.length, eTag: md5Hex(body), contentType: "image/png", metadata: { sha256: sha256Hex(body), "upload-id": "u1" } });
        const read = await store.read(k);
        expect((await bytesOf(read!.body)).equals(body)).toBe(true);
        await store.delete(k);
      });
      it("refuses bytes whose SHA-256 is not the one given where storage verifies signatures, as declared", async () => {
        const k = key("put-wrong-sha");
        const body = Buffer.from("the bytes that were scanned");
        const put = store.put(k, body, { contentType: "text/plain", metadata: {}, sha256Hex: sha256Hex(Buffer.from("other bytes")) });
        if (store.capabilities.verifiesSignatures) {
          await expect(put).rejects.toThrow();
          expect(await store.head(k)).toBeNull();
        } else {
          await expect(put).resolves.toMatchObject({ eTag: md5Hex(body) });
        }
        await store.delete(k);
      });
      it("refuses a SHA-256 that is not 64 hex digits before sending anything", async () => {
        const k = key("put-bad-sha");
        await expect(store.put(k, Buffer.from("x"), { contentType: "text/plain", metadata: {}, sha256Hex: "abc" })).rejects.toThrow(/sha256Hex/);
        expect(await store.head(k)).toBeNull();
      });
    });

    describe("multipart from memory (the server's own upload)", () => {
      it("takes parts sent by the store itself and completes into the concatenated object", async () => {
        const k = key("own-multipart").replace("pending/", "quarantine/");
        const first = randomBytes(8 * MiB);
        const last = randomBytes(1000);
        const uploadId = await store.createMultipart(k, "application/octet-stream");
        const parts = [
          { partNumber: 1, eTag: await store.uploadPart(k, uploadId, 1, first) },
          { partNumber: 2, eTag: await store.uploadPart(k, uploadId, 2, last) },
        ];
        await store.completeMultipart(k, uploadId, parts);
        const read = await store.read(k);
        expect((await bytesOf(read!.body)).equals(Buffer.concat([first, last]))).toBe(true);
        await store.delete(k);
      });
    });

    describe("delete", () => {
      it("deletes, and deleting again or deleting what never existed is not an error", async () => {
        const k = key("delete");
        await t.put(k, Buffer.from("x"));
        await store.delete(k);
        expect(await store.head(k)).toBeNull();
        await expect(store.delete(k)).resolves.toBeUndefined();
        await expect(store.delete(key("never-existed"))).resolves.toBeUndefined();
      });
    });

    describe("listing (ListObjectsV2)", () => {
      // Keys of the shapes the pipeline writes: lowercase hex ids, a staging copy's
      // ".promoting-<uuid>" right after its upload's key ('.' sorts before every digit).
      // fauxqs 2.4.1 sorts with localeCompare, which agrees with S3's binary order for these;
      // it would not for ids mixing upper case or '_' with lower case (none of ours do).
      const root = `quarantine/list-contract-${randomBytes(4).toString("hex")}`;
      const keys = [`${root}/t/0a`, `${root}/t/0a.promoting-1b2c`, `${root}/t/0a0`, `${root}/t/1f`, `${root}/u/00`];
      beforeAllOrFailEach(async () => {
        for (const k of keys) await t.put(k, Buffer.from(k));
        await t.put(`${root}-outside/t/0a`, Buffer.from("not under the prefix"));
      });

      it("lists only keys under the prefix, in key order, with size and last-modified time", async () => {
        const page = await store.listObjects(`${root}/`);
        expect(page.objects.map((o) => o.key)).toEqual(keys);
        expect(page.next).toBeNull();
        for (const o of page.objects) {
          expect(o.size).toBe(Buffer.byteLength(o.key));
          expect(Math.abs(o.lastModified!.getTime() - Date.now())).toBeLessThan(10 * 60_000);
        }
      });

      it("pages with a continuation token, every key exactly once, the last page without one", async () => {
        const seen: string[] = [];
        let next: string | null = null;
        let pages = 0;
        do {
          const page = await store.listObjects(`${root}/`, { maxKeys: 2, ...(next ? { continuationToken: next } : {}) });
          expect(page.objects.length).toBeLessThanOrEqual(2);
          seen.push(...page.objects.map((o) => o.key));
          next = page.next;
          pages++;
        } while (next && pages < 10);
        expect(seen).toEqual(keys);
        expect(pages).toBe(3);
      });

      it("starts strictly after a key (a later walk going on), and answers an empty page past the end", async () => {
        expect((await store.listObjects(`${root}/`, { startAfter: keys[1] })).objects.map((o) => o.key)).toEqual(keys.slice(2));
        expect(await store.listObjects(`${root}/`, { startAfter: keys.at(-1) })).toEqual({ objects: [], next: null });
        expect(await store.listObjects(`${root}-nothing-here/`)).toEqual({ objects: [], next: null });
      });
    });

    describe("multipart", () => {
      const part1 = randomBytes(MIN_PART);
      const part2 = randomBytes(1234);

      async function uploadPart(k: string, uploadId: string, n: number, body: Buffer): Promise<string> {
        const signed = await store.presignPart(k, uploadId, n, { contentLength: body.length, expiresIn: 300 });
        expect(signed.headers).toEqual({});
        const res = await send(signed, body, {});
        expect(res.status, await res.text()).toBe(200);
        const eTag = res.headers.get("etag");
        expect(eTag).toBeTruthy();
        return eTag!;
      }

      it("creates, takes parts through presigned URLs, completes into the concatenated object", async () => {
        const k = key("multipart");
        const uploadId = await store.createMultipart(k, "application/zip");
        expect(uploadId).toBeTruthy();
        const e1 = await uploadPart(k, uploadId, 1, part1);
        const e2 = await uploadPart(k, uploadId, 2, part2);
        await store.completeMultipart(k, uploadId, [
          { partNumber: 1, eTag: e1 },
          { partNumber: 2, eTag: e2 },
        ]);
        const head = (await store.head(k))!;
        expect(head).toMatchObject({ size: part1.length + part2.length, contentType: "application/zip" });
        // A multipart ETag names its parts: md5 of the parts' md5s, then "-<count>".
        const partsMd5 = createHash("md5").update(Buffer.concat([part1, part2].map((p) => createHash("md5").update(p).digest()))).digest("hex");
        expect(head.eTag).toBe(`${partsMd5}-2`);
        expect((await bytesOf((await store.read(k))!.body)).equals(Buffer.concat([part1, part2]))).toBe(true);
      });

      it("refuses a part of another length than signed where storage verifies signatures, as declared", async () => {
        const k = key("multipart-misused");
        const uploadId = await store.createMultipart(k, "application/zip");
        try {
          const signed = await store.presignPart(k, uploadId, 1, { contentLength: 100, expiresIn: 300 });
          const res = await send(signed, randomBytes(101), {});
          await res.arrayBuffer();
          expect(res.status === 403).toBe(store.capabilities.verifiesSignatures);
        } finally {
          await store.abortMultipart(k, uploadId);
        }
      });

      it("lists parts where storage implements ListParts, and says it cannot where not, as declared", async () => {
        const k = key("multipart-parts");
        const uploadId = await store.createMultipart(k, "application/zip");
        try {
          const e1 = await uploadPart(k, uploadId, 1, part1);
          const listed = await store.listParts(k, uploadId).then(
            (parts) => parts,
            (e: unknown) => e,
          );
          if (store.capabilities.listsParts) expect(listed).toEqual([{ partNumber: 1, size: part1.length, eTag: e1 }]);
          else expect(listed).toBeInstanceOf(StorageUnsupportedError);
        } finally {
          await store.abortMultipart(k, uploadId);
        }
      });

      it("lists uploads in progress where storage implements it, and says it cannot where not, as declared", async () => {
        const prefix = `pending/contract-list-${randomBytes(4).toString("hex")}/`;
        const k = `${prefix}a`;
        const uploadId = await store.createMultipart(k, "application/zip");
        try {
          const listed = await store.listMultipartUploads(prefix).then(
            (u) => u,
            (e: unknown) => e,
          );
          if (store.capabilities.listsMultipartUploads) {
            expect(listed).toEqual([{ key: k, uploadId, initiated: expect.any(Date) }]);
          } else {
            expect(listed).toBeInstanceOf(StorageUnsupportedError);
          }
        } finally {
          await store.abortMultipart(k, uploadId);
        }
        if (store.capabilities.listsMultipartUploads) expect(await store.listMultipartUploads(prefix)).toEqual([]);
      });

      it("aborts: no object, parts refused afterwards, and aborting again is not an error", async () => {
        const k = key("multipart-abort");
        const uploadId = await store.createMultipart(k, "application/zip");
        await uploadPart(k, uploadId, 1, part2);
        await store.abortMultipart(k, uploadId);
        await expect(store.abortMultipart(k, uploadId)).resolves.toBeUndefined();
        expect(await store.head(k)).toBeNull();
        const late = await store.presignPart(k, uploadId, 2, { contentLength: part2.length, expiresIn: 300 });
        const res = await send(late, part2, {});
        await res.arrayBuffer();
        expect(res.status).toBe(404);
        await expect(store.completeMultipart(k, uploadId, [{ partNumber: 1, eTag: md5Hex(part2) }])).rejects.toThrow();
        expect(await store.head(k)).toBeNull();
      });

      it("refuses to complete with a part ETag that is not the stored part's", async () => {
        const k = key("multipart-bad-etag");
        const uploadId = await store.createMultipart(k, "application/zip");
        try {
          await uploadPart(k, uploadId, 1, part2);
          await expect(store.completeMultipart(k, uploadId, [{ partNumber: 1, eTag: `"${md5Hex(Buffer.from("other"))}"` }])).rejects.toThrow();
          expect(await store.head(k)).toBeNull();
        } finally {
          await store.abortMultipart(k, uploadId);
        }
      });
    });
  });
}
