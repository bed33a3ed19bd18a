import type { IntakeClient } from "./client.ts";
import { backoffDelay, sleep } from "./backoff.ts";
import { IntakeApiError, IntakeStorageError } from "./errors.ts";
import type { PresignedRequest } from "./types.ts";

export interface PartPut {
  bytes: Uint8Array;
  partNumber?: number;
  /** For messages: "part 3", "the object". */
  label: string;
  /** Signs (or returns) the URL; called again for a fresh one when the old expired or storage refused its signature. */
  sign: () => Promise<PresignedRequest>;
  retries: number;
  retryBaseMs: number;
  signal?: AbortSignal | undefined;
}

/** A URL this close to its expiry is not worth starting a PUT with. */
const EXPIRY_MARGIN_MS = 10_000;

/**
 * PUTs one part (or a single object) with exactly the signed headers, retrying network
 * failures, storage 5xx/408/429 and an expired or refused signature (403, fresh URL) with
 * exponential backoff. Other 4xx (BadDigest: the bytes are not what was signed) are final.
 * Returns storage's ETag.
 */
export async function putPart(client: IntakeClient, p: PartPut): Promise<string> {
  let signed: PresignedRequest | undefined;
  for (let attempt = 0; ; attempt++) {
    let failure: IntakeStorageError | IntakeApiError;
    let retryable: boolean;
    try {
      if (!signed || Date.parse(signed.expiresAt) - Date.now() < EXPIRY_MARGIN_MS) signed = await p.sign();
      const res = await client.fetch(signed.url, { method: "PUT", headers: signed.headers, body: p.bytes as Uint8Array<ArrayBuffer>, ...(p.signal ? { signal: p.signal } : {}) });
      if (res.ok) {
        await res.body?.cancel();
        const etag = res.headers.get("etag");
        // In browsers the ETag is readable only if storage's CORS exposes it.
        if (!etag) throw new IntakeStorageError(`storage accepted ${p.label} but sent no ETag (is ETag in the bucket's CORS ExposeHeaders?)`, { status: res.status, ...part(p) });
        return etag;
      }
      const storageCode = /<Code>([^<]{1,100})<\/Code>/.exec(await res.text().catch(() => ""))?.[1];
      failure = new IntakeStorageError(`storage refused ${p.label}: ${res.status}${storageCode ? ` ${storageCode}` : ""}`, { status: res.status, ...(storageCode ? { storageCode } : {}), ...part(p) });
      if (res.status === 403) signed = undefined;
      retryable = res.status >= 500 || res.status === 403 || res.status === 408 || res.status === 429 || storageCode === "RequestTimeout";
    } catch (err) {
      if (p.signal?.aborted) throw p.signal.reason;
      if (err instanceof IntakeStorageError) throw err;
      if (err instanceof IntakeApiError) {
        // Signing a fresh URL failed: worth another try only when the API said so.
        failure = err;
        retryable = err.status >= 500 || err.status === 429;
      } else {
        failure = new IntakeStorageError(`${p.label} did not reach storage: ${err instanceof Error ? err.message : String(err)}`, { status: 0, cause: err, ...part(p) });
        retryable = true;
      }
    }
    if (!retryable || attempt >= p.retries) throw failure;
    await sleep(backoffDelay(attempt, p.retryBaseMs), p.signal);
  }
}

const part = (p: PartPut) => (p.partNumber === undefined ? {} : { partNumber: p.partNumber });
