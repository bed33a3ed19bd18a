import type { IntakeClient } from "./client.ts";
import { IntakeApiError, IntakeUploadInterruptedError } from "./errors.ts";
import { ProgressMeter, type UploadProgress } from "./progress.ts";
import { buffered, toByteSource, type ByteSource, type RandomAccessSource, type UploadSource } from "./sources.ts";
import type { CompletedPart, CreateUploadInput, PartRequest, PresignedRequest, SignedPart, Upload, UploadCreated } from "./types.ts";
import { base64ToHex } from "./digests.ts";
import { putPart } from "./part-put.ts";

export interface UploadOptions {
  filename: string;
  contentType: string;
  metadata?: Record<string, string>;
  /** Required for streams; for other sources it must match when given. */
  size?: number;
  signal?: AbortSignal;
  onProgress?: (p: UploadProgress) => void;
  /** Parts in flight at once (multipart), default 4. */
  concurrency?: number;
  /** Retries of a failed part (or single PUT) after the first try, default 4. */
  partRetries?: number;
  /** First retry delay in ms, doubled each time (capped at 8 s), default 500. */
  retryBaseMs?: number;
  idempotencyKey?: string;
  expiresIn?: number;
  /** On abort (signal), leave the upload pending for a later resumeUpload instead of DELETE-ing it. */
  keepOnAbort?: boolean;
  /** Set by resumeUpload. */
  resumeUploadId?: string;
}

export interface UploadOutcome {
  upload: Upload;
  kind: "single" | "multipart";
  /** Hex sha256 the client computed and declared, when it could. */
  sha256: string | undefined;
  /** Parts storage already held (resume). */
  skippedParts: number;
}

export async function runUpload(client: IntakeClient, input: UploadSource, o: UploadOptions): Promise<UploadOutcome> {
  let source = toByteSource(input, o.size);
  if (o.size !== undefined && o.size !== source.size) throw new TypeError(`size ${o.size} does not match the source's ${source.size} bytes`);
  o.signal?.throwIfAborted();
  let id = o.resumeUploadId;
  try {
    if (id !== undefined) {
      const upload = await client.get(id, { signal: o.signal });
      if (upload.status !== "pending" || !upload.multipart) {
        throw new IntakeApiError(409, { code: "not_resumable", message: `only a pending multipart upload can be resumed; this one is ${upload.status}${upload.multipart ? "" : " (single PUT)"}`, details: { id, status: upload.status } });
      }
      if (upload.size !== source.size) throw new TypeError(`upload ${id} was declared with ${upload.size} bytes; the source has ${source.size}`);
      return await multipart(client, id, source, upload.multipart, o, true, upload.sha256 ?? undefined);
    }
    // A stream small enough for a single PUT is held in memory anyway (storage needs the
    // length up front): read it first, so its checksums can be declared.
    if (source.kind === "sequential" && source.size <= client.multipartThresholdBytes) source = await buffered(source);
    const sums = source.kind === "random" ? await client.digests.whole(source, o.signal) : {};
    const created = await create(client, source.size, sums, o);
    id = created.upload.id;
    if (created.kind === "single") {
      if ("fields" in created) throw new TypeError("upload() sends with PUT; a POST form upload was not asked for");
      // The API's threshold is above our guess: the stream must be held in memory for one PUT after all.
      const whole = source.kind === "random" ? source : await buffered(source);
      return await single(client, created, whole, o, sums.sha256Hex);
    }
    return await multipart(client, id, source, created, o, false, sums.sha256Hex);
  } catch (err) {
    if (o.signal?.aborted && id !== undefined) {
      // Cancelled: free the upload (DELETE aborts the multipart upload in storage) unless asked to keep it.
      if (!o.keepOnAbort) await client.abort(id).catch(() => undefined);
      throw o.signal.reason;
    }
    throw err;
  }
}

async function create(client: IntakeClient, size: number, sums: { sha256Hex?: string; md5Base64?: string }, o: UploadOptions): Promise<UploadCreated> {
  const base: CreateUploadInput = {
    filename: o.filename,
    contentType: o.contentType,
    size,
    ...(o.metadata ? { metadata: o.metadata } : {}),
    ...(o.expiresIn ? { expiresIn: o.expiresIn } : {}),
    ...(sums.sha256Hex ? { sha256: sums.sha256Hex } : {}),
  };
  const call = (input: CreateUploadInput) => client.createUpload(input, { signal: o.signal, ...(o.idempotencyKey ? { idempotencyKey: o.idempotencyKey } : {}) });
  // MD5 binds a single PUT only; the API refuses it for a multipart upload. Our threshold is
  // a guess of the API's: when it guessed wrong, the API's invalid_checksum says so.
  if (!sums.md5Base64 || size > client.multipartThresholdBytes) return call(base);
  try {
    return await call({ ...base, md5: sums.md5Base64 });
  } catch (err) {
    if (err instanceof IntakeApiError && err.status === 400 && err.code === "invalid_checksum" && /multipart/.test(err.message)) return call(base);
    throw err;
  }
}

async function single(client: IntakeClient, created: PresignedRequest & { upload: Upload }, source: RandomAccessSource, o: UploadOptions, sha256: string | undefined): Promise<UploadOutcome> {
  const meter = new ProgressMeter(source.size, o.onProgress);
  meter.start();
  const bytes = await source.read(0, source.size);
  // A single PUT URL cannot be re-signed: retries reuse it until it expires.
  await putPart(client, { bytes, label: "the object", sign: async () => created, retries: o.partRetries ?? 4, retryBaseMs: o.retryBaseMs ?? 500, signal: o.signal });
  meter.confirmed(source.size);
  const upload = await client.complete(created.upload.id, undefined, { signal: o.signal });
  return { upload, kind: "single", sha256, skippedParts: 0 };
}

async function multipart(
  client: IntakeClient,
  id: string,
  source: ByteSource,
  plan: { partSize: number; partCount: number },
  o: UploadOptions,
  resuming: boolean,
  sha256: string | undefined,
): Promise<UploadOutcome> {
  const stored = resuming ? new Map((await client.listParts(id, { signal: o.signal })).map((p) => [p.partNumber, p])) : new Map();
  const meter = new ProgressMeter(source.size, o.onProgress);
  meter.start();
  const etags = new Map<number, string>();
  let skippedParts = 0;
  // One failing part stops the others: their in-flight PUTs are aborted too.
  const stop = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, stop.signal]) : stop.signal;
  let next = 1;
  let reading: Promise<unknown> = Promise.resolve();
  const readPart = (n: number): Promise<Uint8Array> => {
    const start = (n - 1) * plan.partSize;
    const end = Math.min(start + plan.partSize, source.size);
    // Reads in part order, one at a time: a stream can only be read forwards.
    const r = reading.then(() => (source.kind === "random" ? source.read(start, end) : source.next(end - start)));
    reading = r.catch(() => undefined);
    return r;
  };
  const worker = async () => {
    while (!signal.aborted) {
      const n = next++;
      if (n > plan.partCount) return;
      const bytes = await readPart(n);
      const held = stored.get(n);
      const sums = await client.digests.part(bytes);
      if (held && held.size === bytes.byteLength && sameContent(sums.md5Base64, held.etag)) {
        etags.set(n, held.etag);
        skippedParts++;
        meter.skipped(bytes.byteLength);
        continue;
      }
      const sign = () => signPart(client, id, n, sums, sha256 !== undefined, signal);
      etags.set(n, await putPart(client, { bytes, partNumber: n, label: `part ${n}`, sign, retries: o.partRetries ?? 4, retryBaseMs: o.retryBaseMs ?? 500, signal }));
      meter.confirmed(bytes.byteLength);
    }
  };
  const concurrency = Math.max(1, Math.min(o.concurrency ?? 4, plan.partCount));
  try {
    await Promise.all(
      Array.from({ length: concurrency }, () =>
        worker().catch((err) => {
          stop.abort(err);
          throw err;
        }),
      ),
    );
  } catch (err) {
    if (o.signal?.aborted) throw err;
    throw new IntakeUploadInterruptedError(id, err);
  }
  const parts: CompletedPart[] = [...etags].sort((a, b) => a[0] - b[0]).map(([partNumber, etag]) => ({ partNumber, etag }));
  const upload = await client.complete(id, parts, { signal: o.signal });
  return { upload, kind: "multipart", sha256, skippedParts };
}

/**
 * A stored part is kept only when it holds these bytes: storage's ETag of a plain part is
 * the hex MD5 of its bytes. Where MD5 is not available (browsers) the size alone decides.
 */
function sameContent(md5Base64: string | undefined, etag: string): boolean {
  return md5Base64 === undefined || etag.replace(/"/g, "").toLowerCase() === base64ToHex(md5Base64);
}

/** APIs that predate per-part checksums answer unknown_field to `parts`: remembered per client. */
const noPartChecksums = new WeakSet<IntakeClient>();

/**
 * Signs one part's URL with the checksums of its bytes bound into it (Content-MD5, which
 * S3 and RGW enforce; x-amz-checksum-sha256, which AWS S3 enforces), so storage refuses
 * other bytes. The part sha256 only for uploads that declared a whole sha256: the API
 * refuses it on the others where storage verifies it.
 */
async function signPart(client: IntakeClient, id: string, n: number, sums: { md5Base64?: string; sha256Hex?: string }, declaredSha256: boolean, signal: AbortSignal): Promise<SignedPart> {
  const request: PartRequest = { partNumber: n, ...(sums.md5Base64 ? { md5: sums.md5Base64 } : {}), ...(declaredSha256 && sums.sha256Hex ? { sha256: sums.sha256Hex } : {}) };
  if ((request.md5 || request.sha256) && !noPartChecksums.has(client)) {
    try {
      return (await client.signParts(id, { parts: [request] }, { signal }))[0]!;
    } catch (err) {
      if (!(err instanceof IntakeApiError && err.code === "unknown_field")) throw err;
      noPartChecksums.add(client);
    }
  }
  return (await client.signParts(id, { partNumbers: [n] }, { signal }))[0]!;
}
