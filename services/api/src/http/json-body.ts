import type { IncomingMessage } from "node:http";
import { InvalidRequestError, PayloadTooLargeError, quoteForMessage } from "@intake/domain";
import { HttpError } from "./errors.ts";

/**
 * A small JSON body reader. The limit is enforced while the body streams in: a declared
 * Content-Length over the limit is refused before a byte is read, and a chunked body is
 * cut off as soon as it passes the limit, so an oversized request never sits in memory.
 */
export type JsonObject = Record<string, unknown>;

const JSON_TYPE = /^application\/(?:[a-z0-9.+-]+\+)?json$/;
// fatal: invalid UTF-8 is a malformed body, not text with U+FFFD in it. One decoder for every
// request: decode() without { stream: true } keeps no state from one call to the next.
const UTF8 = new TextDecoder("utf-8", { fatal: true });

export async function readJsonObject(req: IncomingMessage, limitBytes: number): Promise<JsonObject> {
  const declared = req.headers["content-length"];
  const chunked = req.headers["transfer-encoding"] !== undefined;
  // No body at all (Content-Length: 0 or neither header, RFC 9112 section 6.3): an empty
  // object, so `POST .../complete` with no body works for single-PUT uploads.
  if (!chunked && (declared === undefined || declared === "0")) return {};

  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (!JSON_TYPE.test(type)) {
    drain(req, limitBytes);
    throw new HttpError(415, "unsupported_media_type", "request bodies must be JSON (Content-Type: application/json)", { contentType: type || null });
  }
  if (declared !== undefined && Number(declared) > limitBytes) {
    drain(req, limitBytes);
    throw tooLarge(limitBytes);
  }

  return parseJsonObject(await readLimited(req, limitBytes));
}

/**
 * Reads with listeners rather than `for await`: leaving an async iterator early destroys
 * the stream, and with it the socket the 413 must still be written to.
 */
function readLimited(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limitBytes) {
        cleanup();
        drain(req, limitBytes);
        reject(tooLarge(limitBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new InvalidRequestError("incomplete_body", `the request body could not be read: ${err.message}`));
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

export function parseJsonObject(raw: Buffer): JsonObject {
  let text: string;
  try {
    text = UTF8.decode(raw);
  } catch {
    throw new InvalidRequestError("malformed_json", "the request body is not valid UTF-8");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new InvalidRequestError("malformed_json", `the request body is not valid JSON: ${(err as Error).message.slice(0, 200)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new InvalidRequestError("invalid_body", "the request body must be a JSON object");
  }
  return value as JsonObject;
}

/** Rejects any field not named in `allowed`: a typo must not silently fall back to a default. */
export function rejectUnknownFields(body: JsonObject, allowed: readonly string[], where = "body"): void {
  for (const field of Object.keys(body)) {
    if (!allowed.includes(field)) {
      throw new InvalidRequestError("unknown_field", `unknown field ${quoteForMessage(field, 100)} in ${where}`, { field: field.slice(0, 100), allowed });
    }
  }
}

function tooLarge(limitBytes: number): PayloadTooLargeError {
  return new PayloadTooLargeError("body_too_large", `the request body exceeds ${limitBytes} bytes`, { limit: limitBytes });
}

/**
 * Discard the rest of the body instead of destroying the socket: a reset mid-request makes
 * most clients report a connection error instead of the 413/415 we answer with. A client
 * that keeps sending far past the limit is cut off: it is no longer a mistake.
 */
const DISCARD_FACTOR = 16;
function drain(req: IncomingMessage, limitBytes: number): void {
  let discarded = 0;
  req.on("data", (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > limitBytes * DISCARD_FACTOR) req.socket.destroy();
  });
  req.resume();
}
