import http from "node:http";
import https from "node:https";
import { AddressRefusedError, checkEndpointUrl, guardedLookup, type UrlRules } from "./address-guard.ts";

/** What one POST came to. `refused`: the guard stopped it before a connection was made. */
export type SendResult =
  | { kind: "response"; statusCode: number; latencyMs: number; bodyExcerpt: string }
  | { kind: "error"; latencyMs: number; error: string }
  | { kind: "refused"; latencyMs: number; error: string };

export interface SendOptions extends UrlRules {
  timeoutMs: number;
}

/** How much of a receiver's answer is read (and at most kept, as an excerpt in the log). */
const RESPONSE_READ_LIMIT = 4096;
const EXCERPT_CHARS = 200;
const USER_AGENT = "Intake-Webhooks/1";

/**
 * POSTs a signed body. node:http rather than fetch: its `lookup` option is the only place
 * the resolved address can be checked at connect time (fetch resolves inside undici with no
 * such hook per request). A fresh agent per request (agent: false), so no pooled socket
 * carries a connection checked for another name. Redirects are never followed (node:http
 * does not): a 3xx is an answer like any other non-2xx, a failed attempt. The deadline
 * covers connecting, sending and reading the answer; the answer is read up to 4 KiB and
 * then the socket is dropped, so a receiver cannot make us buffer or wait for more.
 */
export function postSigned(rawUrl: string, headers: Record<string, string>, body: string, o: SendOptions): Promise<SendResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let url: URL;
  try {
    url = checkEndpointUrl(rawUrl, o);
  } catch (err) {
    return Promise.resolve({ kind: "refused", latencyMs: elapsed(), error: (err as Error).message });
  }
  const client = url.protocol === "https:" ? https : http;
  const payload = Buffer.from(body, "utf8");
  return new Promise<SendResult>((resolve) => {
    let settled = false;
    const settle = (r: SendResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = client.request(url, {
      method: "POST",
      agent: false,
      lookup: guardedLookup(o.allow) as unknown as http.RequestOptions["lookup"],
      headers: { ...headers, "content-type": "application/json", "content-length": String(payload.length), "user-agent": USER_AGENT },
    });
    const timer = setTimeout(() => {
      settle({ kind: "error", latencyMs: elapsed(), error: `no answer within ${o.timeoutMs} ms` });
      req.destroy();
    }, o.timeoutMs);
    req.on("error", (err) => {
      if (err instanceof AddressRefusedError) settle({ kind: "refused", latencyMs: elapsed(), error: err.message });
      else settle({ kind: "error", latencyMs: elapsed(), error: describe(err) });
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      let received = 0;
      const finish = () => {
        const text = Buffer.concat(chunks).toString("utf8").slice(0, EXCERPT_CHARS);
        settle({ kind: "response", statusCode: res.statusCode ?? 0, latencyMs: elapsed(), bodyExcerpt: text });
        res.destroy();
      };
      res.on("data", (chunk: Buffer) => {
        if (received >= RESPONSE_READ_LIMIT) return;
        chunks.push(chunk.subarray(0, RESPONSE_READ_LIMIT - received));
        received += chunk.length;
        if (received >= RESPONSE_READ_LIMIT) finish();
      });
      res.on("end", finish);
      res.on("error", finish);
    });
    req.end(payload);
  });
}

function describe(err: NodeJS.ErrnoException): string {
  return err.code ? `${err.code}: ${err.message}` : err.message;
}
