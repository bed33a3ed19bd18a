import type { RandomAccessSource } from "./sources.ts";

/**
 * Checksums computed on the way out. The Node entry uses node:crypto (incremental, MD5 and
 * SHA-256); the browser entry uses WebCrypto, which has SHA-256 but no MD5 and no
 * incremental hashing, so there a whole-object sha256 is computed only for sources small
 * enough to hold in memory once, and MD5 is left out (the API treats both as optional).
 */
export interface Digests {
  /** Hex sha256 and base64 MD5 of a whole source, read once; a field is absent when this platform cannot give it. */
  whole(source: RandomAccessSource, signal?: AbortSignal): Promise<{ sha256Hex?: string; md5Base64?: string }>;
  /** Checksums of one part, declared on the parts call (and the MD5 compared with a stored part's ETag on resume). */
  part(bytes: Uint8Array): Promise<{ md5Base64?: string; sha256Hex?: string }>;
}

const HASH_SLICE = 8 * 1024 * 1024;
/** Above this, WebCrypto would need the whole object in memory at once: skip the sha256. */
const WEB_WHOLE_LIMIT = 256 * 1024 * 1024;

export const webDigests: Digests = {
  async whole(source) {
    const subtle = globalThis.crypto?.subtle;
    if (!subtle || source.size > WEB_WHOLE_LIMIT) return {};
    const bytes = await source.read(0, source.size);
    const digest = await subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
    return { sha256Hex: hex(new Uint8Array(digest)) };
  },
  async part(bytes) {
    const subtle = globalThis.crypto?.subtle;
    return subtle ? { sha256Hex: hex(new Uint8Array(await subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>))) } : {};
  },
};

/** Reads a source in slices, for incremental hashes (the Node entry). */
export async function eachSlice(source: RandomAccessSource, f: (b: Uint8Array) => void, signal?: AbortSignal): Promise<void> {
  for (let at = 0; at < source.size; at += HASH_SLICE) {
    signal?.throwIfAborted();
    f(await source.read(at, Math.min(at + HASH_SLICE, source.size)));
  }
}

export function hex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

export function base64ToHex(b64: string): string {
  return hex(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
}
