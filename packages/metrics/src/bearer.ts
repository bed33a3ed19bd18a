import { createHash, timingSafeEqual } from "node:crypto";

/**
 * The metrics token rule, shared by the API's /metrics and the workers' listeners.
 *
 * - "absent": no Authorization header (the API then asks for an operator's session; a
 *   worker's listener refuses when a token is configured);
 * - "valid": exactly `Bearer <METRICS_TOKEN>`;
 * - "invalid": anything else, including any bearer at all when no token is configured.
 *   A wrong token is refused outright, never retried as a session.
 *
 * Both sides are hashed before the comparison, so timingSafeEqual compares equal lengths
 * and neither the token's bytes nor its length leak through the time a refusal takes.
 */
export type BearerCheck = "absent" | "valid" | "invalid";

const BEARER = /^Bearer +([\x21-\x7e]+) *$/i;

export function checkMetricsBearer(authorization: string | undefined, token: string | undefined): BearerCheck {
  if (authorization === undefined || authorization === "") return "absent";
  const presented = BEARER.exec(authorization)?.[1];
  if (!presented || !token) return "invalid";
  return timingSafeEqual(digest(presented), digest(token)) ? "valid" : "invalid";
}

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}
