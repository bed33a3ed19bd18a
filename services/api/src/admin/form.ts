import type { IncomingMessage } from "node:http";
import { InvalidRequestError, PayloadTooLargeError } from "@intake/domain";

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
  const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
  // No text column stores a NUL (PostgreSQL refuses it outright): refused here, once for
  // every field of every admin form, rather than as a database error deep in a route.
  for (const [name, value] of form) if (name.includes("\u0000") || value.includes("\u0000")) throw new InvalidRequestError("nul_in_form", `the form field ${JSON.stringify(name.replace(/\u0000/g, "").slice(0, 40))} holds a NUL character`);
  return form;
}
