import type { WebhookRepository } from "@intake/db";
import type { AllowableAddressClass } from "./address-guard.ts";
import { postSigned, type SendResult } from "./send.ts";
import { secretsInForce, signedHeaders } from "./signing.ts";

/** How a delivery attempt ended, for metrics (webhook deliveries by outcome). */
export type DeliveryOutcome = "delivered" | "failed" | "retried" | "refused";

export interface DeliveryLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface DeliveryDeps {
  webhooks: WebhookRepository;
  logger: DeliveryLogger;
  /** config.env === "production": endpoints must be https. */
  requireHttps: boolean;
  allowAddresses: readonly AllowableAddressClass[];
  timeoutMs: number;
  disableAfterFailures: number;
  /** Optional observer (the metrics area counts deliveries by outcome through it). */
  onDelivery?(outcome: DeliveryOutcome, latencyMs: number): void;
  now?: () => Date;
}

/** Where the attempt stands in its job's retries. */
export interface AttemptPosition {
  /** Attempts already made for this job before this one. */
  made: number;
  /** Attempts the job has in all. */
  max: number;
}

/** Thrown for an attempt that should be retried (BullMQ schedules the next with backoff). */
export class DeliveryAttemptFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DeliveryAttemptFailed";
  }
}

export type DeliveryResult = DeliveryOutcome | "skipped";

/**
 * One attempt at one delivery: guard, sign, POST, record. The body is the event's stored
 * JSON, byte for byte the same on every attempt, and the webhook-id is the event's id; only
 * webhook-timestamp (and so the signature) is the attempt's own. A delivery no longer
 * pending (a duplicate job, or one already redelivered) is left alone.
 */
export async function deliverOnce(deps: DeliveryDeps, deliveryId: string, position: AttemptPosition): Promise<DeliveryResult> {
  const now = deps.now ?? (() => new Date());
  const found = await deps.webhooks.toSend(deliveryId);
  if (!found || found.delivery.status !== "pending") return "skipped";
  const { delivery, endpoint, payload } = found;
  const log = { deliveryId, eventId: delivery.eventId, endpointId: endpoint.id, tenantId: endpoint.tenantId, origin: originOf(endpoint.url) };
  if (endpoint.disabledAt) {
    await deps.webhooks.markSkipped(deliveryId, "endpoint disabled", now());
    return "skipped";
  }

  const at = now();
  const result = await postSigned(endpoint.url, { ...signedHeaders(secretsInForce(endpoint, at), delivery.eventId, payload, at) }, payload, {
    requireHttps: deps.requireHttps,
    allow: deps.allowAddresses,
    timeoutMs: deps.timeoutMs,
  });
  const attempt = attemptOf(result);
  const final = position.made + 1 >= position.max;

  if (result.kind === "response" && result.statusCode >= 200 && result.statusCode < 300) {
    await deps.webhooks.recordDelivered(deliveryId, endpoint.id, attempt, now());
    deps.logger.info({ ...log, statusCode: result.statusCode, latencyMs: result.latencyMs, attempt: position.made + 1 }, "webhook delivered");
    deps.onDelivery?.("delivered", result.latencyMs);
    return "delivered";
  }
  // A refusal is the endpoint's configuration, not a passing failure: no retries (an admin
  // fixes the URL and redelivers), but it counts towards disabling the endpoint.
  if (result.kind === "refused" || final) {
    const { disabled, consecutiveFailures } = await deps.webhooks.recordFailed(deliveryId, endpoint.id, attempt, deps.disableAfterFailures, now());
    deps.logger.warn({ ...log, statusCode: attempt.statusCode, error: attempt.error, attempts: position.made + 1, consecutiveFailures }, result.kind === "refused" ? "webhook refused by the address guard" : "webhook delivery failed for good");
    if (disabled) deps.logger.error({ endpointId: endpoint.id, tenantId: endpoint.tenantId, consecutiveFailures }, "webhook endpoint disabled after a run of failed deliveries");
    const outcome = result.kind === "refused" ? "refused" : "failed";
    deps.onDelivery?.(outcome, result.latencyMs);
    return outcome;
  }
  await deps.webhooks.recordRetry(deliveryId, attempt, now());
  deps.onDelivery?.("retried", result.latencyMs);
  throw new DeliveryAttemptFailed(attempt.error ?? `status ${attempt.statusCode}`);
}

function attemptOf(r: SendResult): { statusCode: number | null; latencyMs: number; error: string | null } {
  if (r.kind === "response") {
    const ok = r.statusCode >= 200 && r.statusCode < 300;
    const redirect = r.statusCode >= 300 && r.statusCode < 400 ? "redirect not followed; " : "";
    return { statusCode: r.statusCode, latencyMs: r.latencyMs, error: ok ? null : `${redirect}HTTP ${r.statusCode}${r.bodyExcerpt ? `: ${r.bodyExcerpt}` : ""}` };
  }
  return { statusCode: null, latencyMs: r.latencyMs, error: r.kind === "refused" ? `refused: ${r.error}` : r.error };
}

/** Scheme, host and port only: a URL's path or query may carry the receiver's own token. */
export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return "(invalid url)";
  }
}
