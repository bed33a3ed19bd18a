import { createHash, randomBytes } from "node:crypto";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { afterAll, describe, expect, it } from "vitest";
import { contentDisposition, objectKey } from "@intake/domain";
import { beforeAllOrFailEach } from "@intake/test";
import { png, zip } from "./fixtures.ts";
import { MiB, sha256Of, startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * A promoted object is safe whoever serves it: it carries the verified type and
 * Content-Disposition: attachment in its own metadata (CopyObject with MetadataDirective
 * REPLACE), so a plain GET of it (a CDN in front of the bucket, a presigned GET made by
 * another tool, without response-content-* overrides) serves it as the API's download
 * does. The verified type is the canonical declared type, not file-type's name for the
 * bytes: an SVG starting with <?xml is "application/xml" to the sniffer, and a browser
 * would render that inline as XML.
 *
 * And the copy is confirmed for a multipart upload too, whose "-N" ETag Ceph RGW keeps on
 * copy and fauxqs replaces with the whole object's MD5 (the scan's MD5 confirms it there).
 */
const SVG = Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10" viewBox="0 0 10 10"><rect width="10" height="10" fill="#c00"/></svg>\n');
// Non-ASCII, a quote, a semicolon and a percent sign: each must be encoded, none may end the header value.
const FILENAME = 'résumé "final";100%.svg';

describe.each(["fauxqs", "rgw"] as const)("a promoted object on %s", (storage) => {
  let s: PipelineStack;
  beforeAllOrFailEach(async () => {
    s = await startPipelineStack({ storage, database: "sqlite", env: { MULTIPART_THRESHOLD_BYTES: String(5 * MiB), PART_SIZE_BYTES: String(5 * MiB) } });
  });
  afterAll(async () => s?.close());

  /** A GET as anyone with read access would make it: signed, with no response-* overrides. */
  async function plainGet(key: string) {
    const url = await getSignedUrl(s.storage.s3, new GetObjectCommand({ Bucket: s.storage.bucket, Key: key }), { expiresIn: 60 });
    expect(url).not.toMatch(/response-content/);
    const res = await fetch(url);
    return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()), contentType: res.headers.get("content-type"), disposition: res.headers.get("content-disposition") };
  }

  it("serves an SVG that starts with <?xml as image/svg+xml attachment, from a plain GET and from the download redirect", async () => {
    const { id } = await s.upload(SVG, { contentType: "image/svg+xml", filename: FILENAME, complete: true });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, reason: done.reason, detail: done.reasonDetail }).toEqual({ status: "verified", reason: null, detail: null });
    // The sniffer's answer: the reason the download type must not come from it.
    expect(done.sniffedType).toBe("application/xml");

    const plain = await plainGet(objectKey("verified", s.tenant, id));
    expect(plain.status).toBe(200);
    expect(plain.bytes.equals(SVG)).toBe(true);
    expect(plain.contentType).toBe("image/svg+xml");
    expect(plain.disposition).toBe(contentDisposition(FILENAME));
    // One quoted ASCII fallback with no quote, backslash or ';' of the name left in it, and
    // the real name percent-encoded (RFC 6266 / RFC 5987): nothing can end the value early.
    expect(plain.disposition).toMatch(/^attachment; filename="[^"\\;\x00-\x1f\x7f-\uffff]*"; filename\*=UTF-8''[A-Za-z0-9%._~-]+$/);
    expect(plain.disposition).toContain("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22%3B100%25.svg");

    const download = await s.download(id);
    expect(download.status).toBe(200);
    expect(download.bytes.equals(SVG)).toBe(true);
    expect(download.contentType).toBe("image/svg+xml");
    expect(download.disposition).toBe(contentDisposition(FILENAME));
  });

  it("stores the canonical type of an aliased declaration (image/jpg is image/jpeg; here image/x-png is image/png)", async () => {
    const bytes = png(6, 6);
    const { id } = await s.upload(bytes, { contentType: "image/x-png", filename: "pixel.png", complete: true });
    expect((await s.waitFor(id, ["verified", "quarantined"])).status).toBe("verified");
    const plain = await plainGet(objectKey("verified", s.tenant, id));
    expect({ type: plain.contentType, disposition: plain.disposition }).toEqual({ type: "image/png", disposition: contentDisposition("pixel.png") });
    expect((await s.download(id)).contentType).toBe("image/png");
  });

  it("promotes a multipart upload only as the checked bytes, and serves it as an attachment too", async () => {
    const bytes = zip([{ name: "data.bin", data: randomBytes(11 * MiB) }]);
    const call = async (path: string, body: unknown) => {
      const res = await fetch(s.apiUrl + path, { method: "POST", headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };
    const created = await call("/v1/uploads", { filename: "data.zip", contentType: "application/zip", size: bytes.length });
    expect(created.body).toMatchObject({ kind: "multipart", partCount: 3 });
    const id = created.body.uploadId as string;
    const signed = await call(`/v1/uploads/${id}/parts`, { partNumbers: [1, 2, 3] });
    const parts = [];
    for (const p of signed.body.parts as { partNumber: number; url: string; headers: Record<string, string> }[]) {
      const put = await fetch(p.url, { method: "PUT", headers: p.headers, body: bytes.subarray((p.partNumber - 1) * 5 * MiB, p.partNumber * 5 * MiB) });
      expect(put.status).toBe(200);
      parts.push({ partNumber: p.partNumber, etag: put.headers.get("etag")! });
    }
    expect((await call(`/v1/uploads/${id}/complete`, { parts })).status).toBe(200);

    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect({ status: done.status, detail: done.reasonDetail }).toEqual({ status: "verified", detail: null });
    expect(done.checkedETag).toMatch(/-3$/);
    expect(done.scannedMd5).toBe(createHash("md5").update(bytes).digest("hex"));
    const verified = await s.storage.store.head(objectKey("verified", s.tenant, id));
    // Promoted from the scan's own copy of the bytes (staged-copy.ts), not from the client's
    // parts: what holds is that the object says what was scanned, and is it (below).
    expect(verified?.metadata).toMatchObject({ sha256: sha256Of(bytes), verdict: "clean" });
    const plain = await plainGet(objectKey("verified", s.tenant, id));
    expect({ sha256: sha256Of(plain.bytes), type: plain.contentType, disposition: plain.disposition }).toEqual({ sha256: sha256Of(bytes), type: "application/zip", disposition: contentDisposition("data.zip") });
  });
});
