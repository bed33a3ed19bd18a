import type http from "node:http";

/**
 * S3's bucket CORS, which fauxqs lacks (it answers preflights 404 and sends no
 * Access-Control-* headers): browsers uploading straight to the local stand-in (Uppy, the
 * demo page) need PUT and POST allowed and ETag exposed, or a multipart upload never
 * finishes ("Missing ETag in uploadPart response headers"). The rule mirrors the one
 * provisionStorage puts on a real bucket (packages/storage/src/provision.ts).
 */
export type StorageCorsOrigins = readonly string[] | "*";

const ALLOWED_METHODS = "GET, HEAD, PUT, POST";
const ALLOWED_HEADERS = ["content-type", "content-md5", "x-amz-checksum-sha256"];
const EXPOSED_HEADERS = "ETag";

export function corsOriginAllowed(origins: StorageCorsOrigins, origin: string | undefined): boolean {
  if (!origin) return false;
  if (origins === "*") return true;
  return origins.some((o) => o.replace(/\/+$/, "").toLowerCase() === origin.toLowerCase());
}

/**
 * Answers a preflight as S3 does: 200 with the rule's headers when the origin, method and
 * every requested header match, 403 otherwise. Returns false when the request is no preflight.
 */
export function answerPreflight(origins: StorageCorsOrigins, req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const method = req.headers["access-control-request-method"];
  if (req.method !== "OPTIONS" || typeof method !== "string") return false;
  const origin = req.headers.origin;
  const requested = String(req.headers["access-control-request-headers"] ?? "")
    .split(",")
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
  const ok = corsOriginAllowed(origins, origin) && ALLOWED_METHODS.split(", ").includes(method.toUpperCase()) && requested.every((h) => ALLOWED_HEADERS.includes(h));
  req.resume();
  if (!ok) {
    res.writeHead(403, { "content-type": "application/xml", vary: "Origin" });
    res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessForbidden</Code><Message>CORSResponse: This CORS request is not allowed.</Message></Error>\n`);
    return true;
  }
  res.writeHead(200, {
    "access-control-allow-origin": origin!,
    "access-control-allow-methods": ALLOWED_METHODS,
    ...(requested.length ? { "access-control-allow-headers": requested.join(", ") } : {}),
    "access-control-max-age": "3000",
    vary: "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
  });
  res.end();
  return true;
}

/** The headers S3 adds to an actual request from an allowed origin (raw header pairs). */
export function corsResponseHeaders(origins: StorageCorsOrigins, origin: string | undefined): string[] {
  if (!corsOriginAllowed(origins, origin)) return [];
  return ["Access-Control-Allow-Origin", origin!, "Access-Control-Expose-Headers", EXPOSED_HEADERS, "Vary", "Origin"];
}
