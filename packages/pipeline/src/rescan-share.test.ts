import { describe, expect, it } from "vitest";
import { RescanDeferred } from "./rescan-queue.ts";
import { RescanShare } from "./rescan-share.ts";

/** The share limiter's arithmetic on a clock and a pipeline load the test sets. */
function limiter(share: number) {
  let now = 1_000_000;
  let pending = 0;
  const l = new RescanShare({ load: { pending: async () => pending }, share, refreshMs: 0, quietMs: 2000, now: () => now });
  return { l, tick: (ms: number) => (now += ms), setPending: (n: number) => (pending = n) };
}

describe("RescanShare", () => {
  it("runs the rescan at full concurrency while no new upload waits", async () => {
    const { l } = limiter(0.25);
    const releases = await Promise.all([l.acquire(), l.acquire(), l.acquire()]);
    for (const r of releases) expect(await r()).toBe(0);
  });

  it("while uploads wait: one scan at a time, then a pause that keeps the rescan at its share of clamd time", async () => {
    const { l, tick, setPending } = limiter(0.25);
    setPending(3);
    const release = await l.acquire();
    // A second scan in this process while the first runs is put back.
    await expect(l.acquire()).rejects.toBeInstanceOf(RescanDeferred);
    tick(400);
    // 400 ms of scanning at a 25% share: 1200 ms of pause (400 / (400 + 1200) = 25%).
    expect(await release()).toBe(1200);
    const deferred = await l.acquire().catch((e: unknown) => e);
    expect(deferred).toBeInstanceOf(RescanDeferred);
    expect((deferred as RescanDeferred).pauseMs).toBe(1200);
    tick(1200);
    await expect(l.acquire()).resolves.toBeTypeOf("function");
  });

  it("stays limited until the pipeline has been quiet for quietMs: one empty reading between two small uploads is not quiet", async () => {
    const { l, tick, setPending } = limiter(0.5);
    setPending(1);
    expect(await l.busy()).toBe(true);
    setPending(0);
    tick(1999);
    expect(await l.busy()).toBe(true);
    tick(1);
    expect(await l.busy()).toBe(false);
  });

  it("share 1 never limits; share 0 stops the rescan whenever uploads wait; a load it cannot read counts as busy", async () => {
    const full = limiter(1);
    full.setPending(10);
    await Promise.all([full.l.acquire(), full.l.acquire()]);
    const none = limiter(0);
    none.setPending(1);
    await expect(none.l.acquire()).rejects.toBeInstanceOf(RescanDeferred);
    none.setPending(0);
    none.tick(2000);
    await expect(none.l.acquire()).resolves.toBeTypeOf("function");
    const blind = new RescanShare({ load: { pending: () => Promise.reject(new Error("redis away")) }, share: 0, refreshMs: 0, quietMs: 1000 });
    await expect(blind.acquire()).rejects.toBeInstanceOf(RescanDeferred);
  });
});
