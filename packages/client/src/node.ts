/**
 * The Node entry (@intake/client/node): the same client with node:crypto checksums (MD5 and
 * SHA-256, incremental) and file paths as upload sources. Browser code imports
 * "@intake/client", which has no Node imports.
 */
import { createHash } from "node:crypto";
import { open, stat } from "node:fs/promises";
import { IntakeClient as BaseClient, type IntakeClientOptions } from "./client.ts";
import { eachSlice, type Digests } from "./digests.ts";
import type { RandomAccessSource, UploadSource } from "./sources.ts";
import type { UploadOptions, UploadOutcome } from "./upload.ts";

export * from "./index.ts";
/** The admin API (a signed-in admin's session): Node only, since it sets the Cookie header itself. */
export * from "./admin-client.ts";

export const nodeDigests: Digests = {
  async whole(source, signal) {
    const sha = createHash("sha256");
    const md5 = createHash("md5");
    await eachSlice(source, (b) => (sha.update(b), md5.update(b)), signal);
    return { sha256Hex: sha.digest("hex"), md5Base64: md5.digest("base64") };
  },
  part: async (bytes) => ({ md5Base64: createHash("md5").update(bytes).digest("base64"), sha256Hex: createHash("sha256").update(bytes).digest("hex") }),
};

/** A file on disk, read by position (parts in parallel without holding the file in memory). */
export async function fileSource(path: string): Promise<RandomAccessSource> {
  const { size } = await stat(path);
  return {
    kind: "random",
    size,
    async read(start, end) {
      const fh = await open(path, "r");
      try {
        const buf = Buffer.allocUnsafe(end - start);
        let at = 0;
        while (at < buf.length) {
          const { bytesRead } = await fh.read(buf, at, buf.length - at, start + at);
          if (bytesRead === 0) throw new Error(`${path} shrank while it was being uploaded`);
          at += bytesRead;
        }
        return buf;
      } finally {
        await fh.close();
      }
    },
  };
}

export type NodeUploadSource = UploadSource | string;

/** IntakeClient for Node: node:crypto digests by default, and upload("path/to/file"). */
export class IntakeClient extends BaseClient {
  constructor(o: IntakeClientOptions) {
    super({ digests: nodeDigests, ...o });
  }

  override async upload(source: NodeUploadSource, o: UploadOptions): Promise<UploadOutcome> {
    return super.upload(typeof source === "string" ? await fileSource(source) : source, o);
  }

  override async resumeUpload(uploadId: string, source: NodeUploadSource, o: Parameters<BaseClient["resumeUpload"]>[2]): Promise<UploadOutcome> {
    return super.resumeUpload(uploadId, typeof source === "string" ? await fileSource(source) : source, o);
  }
}
