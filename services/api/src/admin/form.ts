import type { IncomingMessage } from "node:http";
import { PayloadTooLargeError } from "@intake/domain";

/**
 * Reads an application/x-www-form-urlencoded body (the admin pages' forms, which work
 * without JavaScript) up to a limit. Small enough to write here: URLSearchParams does the
 * decoding; a body parser package would add a second JSON reader beside json-body.ts.
 */
export async function readForm(req: IncomingMessage, limitBytes: number): Promise<URLSearchParams> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limitBytes) throw new PayloadTooLargeError("form_too_large", `the form is larger than ${limitBytes} bytes`);
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (received > limitBytes) throw new PayloadTooLargeError("form_too_large", `the form is larger than ${limitBytes} bytes`);
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}
