import { Transform, type TransformCallback } from "node:stream";
import type { ObjectStore } from "@intake/storage";

/**
 * The scan stage's own copy of the bytes it scans, written as they stream past: a
 * multipart upload to the run's staging key (finalize-decision.ts stagingKey: under
 * quarantine/, never served, no client can write it), fed from the same chunks clamd and
 * the hash see. Promotion then copies that object on to verified/ and needs no proof that
 * it holds the checked bytes, because it was made from them: before this, finalize copied
 * the pending object (whose ETag is an MD5, which a crafted replacement can share) and read
 * the copy back to hash it, so a large upload was read twice.
 *
 * Memory: one part filling and at most one in flight. A part upload that fails fails the
 * stream, and with it the scan (which is retried): no verdict rests on a half-made copy.
 * Parts carry no Content-MD5 (hashing every byte once more would cost more than the
 * corruption it guards against on the worker's own connection; TLS covers it in transit);
 * the bytes are this process's own.
 */
export const STAGED_PART_BYTES = 5 * 1024 * 1024;

export class StagedCopy extends Transform {
  private readonly store: ObjectStore;
  readonly key: string;
  private readonly uploadId: string;
  private readonly partBytes: number;
  private part: Buffer;
  private spare: Buffer | null = null;
  private filled = 0;
  private readonly parts: { partNumber: number; eTag: string }[] = [];
  private inFlight: Promise<void> = Promise.resolve();
  private completed = false;
  private lastPartNumber = 0;

  private constructor(store: ObjectStore, key: string, uploadId: string, partBytes: number) {
    super();
    this.store = store;
    this.key = key;
    this.uploadId = uploadId;
    this.partBytes = partBytes;
    this.part = Buffer.allocUnsafe(partBytes);
  }

  static async open(store: ObjectStore, key: string, partBytes = STAGED_PART_BYTES): Promise<StagedCopy> {
    return new StagedCopy(store, key, await store.createMultipart(key, "application/octet-stream"), partBytes);
  }

  /** True once every byte that passed is stored under `key` as one object. */
  get complete(): boolean {
    return this.completed;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    // Copied into the part being filled, so the stream's own chunks are free as soon as
    // clamd has them (a list of them, concatenated at the end of each part, held twice the
    // memory for as long as the garbage collector took to notice).
    let at = this.fill(chunk, 0);
    if (this.filled < this.partBytes) return done(null, chunk);
    // A full part: wait for the one in flight (backpressure on the read and the scan),
    // then send this one and let the stream go on filling the next.
    const send = () => {
      const part = this.cutPart();
      at = this.fill(chunk, at);
      this.inFlight = this.send(part);
      // A failure surfaces at the next part or at the end, where the stream fails.
      this.inFlight.catch(() => undefined);
    };
    this.inFlight.then(
      () => {
        send();
        // A chunk larger than a part fills more than one (not from a GET, but possible).
        if (this.filled < this.partBytes) return done(null, chunk);
        this.inFlight.then(() => (send(), done(null, chunk)), (err: unknown) => done(err as Error));
      },
      (err: unknown) => done(err as Error),
    );
  }

  override _flush(done: TransformCallback): void {
    // The rest as the last part; nothing left when the stream ended on a part boundary (a
    // part still in flight counts: an empty object is the only one with no part at all).
    const last = this.filled > 0 || this.lastPartNumber === 0 ? this.cutPart() : null;
    this.inFlight
      .then(() => (last ? this.send(last) : undefined))
      .then(() => this.store.completeMultipart(this.key, this.uploadId, this.parts))
      .then(
        () => {
          this.completed = true;
          done();
        },
        (err: unknown) => done(err as Error),
      );
  }

  /** Removes whatever exists of the copy: the upload in progress or the completed object. */
  async discard(): Promise<void> {
    await this.inFlight.catch(() => undefined);
    if (this.completed) await this.store.delete(this.key);
    else await this.store.abortMultipart(this.key, this.uploadId);
  }

  /** Copies `chunk` from `from` into the part being filled, as far as it fits; where it stopped. */
  private fill(chunk: Buffer, from: number): number {
    const n = Math.min(chunk.length - from, this.partBytes - this.filled);
    chunk.copy(this.part, this.filled, from, from + n);
    this.filled += n;
    return from + n;
  }

  /**
   * The part filled so far, to send; filling goes on in the other of two buffers. A part is
   * cut only once the one in flight is stored, so that buffer is free again: two buffers
   * serve the whole object (a new one per part left hundreds of megabytes for the garbage
   * collector to find, and the RSS grew by tens of megabytes on a 1000 MiB object).
   */
  private cutPart(): { partNumber: number; body: Buffer; buffer: Buffer } {
    const buffer = this.part;
    const body = buffer.subarray(0, this.filled);
    this.part = this.spare ?? Buffer.allocUnsafe(this.partBytes);
    this.spare = null;
    this.filled = 0;
    return { partNumber: ++this.lastPartNumber, body, buffer };
  }

  private async send(part: { partNumber: number; body: Buffer; buffer: Buffer }): Promise<void> {
    const eTag = await this.store.uploadPart(this.key, this.uploadId, part.partNumber, part.body);
    this.parts.push({ partNumber: part.partNumber, eTag });
    this.spare = part.buffer;
  }
}
