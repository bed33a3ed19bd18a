import { randomBytes } from "node:crypto";
import type { Knex } from "knex";
import { ConflictError, NotFoundError, verdictEvent, type Upload, type VerdictEventType } from "@intake/domain";
import { AuditLog } from "./audit-log.ts";
import { atomically, Statement, type Atomic } from "./connection.ts";

/**
 * Verdict webhooks in the database: each tenant's endpoints (own secret, own event filter),
 * the outbox of events, one delivery per (event, endpoint) and every attempt made for it.
 * The outbox is written in the unit of work of the state change that causes the event
 * (writeVerdictEvents), so an event exists exactly when its change committed; a relay hands
 * deliveries to the queue afterwards (packages/webhooks).
 */

export interface WebhookEndpoint {
  id: string;
  tenantId: string;
  url: string;
  description: string;
  events: VerdictEventType[];
  createdAt: Date;
  consecutiveFailures: number;
  disabledAt: Date | null;
  disabledReason: string | null;
  /** Until when the secret the last rotation replaced still signs beside the current one; null: no overlap. */
  previousSecretExpiresAt: Date | null;
}

/** The secrets an endpoint signs with: the current one and, during a rotation's overlap, the one it replaced. */
export interface EndpointSecrets {
  secret: string;
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
}

export type DeliveryStatus = "pending" | "delivered" | "failed";

export interface WebhookDelivery {
  id: string;
  eventId: string;
  endpointId: string;
  tenantId: string;
  eventType: VerdictEventType;
  uploadId: string | null;
  status: DeliveryStatus;
  attempts: number;
  round: number;
  lastStatusCode: number | null;
  lastError: string | null;
  createdAt: Date;
  enqueuedAt: Date | null;
  deliveredAt: Date | null;
  updatedAt: Date;
}

export interface WebhookAttempt {
  id: number;
  deliveryId: string;
  at: Date;
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
}

/** What the delivery job needs to send one delivery: where, signed with what, and the body. */
export interface DeliveryToSend {
  delivery: WebhookDelivery;
  endpoint: WebhookEndpoint & EndpointSecrets;
  /** The event's JSON, exactly as stored: the bytes signed and sent on every attempt. */
  payload: string;
}

/** The outcome of one attempt, as the delivery log shows it. */
export interface AttemptRecord {
  statusCode: number | null;
  latencyMs: number;
  /** A short excerpt (error message or response body): never the secret or the signature. */
  error: string | null;
}

const ERROR_EXCERPT_CHARS = 500;

/** msg_<22 base64url chars>: the Standard Webhooks webhook-id, the same on every retry and redelivery. */
export function newEventId(): string {
  return `msg_${randomBytes(16).toString("base64url")}`;
}

/** ep_<12 base64url chars>: exactly 15 characters, which the delivery ids below rely on. */
export function newEndpointId(): string {
  return `ep_${randomBytes(9).toString("base64url")}`;
}

/**
 * The outbox's two statements. Deliveries are written by INSERT ... SELECT over the
 * tenant's subscribed, enabled endpoints (an Atomic reads one row at a time), so their ids
 * are derived in SQL: dlv_<event id's random part>_<endpoint id's random part>, 39
 * characters, unique per (event, endpoint) as the table's unique key is. The event itself
 * is written only when at least one endpoint will receive it: a tenant without endpoints
 * costs one indexed read per verdict, not a row. The event filter is matched against the
 * endpoint's JSON array of types, and against the tenant's policy (tenant_policies.webhook_events,
 * null: every event): its current one, so an admin who stops an event for a tenant stops it
 * for verdicts still to come, including those of uploads declared before the change.
 */
const INSERT_EVENT = `insert into webhook_events (id, tenant_id, type, upload_id, payload, created_at)
  select ?, ?, ?, ?, ?, cast(? as bigint)
  where exists (select 1 from webhook_endpoints where tenant_id = ? and disabled_at is null and events like ?)
  and not exists (select 1 from tenant_policies where tenant_id = ? and webhook_events is not null and webhook_events not like ?)`;
const INSERT_DELIVERIES = `insert into webhook_deliveries (id, event_id, endpoint_id, status, attempts, round, created_at, updated_at)
  select 'dlv_' || cast(? as text) || '_' || substr(id, 4), ?, id, 'pending', 0, 0, cast(? as bigint), cast(? as bigint)
  from webhook_endpoints where tenant_id = ? and disabled_at is null and events like ?`;

/**
 * Writes the event an upload's new status causes (verified, quarantined, expired) and one
 * delivery per subscribed, enabled endpoint of its tenant, inside the caller's unit of work:
 * call it in the same unit as the transition that set the status. Returns how many
 * deliveries were written (0: no event for this status, or nobody subscribed).
 */
export async function writeVerdictEvents(tx: Atomic, upload: Upload, now: Date = new Date()): Promise<number> {
  const event = verdictEvent(upload, now);
  if (!event) return 0;
  const id = newEventId();
  const filter = `%"${event.type}"%`;
  const written = await tx.run(new Statement(INSERT_EVENT, [id, upload.tenantId, event.type, upload.id, JSON.stringify(event), now.getTime(), upload.tenantId, filter, upload.tenantId, filter]));
  if (written === 0) return 0;
  return tx.run(new Statement(INSERT_DELIVERIES, [id.slice(4), id, now.getTime(), now.getTime(), upload.tenantId, filter]));
}

export interface NewEndpoint {
  tenantId: string;
  url: string;
  description?: string;
  events: readonly VerdictEventType[];
  /** whsec_...: generated by the caller (packages/webhooks), shown to the admin once. */
  secret: string;
}

/** A delivery on its way (pending and queued), as the relay's sweep reads it. */
export interface EnqueuedDelivery {
  id: string;
  round: number;
  enqueuedAt: Date;
}

/** Where the sweep's previous page ended: (enqueued_at, id) of its last row. */
export type StrandedCursor = Pick<EnqueuedDelivery, "id" | "enqueuedAt">;

export interface DeliveryFilter {
  /** Only these tenants' deliveries (a principal limited to some tenants); null: all. */
  tenantIds?: readonly string[] | null;
  endpointId?: string;
  eventId?: string;
  status?: DeliveryStatus;
  limit?: number;
}

export class WebhookRepository {
  private readonly db: Knex;
  private readonly audit: AuditLog;
  constructor(db: Knex) {
    this.db = db;
    this.audit = new AuditLog(db);
  }

  async createEndpoint(input: NewEndpoint, now = new Date()): Promise<WebhookEndpoint> {
    const tenant = await this.db("tenants").where({ id: input.tenantId }).first();
    if (!tenant) throw new NotFoundError("tenant", input.tenantId);
    const row = {
      id: newEndpointId(),
      tenant_id: input.tenantId,
      url: input.url,
      description: input.description ?? "",
      secret: input.secret,
      events: JSON.stringify([...new Set(input.events)]),
      created_at: now.getTime(),
      consecutive_failures: 0,
      disabled_at: null,
      disabled_reason: null,
      previous_secret: null,
      previous_secret_expires_at: null,
    };
    await this.db("webhook_endpoints").insert(row);
    return toEndpoint(row);
  }

  async endpoint(id: string): Promise<WebhookEndpoint | null> {
    const row = await this.db("webhook_endpoints").where({ id }).first();
    return row ? toEndpoint(row) : null;
  }

  /** Endpoints of the given tenants (null: every tenant), oldest first. */
  async endpoints(tenantIds: readonly string[] | null = null): Promise<WebhookEndpoint[]> {
    const q = this.db("webhook_endpoints");
    if (tenantIds) q.whereIn("tenant_id", [...tenantIds]);
    const rows = await q.orderBy([{ column: "tenant_id" }, { column: "created_at" }, { column: "id" }]);
    return rows.map(toEndpoint);
  }

  /**
   * Replaces the endpoint's secret. With `previousValidUntil` the secret replaced keeps
   * signing beside the new one until then (one statement: SET reads the row as it was, so
   * previous_secret gets the old value); without it, it ends now. A rotation during an
   * overlap ends the older secret at once: only one previous secret is kept.
   */
  async rotateSecret(id: string, secret: string, previousValidUntil: Date | null): Promise<WebhookEndpoint> {
    const n = await this.db("webhook_endpoints")
      .where({ id })
      .update(previousValidUntil ? { previous_secret: this.db.ref("secret"), previous_secret_expires_at: previousValidUntil.getTime(), secret } : { previous_secret: null, previous_secret_expires_at: null, secret });
    if (n !== 1) throw new NotFoundError("webhook_endpoint", id);
    return (await this.endpoint(id))!;
  }

  /** Ends a rotation's overlap now: only the current secret signs from the next attempt on. */
  async endSecretOverlap(id: string): Promise<WebhookEndpoint> {
    const n = await this.db("webhook_endpoints").where({ id }).update({ previous_secret: null, previous_secret_expires_at: null });
    if (n !== 1) throw new NotFoundError("webhook_endpoint", id);
    return (await this.endpoint(id))!;
  }

  /** Disables (with a reason) or enables an endpoint; enabling also clears its run of failures. */
  async setEnabled(id: string, enabled: boolean, reason: string | null, now = new Date()): Promise<WebhookEndpoint> {
    const patch = enabled ? { disabled_at: null, disabled_reason: null, consecutive_failures: 0 } : { disabled_at: now.getTime(), disabled_reason: reason };
    const n = await this.db("webhook_endpoints").where({ id }).update(patch);
    if (n !== 1) throw new NotFoundError("webhook_endpoint", id);
    return (await this.endpoint(id))!;
  }

  /** Deletes an endpoint with its deliveries and their attempts; the events stay (other endpoints may share them). */
  async deleteEndpoint(id: string): Promise<void> {
    await atomically(this.db, async (tx) => {
      await tx.run(this.db("webhook_attempts").whereIn("delivery_id", this.db("webhook_deliveries").select("id").where({ endpoint_id: id })).delete());
      await tx.run(this.db("webhook_deliveries").where({ endpoint_id: id }).delete());
      const n = await tx.run(this.db("webhook_endpoints").where({ id }).delete());
      if (n !== 1) throw new NotFoundError("webhook_endpoint", id);
    });
  }

  /** Deliveries the relay has not handed to the queue yet (a crash between commit and enqueue leaves them here). */
  async unqueued(limit = 100): Promise<{ id: string; round: number }[]> {
    const rows = await this.db("webhook_deliveries").select("id", "round").where({ status: "pending" }).whereNull("enqueued_at").orderBy("created_at").limit(limit);
    return rows.map((r) => ({ id: r.id, round: Number(r.round) }));
  }

  /** Marks a delivery as queued, for the round that was queued (a redelivery meanwhile starts a new one). */
  async markEnqueued(id: string, round: number, now = new Date()): Promise<void> {
    await this.db("webhook_deliveries").where({ id, round }).whereNull("enqueued_at").update({ enqueued_at: now.getTime(), updated_at: now.getTime() });
  }

  /**
   * Pending deliveries handed to the queue before `before`, in hand-over order, after the
   * cursor (the last row of the previous page): the relay's sweep checks each one's job,
   * since a job lost from Redis, or finished without recording its outcome (the database
   * failed on the last attempt), would otherwise leave its row pending for ever.
   */
  async enqueuedPending(before: Date, after: StrandedCursor | null, limit = 100): Promise<EnqueuedDelivery[]> {
    const q = this.db("webhook_deliveries").select("id", "round", "enqueued_at").where({ status: "pending" }).where("enqueued_at", "<", before.getTime());
    if (after) {
      const at = after.enqueuedAt.getTime();
      q.where((w) => w.where("enqueued_at", ">", at).orWhere((same) => same.where("enqueued_at", at).andWhere("id", ">", after.id)));
    }
    const rows = await q.orderBy([{ column: "enqueued_at" }, { column: "id" }]).limit(limit);
    return rows.map((r) => ({ id: r.id, round: Number(r.round), enqueuedAt: new Date(Number(r.enqueued_at)) }));
  }

  /** The sweep queued a round's job again (it was missing from Redis): its grace starts over. */
  async markRequeued(id: string, round: number, now = new Date()): Promise<void> {
    await this.db("webhook_deliveries").where({ id, round, status: "pending" }).whereNotNull("enqueued_at").update({ enqueued_at: now.getTime(), updated_at: now.getTime() });
  }

  /**
   * Starts a new round of a pending delivery whose job finished without recording an outcome
   * (BullMQ keeps the finished job's id, so the same round cannot be queued again): not yet
   * queued, for the relay, with the same event and so the same webhook-id. Conditional on the
   * round and status read, so two sweeps (or a late outcome) start at most one; true if this
   * call started it.
   */
  async startNewRound(id: string, round: number, now = new Date()): Promise<boolean> {
    const n = await this.db("webhook_deliveries").where({ id, round, status: "pending" }).whereNotNull("enqueued_at").update({ round: round + 1, enqueued_at: null, updated_at: now.getTime() });
    return n === 1;
  }

  async toSend(id: string): Promise<DeliveryToSend | null> {
    const row = await this.deliveries().where("d.id", id).first();
    if (!row) return null;
    const endpoint = await this.db("webhook_endpoints").where({ id: row.endpoint_id }).first();
    if (!endpoint) return null;
    return { delivery: toDelivery(row), endpoint: { ...toEndpoint(endpoint), secret: endpoint.secret, previousSecret: endpoint.previous_secret ?? null }, payload: row.payload };
  }

  /** One attempt that did not deliver, while more may follow: logged, and the delivery stays pending. */
  async recordRetry(id: string, attempt: AttemptRecord, now = new Date()): Promise<void> {
    await atomically(this.db, async (tx) => {
      await tx.run(this.attemptInsert(id, attempt, now));
      await tx.run(this.db("webhook_deliveries").where({ id }).update({ attempts: this.db.raw("attempts + 1"),  last_status_code: attempt.statusCode, last_error: excerpt(attempt.error), updated_at: now.getTime() }));
    });
  }

  /** The delivery arrived: logged, and the endpoint's run of failures ends. */
  async recordDelivered(id: string, endpointId: string, attempt: AttemptRecord, now = new Date()): Promise<void> {
    await atomically(this.db, async (tx) => {
      await tx.run(this.attemptInsert(id, attempt, now));
      await tx.run(this.db("webhook_deliveries").where({ id }).update({ attempts: this.db.raw("attempts + 1"),  status: "delivered", last_status_code: attempt.statusCode, last_error: null, delivered_at: now.getTime(), updated_at: now.getTime() }));
      await tx.run(this.db("webhook_endpoints").where({ id: endpointId }).update({ consecutive_failures: 0 }));
    });
  }

  /**
   * The delivery failed for good (its attempts ran out, or it was refused): logged, the
   * endpoint's run of failed deliveries grows, and reaching `disableAfter` disables the
   * endpoint, with its audit row in the same unit. `disabled` is true only for the call that
   * disabled it.
   */
  async recordFailed(id: string, endpointId: string, attempt: AttemptRecord | null, disableAfter: number, now = new Date()): Promise<{ disabled: boolean; consecutiveFailures: number }> {
    return atomically(this.db, async (tx) => {
      if (attempt) await tx.run(this.attemptInsert(id, attempt, now));
      const error = excerpt(attempt?.error ?? null);
      await tx.run(this.db("webhook_deliveries").where({ id }).update({ attempts: this.db.raw(attempt ? "attempts + 1" : "attempts"),  status: "failed", last_status_code: attempt?.statusCode ?? null, last_error: error, updated_at: now.getTime() }));
      await tx.run(this.db("webhook_endpoints").where({ id: endpointId }).update({ consecutive_failures: this.db.raw("consecutive_failures + 1") }));
      const row = await tx.first<{ consecutive_failures: number | string; disabled_at: unknown; tenant_id: string }>(this.db("webhook_endpoints").select("consecutive_failures", "disabled_at", "tenant_id").where({ id: endpointId }));
      const failures = Number(row?.consecutive_failures ?? 0);
      if (!row || row.disabled_at !== null || failures < disableAfter) return { disabled: false, consecutiveFailures: failures };
      const reason = `${failures} failed deliveries in a row`;
      await tx.run(this.db("webhook_endpoints").where({ id: endpointId }).whereNull("disabled_at").update({ disabled_at: now.getTime(), disabled_reason: reason }));
      // Last in the unit: the audit link holds the chain's head until the commit.
      await this.audit.append(tx, { actor: "webhooks", action: "webhook.endpoint_disabled", tenantId: row.tenant_id, detail: { endpointId, reason, lastDeliveryId: id, consecutiveFailures: failures } }, now);
      return { disabled: true, consecutiveFailures: failures };
    });
  }

  /** A delivery found with nothing to do (endpoint deleted or disabled): failed, no attempt, no count. */
  async markSkipped(id: string, why: string, now = new Date()): Promise<void> {
    await this.db("webhook_deliveries").where({ id, status: "pending" }).update({ status: "failed", last_error: why, updated_at: now.getTime() });
  }

  /**
   * Sends a finished delivery again, as a new round with the same event (the same
   * webhook-id): back to pending and not yet queued, for the relay. A delivery still pending
   * is already on its way and is not doubled.
   */
  async redeliver(id: string, now = new Date()): Promise<WebhookDelivery> {
    const n = await this.db("webhook_deliveries")
      .where({ id })
      .whereIn("status", ["delivered", "failed"])
      .update({ round: this.db.raw("round + 1"), status: "pending", enqueued_at: null, delivered_at: null, updated_at: now.getTime() });
    const delivery = await this.delivery(id);
    if (!delivery) throw new NotFoundError("webhook_delivery", id);
    if (n !== 1) throw new ConflictError("delivery_in_flight", `delivery ${id} is still being delivered`);
    return delivery;
  }

  /** Redelivers every finished delivery of an event; the ones still in flight are left alone. */
  async redeliverEvent(eventId: string, now = new Date()): Promise<WebhookDelivery[]> {
    const event = await this.db("webhook_events").where({ id: eventId }).first();
    if (!event) throw new NotFoundError("webhook_event", eventId);
    const ids = (await this.db("webhook_deliveries").select("id").where({ event_id: eventId }).whereIn("status", ["delivered", "failed"])).map((r) => r.id as string);
    const out: WebhookDelivery[] = [];
    for (const id of ids) {
      try {
        out.push(await this.redeliver(id, now));
      } catch (err) {
        // Picked up by another redelivery meanwhile: it is on its way already.
        if (!(err instanceof ConflictError)) throw err;
      }
    }
    return out;
  }

  async delivery(id: string): Promise<WebhookDelivery | null> {
    const row = await this.deliveries().where("d.id", id).first();
    return row ? toDelivery(row) : null;
  }

  /** The delivery log, newest first. */
  async listDeliveries(f: DeliveryFilter = {}): Promise<WebhookDelivery[]> {
    const q = this.deliveries();
    if (f.tenantIds) q.whereIn("e.tenant_id", [...f.tenantIds]);
    if (f.endpointId) q.where("d.endpoint_id", f.endpointId);
    if (f.eventId) q.where("d.event_id", f.eventId);
    if (f.status) q.where("d.status", f.status);
    const rows = await q.orderBy([{ column: "d.created_at", order: "desc" }, { column: "d.id", order: "desc" }]).limit(f.limit ?? 100);
    return rows.map(toDelivery);
  }

  async attempts(deliveryId: string): Promise<WebhookAttempt[]> {
    const rows = await this.db("webhook_attempts").where({ delivery_id: deliveryId }).orderBy("id");
    return rows.map((r) => ({ id: Number(r.id), deliveryId: r.delivery_id, at: new Date(Number(r.at)), statusCode: r.status_code === null ? null : Number(r.status_code), latencyMs: Number(r.latency_ms), error: r.error ?? null }));
  }

  private deliveries(): Knex.QueryBuilder {
    return this.db("webhook_deliveries as d").join("webhook_events as e", "e.id", "d.event_id").select("d.*", "e.tenant_id", "e.type as event_type", "e.upload_id", "e.payload");
  }

  private attemptInsert(deliveryId: string, a: AttemptRecord, now: Date): Knex.QueryBuilder {
    return this.db("webhook_attempts").insert({ delivery_id: deliveryId, at: now.getTime(), status_code: a.statusCode, latency_ms: Math.max(0, Math.round(a.latencyMs)), error: excerpt(a.error) });
  }
}

function excerpt(text: string | null): string | null {
  return text === null ? null : text.slice(0, ERROR_EXCERPT_CHARS);
}

const date = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(Number(v)));

function toEndpoint(r: Record<string, any>): WebhookEndpoint {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    url: r.url,
    description: r.description ?? "",
    events: JSON.parse(r.events),
    createdAt: new Date(Number(r.created_at)),
    consecutiveFailures: Number(r.consecutive_failures),
    disabledAt: date(r.disabled_at),
    disabledReason: r.disabled_reason ?? null,
    // Shown only while a previous secret is kept: an ended overlap has neither.
    previousSecretExpiresAt: r.previous_secret ? date(r.previous_secret_expires_at) : null,
  };
}

function toDelivery(r: Record<string, any>): WebhookDelivery {
  return {
    id: r.id,
    eventId: r.event_id,
    endpointId: r.endpoint_id,
    tenantId: r.tenant_id,
    eventType: r.event_type,
    uploadId: r.upload_id ?? null,
    status: r.status,
    attempts: Number(r.attempts),
    round: Number(r.round),
    lastStatusCode: r.last_status_code === null || r.last_status_code === undefined ? null : Number(r.last_status_code),
    lastError: r.last_error ?? null,
    createdAt: new Date(Number(r.created_at)),
    enqueuedAt: date(r.enqueued_at),
    deliveredAt: date(r.delivered_at),
    updatedAt: new Date(Number(r.updated_at)),
  };
}
