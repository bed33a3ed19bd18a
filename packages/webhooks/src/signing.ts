import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";

/**
 * Standard Webhooks signing (standardwebhooks.com, "Signature scheme"): the signed content
 * is `${webhook-id}.${webhook-timestamp}.${body}`, HMAC-SHA256 with the secret's bytes,
 * sent as `v1,<base64>` in webhook-signature. The library signs; nothing here re-implements
 * it. A receiver verifies with any Standard Webhooks library and the same secret.
 */

/** The secret's prefix in the spec ("whsec_" then base64 of the key bytes). */
export const SECRET_PREFIX = "whsec_";
/** The spec asks for 24 to 64 bytes of key; 32 is the HMAC-SHA256 block's worth of entropy. */
const SECRET_BYTES = 32;

export function generateSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(SECRET_BYTES).toString("base64")}`;
}

export interface SignedHeaders {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
}

/** An endpoint's secrets as stored: the current one and a rotation's previous one with its end. */
export interface RotatingSecrets {
  secret: string;
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
}

/**
 * The secrets that sign an attempt made at `at`: the current one first, then the one a
 * rotation replaced while its overlap lasts (strictly before its end), so a receiver that has
 * not switched yet still finds a signature it can verify.
 */
export function secretsInForce(s: RotatingSecrets, at: Date): string[] {
  const overlap = s.previousSecret !== null && s.previousSecretExpiresAt !== null && at.getTime() < s.previousSecretExpiresAt.getTime();
  return overlap ? [s.secret, s.previousSecret!] : [s.secret];
}

/**
 * The three headers for one attempt. The timestamp is the attempt's own (seconds since the
 * epoch), so a receiver's tolerance window (5 minutes in the libraries) refuses a replay of
 * an old request; the id is the event's, the same on every retry and redelivery. With more
 * than one secret, webhook-signature lists one `v1,<base64>` per secret, space-delimited, as
 * the spec allows for rotation: a receiver's library accepts the request when any one of
 * them verifies with the secret it holds.
 */
export function signedHeaders(secrets: string | readonly string[], messageId: string, body: string, at: Date): SignedHeaders {
  const list = typeof secrets === "string" ? [secrets] : secrets;
  if (list.length === 0) throw new Error("signedHeaders: no secret to sign with");
  return {
    "webhook-id": messageId,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": list.map((s) => new Webhook(s).sign(messageId, at, body)).join(" "),
  };
}
