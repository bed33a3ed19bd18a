/**
 * What upload() reads from. Everything becomes a ByteSource: either random access (bytes in
 * memory, a Blob or File, a file on disk) or sequential (a stream of known size), read one
 * part at a time so memory stays at about concurrency x part size.
 */
export interface RandomAccessSource {
  readonly kind: "random";
  readonly size: number;
  read(start: number, end: number): Promise<Uint8Array>;
}

export interface SequentialSource {
  readonly kind: "sequential";
  readonly size: number;
  /** The next `length` bytes, exactly; calls must not overlap. */
  next(length: number): Promise<Uint8Array>;
}

export type ByteSource = RandomAccessSource | SequentialSource;

/** Anything async-iterable over byte chunks: a Node Readable, a web ReadableStream in Node. */
export type ByteStream = ReadableStream<Uint8Array> | AsyncIterable<Uint8Array | string>;

/** Sources the browser-safe entry accepts; the Node entry adds file paths. */
export type UploadSource = Uint8Array | ArrayBuffer | Blob | ByteStream | ByteSource;

export function bytesSource(bytes: Uint8Array): RandomAccessSource {
  return { kind: "random", size: bytes.byteLength, read: async (s, e) => bytes.subarray(s, e) };
}

export function blobSource(blob: Blob): RandomAccessSource {
  return { kind: "random", size: blob.size, read: async (s, e) => new Uint8Array(await blob.slice(s, e).arrayBuffer()) };
}

/** A stream of exactly `size` bytes; a stream that ends early or runs on is an error. */
export function streamSource(stream: ByteStream, size: number): SequentialSource {
  const iterator = chunksOf(stream);
  let carry: Uint8Array = new Uint8Array(0);
  let consumed = 0;
  return {
    kind: "sequential",
    size,
    async next(length) {
      const out = new Uint8Array(length);
      let filled = 0;
      while (filled < length) {
        if (carry.byteLength === 0) {
          const r = await iterator.next();
          if (r.done) throw new Error(`the stream ended after ${consumed + filled} bytes; ${size} were declared`);
          carry = r.value;
          continue;
        }
        const take = Math.min(carry.byteLength, length - filled);
        out.set(carry.subarray(0, take), filled);
        carry = carry.subarray(take);
        filled += take;
      }
      consumed += length;
      if (consumed === size && carry.byteLength === 0) {
        const r = await iterator.next();
        if (!r.done && r.value.byteLength > 0) throw new Error(`the stream has more than the ${size} bytes declared`);
      }
      return out;
    },
  };
}

async function* chunksOf(stream: ByteStream): AsyncGenerator<Uint8Array> {
  if (typeof (stream as ReadableStream).getReader === "function") {
    const reader = (stream as ReadableStream<Uint8Array>).getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  }
  for await (const chunk of stream as AsyncIterable<Uint8Array | string>) {
    yield typeof chunk === "string" ? new TextEncoder().encode(chunk) : chunk;
  }
}

/** Turns what the caller passed into a ByteSource; streams need their size. */
export function toByteSource(source: UploadSource, size?: number): ByteSource {
  if (isByteSource(source)) return source;
  if (source instanceof Uint8Array) return bytesSource(source);
  if (source instanceof ArrayBuffer) return bytesSource(new Uint8Array(source));
  if (typeof Blob !== "undefined" && source instanceof Blob) return blobSource(source);
  if (size === undefined || !Number.isSafeInteger(size) || size < 1) {
    throw new TypeError("a stream source needs its exact size: upload(stream, { size, ... })");
  }
  return streamSource(source as ByteStream, size);
}

function isByteSource(s: unknown): s is ByteSource {
  const k = (s as ByteSource | null)?.kind;
  return (k === "random" || k === "sequential") && typeof (s as ByteSource).size === "number";
}

/** Reads a whole sequential source into memory (used only up to the single-PUT threshold). */
export async function buffered(source: SequentialSource): Promise<RandomAccessSource> {
  return bytesSource(await source.next(source.size));
}
