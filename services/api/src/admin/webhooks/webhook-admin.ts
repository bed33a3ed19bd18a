import type { AuditLog, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookRepository } from "@intake/db";
import { InvalidRequestError, isVerdictEventType, NotFoundError, seesTenant, textFault, textFaultMessage, VERDICT_EVENT_TYPES, type AdminPrincipal, type VerdictEventType } from "@intake/domain";
import { AddressRefusedError, checkEndpointUrl, generateSecret, originOf, type AllowableAddressClass } from "@intake/webhooks";

/**
 * The admin side of verdict webhooks, for the JSON routes and the pages alike: endpoints
 * (admins: settings.manage) and the delivery log with redelivery (operators). Every action
 * is audited with the person's id; no secret ever goes into an audit row or a log line.
 * A principal limited to some tenants finds nothing of the others ("not found").
 */
export interface WebhookAdminDeps {
  webhooks: WebhookRepository;
  audit: AuditLog;
  requireHttps: boolean;
  allowAddresses: readonly AllowableAddressClass[];
  /** A rotation's overlap when it names none (WEBHOOK_SECRET_OVERLAP_SECONDS). */
  defaultOverlapSeconds: number;
  /** Hands redelivered rounds to the queue now (the worker's relay would within its poll). */
  relay(): Promise<void>;
  now: () => Date;
}

const MAX_URL_LENGTH = 2048;
const MAX_DESCRIPTION = 200;
/** The longest overlap a rotation may ask for: 7 days (the old secret should not outlive a deploy by much). */
export const MAX_SECRET_OVERLAP_SECONDS = 604_800;

export interface EndpointInput {
  tenantId: unknown;
  url: unknown;
  events?: unknown;
  description?: unknown;
}

export function endpointView(e: WebhookEndpoint) {
  return { id: e.id, tenantId: e.tenantId, url: e.url, description: e.description, events: e.events, createdAt: e.createdAt.toISOString(), consecutiveFailures: e.consecutiveFailures, enabled: e.disabledAt === null, disabledAt: e.disabledAt?.toISOString() ?? null, disabledReason: e.disabledReason, previousSecretExpiresAt: e.previousSecretExpiresAt?.toISOString() ?? null };
}

export function deliveryView(d: WebhookDelivery) {
  return { id: d.id, webhookId: d.eventId, eventType: d.eventType, endpointId: d.endpointId, tenantId: d.tenantId, uploadId: d.uploadId, status: d.status, attempts: d.attempts, round: d.round, lastStatusCode: d.lastStatusCode, lastError: d.lastError, createdAt: d.createdAt.toISOString(), enqueuedAt: d.enqueuedAt?.toISOString() ?? null, deliveredAt: d.deliveredAt?.toISOString() ?? null, updatedAt: d.updatedAt.toISOString() };
}

export function attemptView(a: WebhookAttempt) {
  return { at: a.at.toISOString(), statusCode: a.statusCode, latencyMs: a.latencyMs, error: a.error };
}

export class WebhookAdmin {
  private readonly d: WebhookAdminDeps;
  constructor(deps: WebhookAdminDeps) {
    this.d = deps;
  }

  async endpoints(who: AdminPrincipal): Promise<WebhookEndpoint[]> {
    return this.d.webhooks.endpoints(who.tenantIds);
  }

  /** Creates an endpoint; the secret is returned here and never again (rotate to get a new one). */
  async create(who: AdminPrincipal, input: EndpointInput): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
    const tenantId = text(input.tenantId, "tenantId", 64);
    if (!seesTenant(who, tenantId)) throw new NotFoundError("tenant", tenantId);
    const url = this.checkedUrl(input.url);
    const events = eventsFrom(input.events);
    const description = input.description === undefined || input.description === "" ? "" : text(input.description, "description", MAX_DESCRIPTION);
    const secret = generateSecret();
    const endpoint = await this.d.webhooks.createEndpoint({ tenantId, url, events, description, secret }, this.d.now());
    await this.audited(who, "webhook.endpoint_created", endpoint, { origin: originOf(url), events });
    return { endpoint, secret };
  }

  async setEnabled(who: AdminPrincipal, id: string, enabled: boolean, given?: string): Promise<WebhookEndpoint> {
    await this.endpointFor(who, id);
    const reason = given === undefined || given.trim() === "" ? undefined : text(given, "reason", 2000);
    const why = enabled ? null : `disabled by an admin${reason ? `: ${reason.slice(0, 200)}` : ""}`;
    const endpoint = await this.d.webhooks.setEnabled(id, enabled, why, this.d.now());
    await this.audited(who, enabled ? "webhook.endpoint_enabled" : "webhook.endpoint_disabled", endpoint, reason ? { reason: reason.slice(0, 200) } : {});
    return endpoint;
  }

  /**
   * A new secret, shown once. The one it replaces keeps signing beside it for the overlap
   * (seconds; default WEBHOOK_SECRET_OVERLAP_SECONDS, 0: it ends now, as after a leak), so
   * the receiver can switch without refusing a delivery.
   */
  async rotateSecret(who: AdminPrincipal, id: string, overlap?: unknown): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
    await this.endpointFor(who, id);
    const overlapSeconds = overlapFrom(overlap, this.d.defaultOverlapSeconds);
    const now = this.d.now();
    const until = overlapSeconds > 0 ? new Date(now.getTime() + overlapSeconds * 1000) : null;
    const secret = generateSecret();
    const endpoint = await this.d.webhooks.rotateSecret(id, secret, until);
    await this.audited(who, "webhook.secret_rotated", endpoint, { overlapSeconds, previousSecretValidUntil: until?.toISOString() ?? null });
    return { endpoint, secret };
  }

  /** Ends a rotation's overlap before its time (the receiver has switched): only the new secret signs. */
  async endSecretOverlap(who: AdminPrincipal, id: string): Promise<WebhookEndpoint> {
    const before = await this.endpointFor(who, id);
    const endpoint = await this.d.webhooks.endSecretOverlap(id);
    await this.audited(who, "webhook.secret_overlap_ended", endpoint, { wasValidUntil: before.previousSecretExpiresAt?.toISOString() ?? null });
    return endpoint;
  }

  async remove(who: AdminPrincipal, id: string): Promise<void> {
    const endpoint = await this.endpointFor(who, id);
    await this.d.webhooks.deleteEndpoint(id);
    await this.audited(who, "webhook.endpoint_deleted", endpoint, { origin: originOf(endpoint.url) });
  }

  async deliveries(who: AdminPrincipal, filter: { endpointId?: string; eventId?: string; status?: string; limit?: number }): Promise<WebhookDelivery[]> {
    const status = filter.status;
    if (status !== undefined && status !== "pending" && status !== "delivered" && status !== "failed") throw new InvalidRequestError("invalid_status", "status must be pending, delivered or failed");
    return this.d.webhooks.listDeliveries({ tenantIds: who.tenantIds, ...(filter.endpointId ? { endpointId: filter.endpointId } : {}), ...(filter.eventId ? { eventId: filter.eventId } : {}), ...(status ? { status } : {}), limit: Math.min(filter.limit ?? 100, 500) });
  }

  async delivery(who: AdminPrincipal, id: string): Promise<{ delivery: WebhookDelivery; attempts: WebhookAttempt[] }> {
    const delivery = await this.d.webhooks.delivery(id);
    if (!delivery || !seesTenant(who, delivery.tenantId)) throw new NotFoundError("webhook_delivery", id);
    return { delivery, attempts: await this.d.webhooks.attempts(id) };
  }

  /** Sends a finished delivery again: a new round with the same webhook-id. */
  async redeliver(who: AdminPrincipal, id: string): Promise<WebhookDelivery> {
    await this.delivery(who, id);
    const delivery = await this.d.webhooks.redeliver(id, this.d.now());
    await this.d.audit.record({ actor: "admin", actorId: who.id, action: "webhook.redelivered", tenantId: delivery.tenantId, uploadId: delivery.uploadId, detail: { deliveryId: id, eventId: delivery.eventId, round: delivery.round } }, this.d.now());
    await this.d.relay();
    return delivery;
  }

  /** Sends an event again to every endpoint it went to (those not still in flight). */
  async redeliverEvent(who: AdminPrincipal, eventId: string): Promise<WebhookDelivery[]> {
    const own = await this.d.webhooks.listDeliveries({ eventId, limit: 1 });
    if (own.length === 0 || !seesTenant(who, own[0]!.tenantId)) throw new NotFoundError("webhook_event", eventId);
    const deliveries = await this.d.webhooks.redeliverEvent(eventId, this.d.now());
    await this.d.audit.record({ actor: "admin", actorId: who.id, action: "webhook.event_redelivered", tenantId: own[0]!.tenantId, uploadId: own[0]!.uploadId, detail: { eventId, deliveryIds: deliveries.map((d) => d.id) } }, this.d.now());
    await this.d.relay();
    return deliveries;
  }

  private async endpointFor(who: AdminPrincipal, id: string): Promise<WebhookEndpoint> {
    const endpoint = await this.d.webhooks.endpoint(id);
    if (!endpoint || !seesTenant(who, endpoint.tenantId)) throw new NotFoundError("webhook_endpoint", id);
    return endpoint;
  }

  private checkedUrl(value: unknown): string {
    const url = text(value, "url", MAX_URL_LENGTH);
    try {
      // The same rules as at delivery time; a hostname is resolved (and checked) only then,
      // since what it resolves to today says nothing about tomorrow.
      return checkEndpointUrl(url, { requireHttps: this.d.requireHttps, allow: this.d.allowAddresses }).toString();
    } catch (err) {
      if (err instanceof AddressRefusedError) throw new InvalidRequestError("invalid_webhook_url", err.message);
      throw err;
    }
  }

  private async audited(who: AdminPrincipal, action: string, e: WebhookEndpoint, detail: Record<string, unknown>): Promise<void> {
    await this.d.audit.record({ actor: "admin", actorId: who.id, action, tenantId: e.tenantId, detail: { endpointId: e.id, ...detail } }, this.d.now());
  }
}

function text(value: unknown, field: string, max: number): string {
  if (typeof value !== "string" || value.trim() === "") throw new InvalidRequestError("invalid_field", `${field} is required and must be a string`, { field });
  if (value.length > max) throw new InvalidRequestError("invalid_field", `${field} is longer than ${max} characters`, { field });
  // Shown on pages and kept in the database: no control characters (PostgreSQL refuses NUL).
  const fault = textFault(value, { invisible: false });
  if (fault) throw new InvalidRequestError("invalid_field", textFaultMessage(field, fault), { field });
  return value.trim();
}

/** A rotation's overlap in whole seconds, 0 to 7 days; a form's empty field means the default. */
function overlapFrom(value: unknown, fallback: number): number {
  if (value === undefined || value === "") return fallback;
  const n = typeof value === "string" && /^\d{1,7}$/.test(value.trim()) ? Number(value.trim()) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > MAX_SECRET_OVERLAP_SECONDS) {
    throw new InvalidRequestError("invalid_field", `overlapSeconds must be a whole number of seconds from 0 to ${MAX_SECRET_OVERLAP_SECONDS}`, { field: "overlapSeconds" });
  }
  return n;
}

/** The event filter: a list of known types; none given means all of them. */
function eventsFrom(value: unknown): VerdictEventType[] {
  if (value === undefined || value === null) return [...VERDICT_EVENT_TYPES];
  const list = typeof value === "string" ? value.split(",").map((s) => s.trim()).filter(Boolean) : value;
  if (!Array.isArray(list) || list.length === 0) throw new InvalidRequestError("invalid_events", `events must be a non-empty list of ${VERDICT_EVENT_TYPES.join(", ")}`);
  for (const e of list) if (!isVerdictEventType(e)) throw new InvalidRequestError("invalid_events", `unknown event type ${String(e).slice(0, 64)} (known: ${VERDICT_EVENT_TYPES.join(", ")})`);
  return [...new Set(list as VerdictEventType[])];
}
