import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { DependencyUnavailableError } from "@intake/domain";
import type { EventQueue, QueuedMessage } from "@intake/storage";
import { beforeAllOrFailEach } from "@intake/test";
import { waitFor, within } from "@intake/testkit";

/**
 * The EventQueue contract (the queue storage event notifications arrive on), run once per
 * implementation. Ingest relies on each of these: at-least-once delivery with a receive
 * count (the dead-letter decision), deletion only when asked, a bounded long poll that a
 * shutdown can cut short, and a failure that is an error, never an empty answer.
 */
export interface QueueUnderTest {
  queue: EventQueue;
  /** Puts a message on the queue from outside the interface (as storage would). */
  send(body: string): Promise<void>;
  /** Makes an object-creating request to storage under `key`, which should come back as an event. */
  createObject(key: string): Promise<void>;
  /** Messages still on the queue, visible or in flight (ApproximateNumberOfMessages*). */
  depth(): Promise<number>;
  /** Seconds a received message stays invisible, as configured for this test. */
  visibilitySeconds: number;
  /** The same implementation pointed at a queue service that does not answer. */
  unreachable(): Promise<EventQueue>;
  stop(): Promise<void>;
}

export function eventQueueContract(name: string, start: () => Promise<QueueUnderTest>): void {
  describe(`EventQueue contract: ${name}`, () => {
    let t: QueueUnderTest;
    beforeAllOrFailEach(async () => {
      t = await start();
    });
    afterAll(async () => t?.stop());

    /** Receives until `count` messages matching `match` arrived; fails at the deadline. */
    async function receiveUntil(match: (m: QueuedMessage) => boolean, count = 1, timeoutMs = 15_000): Promise<QueuedMessage[]> {
      const got: QueuedMessage[] = [];
      await waitFor(
        async () => {
          for (const m of await t.queue.receive({ max: 10, waitSeconds: 1 })) if (match(m)) got.push(m);
          return got.length >= count;
        },
        { timeoutMs, intervalMs: 0, message: `${count} message(s) on the queue`, describeLast: () => got.map((m) => m.body.slice(0, 80)) },
      );
      return got;
    }

    it("delivers the event storage sends for a created object, with id, receipt handle and receive count 1", async () => {
      const key = `pending/contract/${randomBytes(4).toString("hex")}`;
      await t.createObject(key);
      const [m] = await receiveUntil((m) => m.body.includes(key));
      const record = JSON.parse(m!.body).Records[0];
      expect(record).toMatchObject({ eventSource: "aws:s3", eventName: "ObjectCreated:Put", s3: { object: { key } } });
      expect(m!.id).toBeTruthy();
      expect(m!.receiptHandle).toBeTruthy();
      expect(m!.receiveCount).toBe(1);
      await t.queue.delete(m!);
    });

    it("delivers a message received but not deleted again after the visibility timeout, counting receives", async () => {
      const body = `redeliver-${randomBytes(4).toString("hex")}`;
      await t.send(body);
      const [first] = await receiveUntil((m) => m.body === body);
      expect(first!.receiveCount).toBe(1);
      const [second] = await receiveUntil((m) => m.body === body, 1, t.visibilitySeconds * 1000 + 15_000);
      expect(second!.id).toBe(first!.id);
      expect(second!.receiveCount).toBe(2);
      await t.queue.delete(second!);
    });

    it("removes a deleted message for good", async () => {
      const body = `delete-${randomBytes(4).toString("hex")}`;
      await t.send(body);
      const [m] = await receiveUntil((x) => x.body === body);
      expect(await t.depth()).toBeGreaterThanOrEqual(1);
      await t.queue.delete(m!);
      // Neither visible nor in flight: nothing left to come back after the timeout.
      await waitFor(async () => (await t.depth()) === 0, { timeoutMs: 5000, message: "the queue to be empty after the delete" });
    });

    it("hands out no more than `max` messages per receive", async () => {
      const bodies = Array.from({ length: 5 }, (_, i) => `max-${i}-${randomBytes(3).toString("hex")}`);
      for (const b of bodies) await t.send(b);
      await waitFor(async () => (await t.depth()) >= 5, { timeoutMs: 5000, message: "five messages on the queue" });
      const first = await t.queue.receive({ max: 2, waitSeconds: 1 });
      expect(first.length).toBeGreaterThan(0);
      expect(first.length).toBeLessThanOrEqual(2);
      const rest = await receiveUntil((m) => bodies.includes(m.body), 5 - first.length);
      for (const m of [...first, ...rest]) await t.queue.delete(m);
      expect(new Set([...first, ...rest].map((m) => m.body))).toEqual(new Set(bodies));
    });

    it("answers an empty queue with no messages once the long poll ends, within its wait", async () => {
      await waitFor(async () => (await t.depth()) === 0, { timeoutMs: 5000, message: "an empty queue" });
      const started = Date.now();
      expect(await within(t.queue.receive({ max: 10, waitSeconds: 1 }), { timeoutMs: 5000, message: "a 1 s long poll to end" })).toEqual([]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    });

    it("ends a long poll at once when its signal aborts (shutdown), with no messages", async () => {
      const ac = new AbortController();
      const polling = t.queue.receive({ max: 10, waitSeconds: 20, signal: ac.signal });
      const started = Date.now();
      ac.abort();
      expect(await within(polling, { timeoutMs: 3000, message: "an aborted 20 s long poll to end" })).toEqual([]);
      expect(Date.now() - started).toBeLessThan(3000);
    });

    it("fails with DependencyUnavailableError, never an empty answer, when the queue service does not answer", async () => {
      const down = await t.unreachable();
      await expect(within(down.receive({ max: 10, waitSeconds: 1 }), { timeoutMs: 20_000, message: "a receive from a dead endpoint to fail" })).rejects.toBeInstanceOf(DependencyUnavailableError);
    });
  });
}
