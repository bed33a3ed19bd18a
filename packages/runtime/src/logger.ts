import { pino, type Logger, type DestinationStream } from "pino";

export type { Logger };

/**
 * Presigned URLs are bearer credentials: anyone holding one may upload or download until it
 * expires. So are API keys. Redaction happens in two layers: known field paths are censored
 * by pino, and every string that reaches the log is scrubbed of signature query parameters
 * and bearer tokens, so a URL logged by accident (an error message quoting a request, say)
 * still leaks nothing.
 */
const REDACT_PATHS = [
  "url",
  "*.url",
  "uploadUrl",
  "*.uploadUrl",
  "headers.authorization",
  "*.headers.authorization",
  "req.headers.authorization",
  "headers.Authorization",
  "authorization",
  "apiKey",
  "*.apiKey",
  "key.secret",
  "secret",
  "*.secret",
  "token",
  "*.token",
  "signature",
  "parts[*].url",
  // A presigned POST's form fields hold its policy signature.
  "fields",
  "*.fields",
];

const SECRET_QUERY = /([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&\s"']+/g;
const BEARER = /(Bearer\s+)[A-Za-z0-9._~+/=-]+/gi;
const API_KEY = /\bik_(live|dev|test)_[A-Za-z0-9_-]+/g;
// Upload session tokens (is_<id>_<secret>): they travel in the path of the Uppy routes, so a
// logged URL holds one. The id is kept (it is not a secret; it says which session).
const SESSION_TOKEN = /\bis_([a-z0-9]{16})_[A-Za-z0-9_-]+/g;

// One cheap test first: almost every string logged (routes, ids, statuses, messages) holds
// none of these, and three global replaces per string add up on the request path.
const MAYBE_SECRET = /signature|credential|security-token|awsaccesskeyid|bearer|ik_(?:live|dev|test)_|is_[a-z0-9]{16}_/i;

export function scrubSecrets(text: string): string {
  if (!MAYBE_SECRET.test(text)) return text;
  return text.replace(SECRET_QUERY, "$1[REDACTED]").replace(BEARER, "$1[REDACTED]").replace(API_KEY, "ik_$1_[REDACTED]").replace(SESSION_TOKEN, "is_$1_[REDACTED]");
}

function scrubDeep(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return scrubSecrets(value);
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (value instanceof Error) {
    return { type: value.name, message: scrubSecrets(value.message), code: (value as { code?: unknown }).code, stack: value.stack ? scrubSecrets(value.stack) : undefined };
  }
  if (Array.isArray(value)) return value.map((v) => scrubDeep(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrubDeep(v, depth + 1);
  return out;
}

export function createLogger(options: { level: string; name: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      name: options.name,
      level: options.level,
      redact: { paths: REDACT_PATHS, censor: "[REDACTED]" },
      formatters: { log: (obj) => scrubDeep(obj) as Record<string, unknown> },
      hooks: {
        // The message string is not covered by `formatters.log`; scrub it here.
        logMethod(args, method) {
          const scrubbed = args.map((a) => (typeof a === "string" ? scrubSecrets(a) : a)) as Parameters<typeof method>;
          method.apply(this, scrubbed);
        },
      },
      serializers: { err: (e: unknown) => scrubDeep(e) },
    },
    options.destination,
  );
}
