import type { S3Client } from "@aws-sdk/client-s3";
import { createPresignedPost } from "@aws-sdk/s3-presigned-post";

/** What a presigned POST binds: the same declaration a presigned PUT binds. */
export type PostBinding = {
  contentType: string;
  expiresIn: number; // seconds
} & (
  | {
      /** The declared size: the only size the policy admits. */
      contentLength: number;
    }
  | {
      /** An upload whose size is learned on arrival: the policy admits 1 byte up to this. */
      maxContentLength: number;
    }
);

/** A browser form upload: POST `url` as multipart/form-data, `fields` first, the file last. */
export interface PresignedPost {
  method: "POST";
  url: string;
  fields: Record<string, string>;
  expiresAt: Date;
}

/**
 * Presigned POST (S3 "browser-based uploads using POST"): the form carries a policy document
 * signed with SigV4, and storage refuses any POST whose fields or file break a condition.
 *
 * The conditions are all exact:
 * - `key` equals the server-chosen key (no starts-with: a prefix would let the browser pick
 *   any name under it, overwriting another upload's pending object);
 * - `Content-Type` equals the declared, canonical type (starts-with "image/" would admit
 *   image/svg+xml);
 * - content-length-range is [declared, declared]: the exact size, which is what our PUT
 *   binds with a signed Content-Length. [1, declared] would store a short file that complete
 *   then refuses as size_mismatch; pinned, storage refuses it at the door. (A range is the
 *   only size check S3 enforces on a POST; a range of one value is still a range.) For an
 *   upload whose size is learned on arrival it is [1, limit]: an empty file is never an
 *   upload (declarations need at least one byte), and nothing above the limit is stored.
 * The policy expires with the upload URL's lifetime.
 */
export class PostPresigner {
  private readonly s3: S3Client;
  private readonly bucket: string;

  constructor(s3: S3Client, bucket: string) {
    this.s3 = s3;
    this.bucket = bucket;
  }

  async presign(key: string, b: PostBinding): Promise<PresignedPost> {
    const expiresAt = new Date(Date.now() + b.expiresIn * 1000);
    const { url, fields } = await createPresignedPost(this.s3, {
      Bucket: this.bucket,
      Key: key,
      // Capitalised: S3 matches form field names case-insensitively, but fauxqs drops a
      // lowercase content-type field (stores binary/octet-stream).
      Fields: { "Content-Type": b.contentType },
      Conditions: [
        ["eq", "$key", key],
        ["eq", "$Content-Type", b.contentType],
        "contentLength" in b ? ["content-length-range", b.contentLength, b.contentLength] : ["content-length-range", 1, b.maxContentLength],
      ],
      Expires: b.expiresIn,
    });
    return { method: "POST", url, fields, expiresAt };
  }
}

/** The policy of a presigned POST's fields, decoded (for tests and for operators reading one). */
export function decodePostPolicy(fields: Record<string, string>): { expiration: string; conditions: unknown[] } {
  const policy = fields.Policy ?? fields.policy;
  if (!policy) throw new Error("the fields hold no Policy");
  return JSON.parse(Buffer.from(policy, "base64").toString("utf8")) as { expiration: string; conditions: unknown[] };
}
