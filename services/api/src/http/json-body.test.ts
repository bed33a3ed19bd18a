import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorResponse } from "./errors.ts";
import { readJsonObject, rejectUnknownFields } from "./json-body.ts";
import { waitForEvent } from "@intake/testkit";

// A real HTTP server around the reader: the limit matters on a socket, not on a Buffer.
const LIMIT = 1024;
let server: http.Server;
let url: string;

beforeAll(async () => {
  server = http.createServer(async (req, res) => {
    try {
      const body = await readJsonObject(req, LIMIT);
      rejectUnknownFields(body, ["a", "b", "nested"]);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ body }));
    } catch (err) {
      const { status, body } = errorResponse(err);
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    }
  });
  server.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

async function post(body: RequestInit["body"] | undefined, headers: Record<string, string> = { "content-type": "application/json" }) {
  const res = await fetch(url, { method: "POST", body, headers, ...(body instanceof ReadableStream ? { duplex: "half" } : {}) } as RequestInit);
  return { status: res.status, json: (await res.json()) as { body?: unknown; error?: { code: string; message: string; details?: Record<string, unknown> } } };
}

describe("JSON body reader", () => {
  it("parses a JSON object", async () => {
    const r = await post(JSON.stringify({ a: 1, b: "x" }));
    expect(r).toEqual({ status: 200, json: { body: { a: 1, b: "x" } } });
  });

  it("accepts application/*+json and a charset parameter", async () => {
    expect((await post('{"a":1}', { "content-type": "application/merge-patch+json; charset=utf-8" })).status).toBe(200);
  });

  it("treats a request without a body as an empty object", async () => {
    expect(await post(undefined, {})).toEqual({ status: 200, json: { body: {} } });
  });

  it("answers 400 malformed_json for broken JSON and for invalid UTF-8", async () => {
    expect((await post('{"a":')).json.error?.code).toBe("malformed_json");
    expect((await post(new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]))).json.error?.code).toBe("malformed_json");
  });

  it("answers 400 invalid_body when the JSON is not an object", async () => {
    for (const text of ["[1,2]", "null", '"x"', "42"]) {
      const r = await post(text);
      expect(r.status).toBe(400);
      expect(r.json.error?.code).toBe("invalid_body");
    }
  });

  it("answers 415 for a body that is not JSON", async () => {
    const r = await post("a=1", { "content-type": "application/x-www-form-urlencoded" });
    expect(r.status).toBe(415);
    expect(r.json.error?.code).toBe("unsupported_media_type");
    expect((await post('{"a":1}', { "content-type": "text/plain" })).status).toBe(415);
  });

  it("refuses a declared Content-Length over the limit with 413 before reading it", async () => {
    const r = await post(JSON.stringify({ a: "x".repeat(LIMIT * 4) }));
    expect(r.status).toBe(413);
    expect(r.json.error).toMatchObject({ code: "body_too_large", details: { limit: LIMIT } });
  });

  it("answers 413 to a chunked body as soon as it passes the limit, while the client is still sending", async () => {
    // No Content-Length: the reader can only count as it goes. The client sends one byte
    // past the limit and then holds the request open: a reader that waited for the end of
    // the body (or buffered it) would never answer, and the deadline below would fail.
    const target = new URL(url);
    const req = http.request({ host: target.hostname, port: target.port, method: "POST", path: "/", headers: { "content-type": "application/json", "transfer-encoding": "chunked" } });
    const answered = waitForEvent<[http.IncomingMessage]>(req, "response", { timeoutMs: 5000, message: "a 413 before the request body ended" });
    req.write('{"a":"');
    req.write(" ".repeat(LIMIT - 6 + 1));
    const [res] = await answered;
    expect(req.writableEnded).toBe(false);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    expect(res.statusCode).toBe(413);
    expect(JSON.parse(Buffer.concat(chunks).toString()).error.code).toBe("body_too_large");
    req.destroy();
  });

  it("accepts a chunked body of exactly the limit", async () => {
    const body = JSON.stringify({ a: "x".repeat(LIMIT - 8) });
    expect(body.length).toBe(LIMIT);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        const bytes = new TextEncoder().encode(body);
        // Split across chunk boundaries, including inside the closing quote and brace.
        for (let i = 0; i < bytes.length; i += 100) controller.enqueue(bytes.subarray(i, i + 100));
        controller.close();
      },
    });
    expect((await post(stream)).status).toBe(200);
  });

  it("cuts the connection of a client that keeps sending far past the limit", async () => {
    const target = new URL(url);
    const req = http.request({ host: target.hostname, port: target.port, method: "POST", path: "/", headers: { "content-type": "application/json", "transfer-encoding": "chunked" } });
    req.on("error", () => undefined);
    req.on("response", (res) => res.resume());
    const closed = waitForEvent(req, "close", { timeoutMs: 10_000, message: "the server to close a connection sent 64 times the limit" });
    const chunk = " ".repeat(LIMIT);
    // 64 times the limit: four times the discard allowance; the server must hang up.
    for (let i = 0; i < 64 && !req.destroyed; i++) {
      if (!req.write(chunk)) await Promise.race([waitForEvent(req, "drain", { timeoutMs: 10_000, message: "drain" }), waitForEvent(req, "close", { timeoutMs: 10_000, message: "close" })]);
    }
    await closed;
    expect(req.writableEnded).toBe(false);
  });

  it("names an unknown field", async () => {
    const r = await post(JSON.stringify({ a: 1, sizee: 3 }));
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ code: "unknown_field", details: { field: "sizee" } });
  });

  it("quotes an unknown field's name into the message as printable ASCII (no bidi override echoed)", async () => {
    const r = await post(JSON.stringify({ a: 1, "size\u202eexe": 3 }));
    expect(r.json.error?.code).toBe("unknown_field");
    expect(r.json.error?.message).toContain("size\\u202eexe");
    expect(r.json.error?.message).not.toMatch(/[^\x20-\x7e]/);
  });

  it("keeps __proto__ as plain data (no prototype pollution) and rejects it as unknown", async () => {
    const r = await post('{"__proto__":{"polluted":true}}');
    expect(r.json.error).toMatchObject({ code: "unknown_field", details: { field: "__proto__" } });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
