import { compareSequencers, isPendingKey, isTerminal, parsePendingKey, parseStorageMessage, type ObjectCreated } from "@intake/domain";
import type { EventQueue, ObjectStore, QueuedMessage } from "@intake/storage";
import type { AuditTrail, PipelineLogger, UploadStore } from "./deps.ts";
import type { StageQueues } from "./stage-queues.ts";
import { stageFor } from "./decisions.ts";
import { receiveLagOf, type ReceiveLagRecorder } from "./receive-lag.ts";

/**
 * Ingest: S3 event notifications (via SQS) become inspect jobs.
 *
 * A message is deleted only after every record in it was handled, which for an upload
 * means: the row moved pending -> uploaded (or already had) AND the inspect job is in
 * Redis. The producer fails fast when Redis is away (no offline queue), the handler
 * throws, and the message stays in SQS to be delivered again after its visibility timeout.
 *
 * What happens to what real queues carry (decided here, tested in test/pipeline):
 * - s3:TestEvent (sent when notifications are configured): logged, deleted.
 * - a body that is not JSON or not an S3 event notification: logged with the reason and
 *   LEFT in the queue, so the redrive policy moves it to the dead-letter queue after
 *   maxReceiveCount receives, where an operator can read it. It may be a misconfiguration
 *   (another bucket's or service's messages) that someone has to see, and it never blocks
 *   the loop: other messages go on being handled meanwhile.
 * - records for another bucket, outside pending/, or not ObjectCreated: logged, deleted
 *   (understood, and not ours to act on; the bucket notification should filter them).
 * - an object under pending/ with no upload row (a forged key, a late upload after the row
 *   expired) or for an upload already finished: the object is deleted, an audit row says so.
 */
export interface IngestDeps {
  events: EventQueue;
  repository: UploadStore;
  audit: AuditTrail;
  store: ObjectStore;
  queues: Pick<StageQueues, "enqueue">;
  logger: PipelineLogger;
  /** As the stages route (StageDeps.onePassMaxBytes). */
  onePassMaxBytes?: number;
  /** Where the loop leaves the SQS receive lag of each batch for operators (receive-lag.ts). */
  receiveLag?: ReceiveLagRecorder;
}

export type Disposition = { action: "delete"; reason: string } | { action: "keep"; reason: string };

/** SQS long poll: up to 10 messages (SQS's maximum) per request, waiting up to 20 s (its maximum). */
export const RECEIVE = { max: 10, waitSeconds: 20 } as const;

export async function handleMessage(deps: IngestDeps, message: QueuedMessage): Promise<Disposition> {
  const parsed = parseStorageMessage(message.body);
  if (parsed.kind === "test_event") return { action: "delete", reason: "s3:TestEvent" };
  if (parsed.kind === "invalid") return { action: "keep", reason: `${parsed.reason}: left for the dead-letter queue` };
  for (const ignored of parsed.ignored) deps.logger.warn({ messageId: message.id, ignored }, "ignored a record of a storage event");
  for (const record of latestPerKey(parsed.created)) await handleObjectCreated(deps, record);
  return { action: "delete", reason: `${parsed.created.length} object record(s) handled` };
}

/** Several records of one key in one message: only the latest (by sequencer) matters. */
function latestPerKey(records: ObjectCreated[]): ObjectCreated[] {
  const byKey = new Map<string, ObjectCreated>();
  for (const r of records) {
    const seen = byKey.get(r.key);
    if (!seen || (r.sequencer && seen.sequencer && compareSequencers(r.sequencer, seen.sequencer) > 0)) byKey.set(r.key, r);
  }
  return [...byKey.values()];
}

export async function handleObjectCreated(deps: IngestDeps, record: ObjectCreated): Promise<void> {
  const { key } = record;
  const log = { key, eventName: record.eventName, sequencer: record.sequencer };
  if (record.bucket !== deps.store.bucket) return deps.logger.warn({ ...log, bucket: record.bucket }, "event for another bucket ignored");
  if (!isPendingKey(key)) return deps.logger.warn(log, "event for a key outside pending/ ignored");

  const upload = parsePendingKey(key) ? await deps.repository.getByObjectKey(key) : null;
  if (!upload) return deleteStray(deps, key, null, "no upload row for this pending key (forged key or unknown upload)");
  if (isTerminal(upload.status)) return deleteStray(deps, key, upload, `the upload is already ${upload.status}: a late or repeated upload`);

  let arrived = upload;
  if (upload.status === "pending") {
    // The record names the object's size (S3's always do): a HeadObject would only say it
    // again. The stage that checks the object takes the real size from the object itself.
    const storedSize = record.size ?? (await deps.store.head(key))?.size;
    if (storedSize === undefined) return deps.logger.warn(log, "event for an object that no longer exists ignored");
    const moved = await deps.repository.transition(upload.id, "arrived", "ingest", { storedSize });
    if (!moved.upload || moved.upload.status !== "uploaded") return; // someone else moved it on
    arrived = moved.upload;
  } else if (upload.status !== "uploaded") {
    // inspecting/scanning/deciding: the pipeline has it (a duplicate event); a lost job is
    // the reaper's to find.
    return deps.logger.debug({ ...log, uploadId: upload.id, status: upload.status }, "duplicate event for an upload in progress");
  }
  const stage = stageFor(arrived, deps.onePassMaxBytes)!;
  await deps.queues.enqueue(stage, upload.id);
  deps.logger.info({ ...log, uploadId: upload.id, stage }, "upload arrived; its first stage queued");
}

async function deleteStray(deps: IngestDeps, key: string, upload: { id: string; tenantId: string } | null, reason: string): Promise<void> {
  const head = await deps.store.head(key);
  if (!head) return;
  await deps.store.delete(key);
  const tenantId = parsePendingKey(key)?.tenantId ?? null;
  await deps.audit.record({ actor: "ingest", action: "object.stray_deleted", uploadId: upload?.id ?? null, tenantId: upload?.tenantId ?? tenantId, objectKey: key, detail: { reason, size: head.size } });
  deps.logger.warn({ key, reason }, "deleted a pending object that belongs to no upload in progress");
}

/**
 * The long-poll loop. stop() aborts the poll in flight; messages received but not yet
 * handled are not deleted and come back after their visibility timeout. So does a message
 * the server hands to the aborted poll in its last moment (the server cannot tell the
 * client left): delayed by one visibility timeout, never lost. The alternative, letting
 * the poll run out, would hold every shutdown for up to 20 s.
 */
export class IngestLoop {
  private readonly deps: IngestDeps;
  private readonly abort = new AbortController();
  private running: Promise<void> | null = null;
  private readonly errorBackoffMs: number;

  constructor(deps: IngestDeps, opts: { errorBackoffMs?: number } = {}) {
    this.deps = deps;
    this.errorBackoffMs = opts.errorBackoffMs ?? 1000;
  }

  start(): void {
    this.running ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      let messages: QueuedMessage[];
      try {
        messages = await this.deps.events.receive({ ...RECEIVE, signal });
      } catch (err) {
        this.deps.logger.error({ err }, "receiving storage events failed; retrying");
        await sleep(this.errorBackoffMs, signal);
        continue;
      }
      this.recordLag(messages);
      await Promise.all(messages.map((m) => (signal.aborted ? undefined : this.handle(m))));
    }
  }

  /** Best effort: a Redis hiccup costs the operators one figure, never an event. */
  private recordLag(messages: QueuedMessage[]): void {
    const lag = this.deps.receiveLag && receiveLagOf(messages, new Date());
    if (!lag) return;
    this.deps.receiveLag!.record(lag).catch((err: unknown) => this.deps.logger.debug({ err }, "could not record the SQS receive lag"));
  }

  private async handle(message: QueuedMessage): Promise<void> {
    const log = { messageId: message.id, receiveCount: message.receiveCount };
    let disposition: Disposition;
    try {
      disposition = await handleMessage(this.deps, message);
    } catch (err) {
      // Redis, the database or storage failed: keep the message, SQS delivers it again.
      this.deps.logger.error({ ...log, err }, "storage event not handled; it stays in the queue for another try");
      return;
    }
    if (disposition.action === "keep") {
      this.deps.logger.warn({ ...log, reason: disposition.reason, body: message.body.slice(0, 500) }, "storage event not understood");
      return;
    }
    try {
      await this.deps.events.delete(message);
      this.deps.logger.debug({ ...log, reason: disposition.reason }, "storage event handled");
    } catch (err) {
      this.deps.logger.error({ ...log, err }, "deleting a handled storage event failed; it will be handled again (harmless)");
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });
}
