import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, scrubSecrets } from "./logger.ts";

const PRESIGNED =
  "http://127.0.0.1:4566/intake-uploads/pending/t/u?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20261122%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261122T000000Z&X-Amz-Expires=600&X-Amz-Signature=deadbeefcafebabe0123456789&X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost";
const KEY = "ik_live_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      lines.push(String(chunk));
      cb();
    },
  });
  return { lines, log: createLogger({ level: "debug", name: "t", destination }) };
}

describe("logger redaction", () => {
  it("scrubs signatures, credentials and bearer tokens from free text", () => {
    const s = scrubSecrets(`PUT ${PRESIGNED} with Authorization: Bearer ${KEY}`);
    expect(s).not.toContain("deadbeefcafebabe");
    expect(s).not.toContain("AKIAEXAMPLE");
    expect(s).not.toContain(KEY);
    expect(s).toContain("X-Amz-Expires=600");
  });

  it("never writes a presigned URL, an API key or an auth header, wherever they hide", () => {
    const { lines, log } = capture();
    log.info({ url: PRESIGNED, headers: { authorization: `Bearer ${KEY}` } }, "created");
    log.info(`message quoting ${PRESIGNED}`);
    log.error({ err: new Error(`request to ${PRESIGNED} failed for ${KEY}`) }, "failed");
    log.debug({ nested: { deep: { location: PRESIGNED, note: `key ${KEY}` } } }, "nested");
    const out = lines.join("");
    expect(lines).toHaveLength(4);
    expect(out).not.toContain("deadbeefcafebabe");
    expect(out).not.toContain("AKIAEXAMPLE");
    expect(out).not.toContain(KEY);
    expect(out).toContain("[REDACTED]");
  });
});
