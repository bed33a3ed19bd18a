import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bz2, cab, gz, mail, payload, pdfFlate, tar, uuencode, xz } from "./container-fixtures.ts";
import { zip } from "./fixtures.ts";
import type { PipelineStack } from "./support/stack.ts";
import { startStackOnSmallClamd } from "./support/small-clamd-stack.ts";

/**
 * Containers clamd never opens (a gzip that does not start its file, a cabinet with a
 * reserved field clamd refuses) hidden where the raw-byte checks (EmbeddedGzipCheck,
 * EmbeddedCabCheck) cannot see them: behind one byte inside a deflated ZIP member, a
 * FlateDecode stream, a base64 mail attachment, uuencoded data or another compressed
 * container. EICAR inside each is never scanned, so each must end quarantined.
 */
const WITHIN = 1000;
const behindByte = (b: Buffer) => Buffer.concat([Buffer.from("x"), b]);
const oddCab = () => {
  const c = cab({ "a.bin": payload(WITHIN) });
  c[4] = 1; // reserved1: clamd does not open it, cabextract does
  return c;
};

describe("containers clamd never opens, hidden from the raw-byte checks", () => {
  let stack: Awaited<ReturnType<typeof startStackOnSmallClamd>>;
  let s: PipelineStack;
  beforeAll(async () => {
    stack = await startStackOnSmallClamd();
    s = stack.s;
  }, 180_000);
  afterAll(async () => stack?.close());

  it.each([
    { name: "a gzip behind one byte in a deflated ZIP member", type: "application/zip", build: () => zip([{ name: "a.bin", data: behindByte(gz(payload(WITHIN))) }], { deflate: true }) },
    { name: "a gzip behind one byte in a PDF FlateDecode stream", type: "application/pdf", build: () => pdfFlate(behindByte(gz(payload(WITHIN)))) },
    { name: "a gzip behind one byte in a base64 mail attachment", type: "text/plain", build: () => mail(behindByte(gz(payload(WITHIN)))) },
    { name: "a gzip behind one byte, uuencoded (text/plain)", type: "text/plain", build: () => uuencode(behindByte(gz(payload(WITHIN)))) },
    { name: "a reserved1 = 1 cabinet, uuencoded (text/plain)", type: "text/plain", build: () => uuencode(oddCab()) },
    { name: "a gzip behind one byte in a gzip, in a mail attachment", type: "text/plain", build: () => mail(gz(behindByte(gz(payload(WITHIN))))) },
    { name: "a gzip behind one byte in a bzip2, in a mail attachment", type: "text/plain", build: () => mail(bz2(behindByte(gz(payload(WITHIN))))) },
    { name: "a gzip behind one byte in a gzip in a deflated ZIP member", type: "application/zip", build: () => zip([{ name: "a.gz", data: gz(behindByte(gz(payload(WITHIN)))) }], { deflate: true }) },
    { name: "a gzip behind one byte in a gzip in a PDF stream", type: "application/pdf", build: () => pdfFlate(gz(behindByte(gz(payload(WITHIN))))) },
    { name: "a gzip behind one byte in an xz, in a mail attachment", type: "text/plain", build: () => mail(xz(behindByte(gz(payload(WITHIN))))) },
    { name: "a gzip behind one byte in a tar member of a .tar.gz in a ZIP", type: "application/zip", build: () => zip([{ name: "a.tgz", data: gz(tar({ "a.bin": behindByte(gz(payload(WITHIN))) })) }], { deflate: true }) },
    { name: "a reserved1 = 1 cabinet in a deflated ZIP member", type: "application/zip", build: () => zip([{ name: "a.cab", data: oddCab() }], { deflate: true }) },
    { name: "a reserved1 = 1 cabinet in a PDF FlateDecode stream", type: "application/pdf", build: () => pdfFlate(oddCab()) },
    { name: "a reserved1 = 1 cabinet in a base64 mail attachment", type: "text/plain", build: () => mail(oddCab()) },
  ])("$name: never verified", async ({ type, build }) => {
    const { id } = await s.upload(build(), { contentType: type });
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done).toMatchObject({ status: "quarantined", reason: "unscannable" });
  });
});
