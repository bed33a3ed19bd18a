// Recognises, from the request line and headers alone, the S3 requests that create an
// object (the ones for which S3 fires s3:ObjectCreated:*), so the proxy can forward the
// body untouched and decide afterwards whether to emit an event.
import type { IncomingHttpHeaders } from "node:http";
import type { ObjectCreatedEventName } from "./s3-event.ts";

export type ObjectCreatingRequest =
  | { eventName: Exclude<ObjectCreatedEventName, "ObjectCreated:Post">; bucket: string; key: string }
  /** Presigned POST: the key is a form field, known only once the body has streamed by. */
  | { eventName: "ObjectCreated:Post"; bucket: string; boundary: string };

// Query sub-resources that make a PUT on an object key something other than a new
// object version (S3 fires no ObjectCreated for them). fauxqs would treat several of them
// as a plain PutObject, so we must not take its 200 as proof an object was created.
const NON_CREATING_PUT_SUBRESOURCES = [
  "uploadId",
  "partNumber",
  "tagging",
  "acl",
  "retention",
  "legal-hold",
  "renameObject",
  "torrent",
  "restore",
];

export function classifyRequest(
  method: string | undefined,
  rawUrl: string | undefined,
  headers: IncomingHttpHeaders,
  bucket: string,
): ObjectCreatingRequest | undefined {
  if (method !== "PUT" && method !== "POST") return undefined;
  const target = locate(rawUrl ?? "/", headers.host, bucket);
  if (!target) return undefined;
  const { key, query } = target;

  if (method === "PUT") {
    // PUT on the bucket itself is CreateBucket / bucket configuration.
    if (!key) return undefined;
    if (NON_CREATING_PUT_SUBRESOURCES.some((name) => query.has(name))) return undefined;
    // CopyObject is a PUT with x-amz-copy-source; S3 reports it as :Copy, not :Put.
    const eventName = headers["x-amz-copy-source"] ? "ObjectCreated:Copy" : "ObjectCreated:Put";
    return { eventName, bucket, key };
  }

  // POST
  if (!key) {
    // POST on the bucket is either a browser form upload (multipart/form-data) or
    // DeleteObjects (?delete, XML body).
    const contentType = headers["content-type"] ?? "";
    if (!/multipart\/form-data/i.test(contentType)) return undefined;
    const boundary = /boundary=(?:"([^"]+)"|([^\s;]+))/i.exec(contentType);
    if (!boundary) return undefined;
    return { eventName: "ObjectCreated:Post", bucket, boundary: boundary[1] ?? boundary[2]! };
  }
  // POST ?uploads is CreateMultipartUpload (no object yet); POST ?uploadId=... completes it.
  // Parts (PUT ?partNumber&uploadId) never produce events: one upload, one event.
  if (query.has("uploadId") && !query.has("uploads")) {
    return { eventName: "ObjectCreated:CompleteMultipartUpload", bucket, key };
  }
  return undefined;
}

/**
 * The response headers a GetObject/HeadObject asks S3 to override (response-content-type,
 * response-content-disposition, ...: S3 API "Overriding response header values"). fauxqs
 * ignores them, so a presigned download would come back with the stored type and no
 * Content-Disposition: the proxy applies them, so the dev stack shows the safeguard the
 * API asked for. Empty for anything but a GET/HEAD of an object in our bucket.
 */
const RESPONSE_OVERRIDES: Record<string, string> = {
  "response-content-type": "content-type",
  "response-content-disposition": "content-disposition",
  "response-content-language": "content-language",
  "response-content-encoding": "content-encoding",
  "response-cache-control": "cache-control",
  "response-expires": "expires",
};

export function responseOverrides(method: string | undefined, rawUrl: string | undefined, headers: IncomingHttpHeaders, bucket: string): Map<string, string> {
  const out = new Map<string, string>();
  if (method !== "GET" && method !== "HEAD") return out;
  const target = locate(rawUrl ?? "/", headers.host, bucket);
  if (!target?.key) return out;
  for (const [param, header] of Object.entries(RESPONSE_OVERRIDES)) {
    const value = target.query.get(param);
    if (value !== null) out.set(header, value);
  }
  return out;
}

/** Raw header pairs with the named headers replaced (case-insensitively) by `overrides`. */
export function overrideRawHeaders(raw: string[], overrides: Map<string, string>): string[] {
  if (overrides.size === 0) return raw;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!overrides.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  for (const [name, value] of overrides) out.push(name, value);
  return out;
}

/** Splits a request into key and query for our bucket, path-style or virtual-hosted. */
function locate(
  rawUrl: string,
  host: string | undefined,
  bucket: string,
): { key: string; query: URLSearchParams } | undefined {
  const q = rawUrl.indexOf("?");
  const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const query = new URLSearchParams(q === -1 ? "" : rawUrl.slice(q + 1));
  const hostname = (host ?? "").replace(/:\d+$/, "").toLowerCase();
  let encodedKey: string;
  if (hostname.startsWith(`${bucket.toLowerCase()}.`)) {
    encodedKey = path.replace(/^\/+/, "");
  } else {
    const prefix = `/${bucket}`;
    if (path !== prefix && !path.startsWith(`${prefix}/`)) return undefined;
    encodedKey = path.slice(prefix.length + 1);
  }
  try {
    // Keys travel percent-encoded in the path; '+' is a literal plus there, not a space.
    return { key: decodeURIComponent(encodedKey), query };
  } catch {
    return undefined;
  }
}

/**
 * Reads the form fields that precede the "file" part of a multipart/form-data body as it
 * streams past, without holding the file itself: S3 ignores fields after "file", and the
 * fields before it are small (S3 caps the policy form), so only that prefix is buffered.
 */
export class FormFieldSniffer {
  readonly boundary: string;
  private buf: Buffer = Buffer.alloc(0);
  private finished = false;
  fields: Record<string, string> = {};
  filename: string | undefined;
  /** Set when the prefix grew past the cap without reaching the file part. */
  overflow = false;
  private static readonly MAX_PREFIX = 1024 * 1024;

  constructor(boundary: string) {
    this.boundary = boundary;
  }

  get done(): boolean {
    return this.finished;
  }

  push(chunk: Buffer): void {
    if (this.finished) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    this.parse();
    if (!this.finished && this.buf.length > FormFieldSniffer.MAX_PREFIX) {
      this.overflow = true;
      this.finish();
    }
  }

  /** The object key S3 would store: the "key" field with ${filename} substituted. */
  key(): string | undefined {
    const key = this.fields["key"] ?? findCaseInsensitive(this.fields, "key");
    if (key === undefined) return undefined;
    return key.replaceAll("${filename}", this.filename ?? "");
  }

  field(name: string): string | undefined {
    return findCaseInsensitive(this.fields, name);
  }

  private finish(): void {
    this.finished = true;
    this.buf = Buffer.alloc(0);
  }

  private parse(): void {
    const delimiter = Buffer.from(`--${this.boundary}`);
    const buf = this.buf;
    let pos = buf.indexOf(delimiter);
    if (pos === -1) return;
    const fields: Record<string, string> = {};
    for (;;) {
      pos += delimiter.length;
      if (buf.length < pos + 2) return;
      if (buf[pos] === 0x2d && buf[pos + 1] === 0x2d) {
        // closing delimiter: no file part at all
        this.fields = fields;
        this.finish();
        return;
      }
      const headerStart = pos + 2;
      const headerEnd = buf.indexOf("\r\n\r\n", headerStart);
      if (headerEnd === -1) return;
      const headerText = buf.subarray(headerStart, headerEnd).toString("utf8");
      const disposition = /content-disposition:\s*form-data;\s*name="([^"]*)"(?:;\s*filename="([^"]*)")?/i.exec(
        headerText,
      );
      const name = disposition?.[1] ?? "";
      if (name.toLowerCase() === "file") {
        this.fields = fields;
        this.filename = disposition?.[2];
        this.finish();
        return;
      }
      const valueStart = headerEnd + 4;
      const next = buf.indexOf(Buffer.concat([Buffer.from("\r\n"), delimiter]), valueStart);
      if (next === -1) return;
      if (name) fields[name] = buf.subarray(valueStart, next).toString("utf8");
      pos = next + 2;
    }
  }
}

function findCaseInsensitive(fields: Record<string, string>, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(fields)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** The access key id of a SigV4/SigV2 request, from the header, the query or the form. */
export function accessKeyOf(
  headers: IncomingHttpHeaders,
  rawUrl: string | undefined,
  form?: FormFieldSniffer,
): string | undefined {
  const auth = headers.authorization ?? "";
  const v4 = /Credential=([^/,\s]+)\//.exec(auth);
  if (v4) return v4[1];
  const v2 = /^AWS ([^:]+):/.exec(auth);
  if (v2) return v2[1];
  const q = (rawUrl ?? "").indexOf("?");
  if (q !== -1) {
    const query = new URLSearchParams((rawUrl ?? "").slice(q + 1));
    const credential = query.get("X-Amz-Credential");
    if (credential) return credential.split("/")[0];
    const legacy = query.get("AWSAccessKeyId");
    if (legacy) return legacy;
  }
  const formCredential = form?.field("x-amz-credential");
  if (formCredential) return formCredential.split("/")[0];
  return form?.field("AWSAccessKeyId");
}
