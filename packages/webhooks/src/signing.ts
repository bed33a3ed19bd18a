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

/**
 * The three headers for one attempt. The timestamp is the attempt's own (seconds since the
 * epoch), so a receiver's tolerance window (5 minutes in the libraries) refuses a replay of
 * an old request; the id is the event's, the same on every retry and redelivery.
 */
export function signedHeaders(secret: string, messageId: string, body: string, at: Date): SignedHeaders {
  return {
    "webhook-id": messageId,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(secret).sign(messageId, at, body),
  };
}
