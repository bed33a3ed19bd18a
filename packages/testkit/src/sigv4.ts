import { createHash, createHmac } from "node:crypto";

/**
 * An independent check of a SigV4 query-string signature (AWS S3 API reference,
 * "Authenticating Requests: Using Query Parameters"), written from the documented
 * algorithm, not from the SDK: canonical request, string to sign, signing key, signature.
 * It recomputes what a server computes from the request it receives, so a URL passes only
 * when the method, path, query and every signed header it is sent with are the ones signed.
 */
export interface PresignedRequestToCheck {
  method: string;
  url: string;
  /** The headers the client sends (host is taken from the URL). */
  headers: Record<string, string>;
}

const hmac = (key: Buffer | string, data: string) => createHmac("sha256", key).update(data, "utf8").digest();
const sha256Hex = (data: string) => createHash("sha256").update(data, "utf8").digest("hex");

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ escaped. */
export function uriEncode(value: string, keepSlash = false): string {
  let out = "";
  for (const byte of Buffer.from(value, "utf8")) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === "/")) out += c;
    else out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export function expectedSignature(r: PresignedRequestToCheck, secretAccessKey: string): string {
  const u = new URL(r.url);
  const params = [...u.searchParams.entries()].filter(([k]) => k !== "X-Amz-Signature");
  const amzDate = u.searchParams.get("X-Amz-Date") ?? "";
  const [, date, region, service] = (u.searchParams.get("X-Amz-Credential") ?? "").split("/");
  const signedHeaders = (u.searchParams.get("X-Amz-SignedHeaders") ?? "").split(";");
  const sent: Record<string, string> = { host: u.host };
  for (const [k, v] of Object.entries(r.headers)) sent[k.toLowerCase()] = v;
  const canonicalQuery = params
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  // S3 signs the path as sent (already encoded once; it is not encoded a second time).
  const canonicalRequest = [
    r.method,
    u.pathname,
    canonicalQuery,
    signedHeaders.map((h) => `${h}:${(sent[h] ?? "").trim().replace(/\s+/g, " ")}\n`).join(""),
    signedHeaders.join(";"),
    "UNSIGNED-PAYLOAD",
  ].join("\n");
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256Hex(canonicalRequest)].join("\n");
  const key = hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, date!), region!), service!), "aws4_request");
  return createHmac("sha256", key).update(stringToSign, "utf8").digest("hex");
}

/** True when the URL's signature is the one the secret gives for this request. */
export function signatureHolds(r: PresignedRequestToCheck, secretAccessKey: string): boolean {
  return new URL(r.url).searchParams.get("X-Amz-Signature") === expectedSignature(r, secretAccessKey);
}
