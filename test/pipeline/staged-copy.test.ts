import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterAll, describe, expect, it } from "vitest";
import { StagedCopy } from "@intake/pipeline";
import type { ObjectStore } from "@intake/storage";
import { beforeAllOrFailEach, startStorage, STORAGE_KINDS, type TestStorage } from "@intake/test";

const MiB = 1024 * 1024;
// S3's smallest part but the last (RGW enforces it when the upload is completed).
const PART = 5 * MiB;

async function bytesOf(store: ObjectStore, key: string): Promise<Buffer | null> {
  const read = await store.read(key);
  if (!read) return null;
  const chunks: Buffer[] = [];
  for await (const c of read.body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Streams `data` through a staged copy in chunks of `chunk` bytes, as a GET would, and drains its output. */
async function stream(copy: StagedCopy, data: Buffer, chunk = 64 * 1024): Promise<number> {
  let passed = 0;
  const chunks = Array.from({ length: Math.ceil(data.length / chunk) }, (_, i) => data.subarray(i * chunk, (i + 1) * chunk));
  await pipeline(Readable.from(chunks), copy, async (source: AsyncIterable<Buffer>) => {
    for await (const c of source) passed += c.length;
  });
  return passed;
}

/**
 * The scan stage's own copy of what it scans (staged-copy.ts): whatever passes through it
 * must be stored whole and unchanged, at every boundary between parts, and a copy that
 * could not be made must fail the stream (and so the scan) and leave nothing behind.
 */
describe.each(STORAGE_KINDS)("the staged copy on %s", (kind) => {
  let storage: TestStorage;
  beforeAllOrFailEach(async () => {
    storage = await startStorage(kind);
  });
  afterAll(async () => storage?.stop());
  const key = () => `quarantine/staged-test/${randomBytes(6).toString("hex")}.promoting-test`;

  it.each([
    ["one byte", 1],
    ["less than a part", PART - 1],
    ["exactly one part", PART],
    ["exactly two parts (the stream ends on a part boundary while the first is in flight)", 2 * PART],
    ["two parts and one byte", 2 * PART + 1],
  ])("stores %s whole and passes every byte on", async (_, size) => {
    const data = randomBytes(size);
    const k = key();
    const copy = await StagedCopy.open(storage.store, k, PART);
    expect(await stream(copy, data)).toBe(size);
    expect(copy.complete).toBe(true);
    expect((await bytesOf(storage.store, k))?.equals(data)).toBe(true);
    await copy.discard();
    expect(await storage.store.head(k)).toBeNull();
  });

  it("fails the stream when a part cannot be stored, and discard leaves no object", async () => {
    const failing: ObjectStore = Object.create(storage.store);
    let parts = 0;
    failing.uploadPart = async (...args) => {
      if (++parts === 2) throw new Error("storage refused the second part");
      return storage.store.uploadPart(...args);
    };
    const k = key();
    const copy = await StagedCopy.open(failing, k, PART);
    await expect(stream(copy, randomBytes(3 * PART))).rejects.toThrow(/second part/);
    expect(copy.complete).toBe(false);
    await copy.discard();
    expect(await storage.store.head(k)).toBeNull();
  });
});
