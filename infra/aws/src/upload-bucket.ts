import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as s3 from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";

/** Headers a browser sends with our presigned requests (packages/storage put-presigner.ts signs them). */
export const CORS_ALLOWED_HEADERS = ["Content-Type", "Content-MD5", "x-amz-checksum-sha256"] as const;

export interface UploadBucketProps {
  bucketName: string;
  /** Origins allowed to PUT/POST to presigned URLs from a browser; exact, no wildcards. */
  corsOrigins: readonly string[];
  /** Incomplete multipart uploads aborted after this many days (the reaper aborts at MULTIPART_TTL_SECONDS). */
  abortMultipartAfterDays: number;
  /** Stray objects under pending/ expire after this many days (the reaper deletes them after PENDING_GRACE_SECONDS). */
  pendingExpiryDays: number;
}

/**
 * The upload bucket and its access-log bucket.
 *
 * - Encryption: SSE-S3. Every request goes through presigned URLs, which carry the signer's
 *   permissions: with SSE-KMS the API role would need kms:GenerateDataKey/Decrypt for every
 *   client's upload and download, and each part PUT and GET would count against KMS request
 *   quotas, while the access boundary that matters (which role reads which prefix) is IAM's
 *   here. A site that needs key-level audit can switch to KMS and grant the key per role.
 * - Versioning: off. The pipeline's guarantees are "deleted means gone": a pending object
 *   removed after its verdict, quarantined bytes purged after their retention, a verified
 *   copy discarded. Versioning would keep each as a noncurrent version (malware included)
 *   that the reaper's purge and the quarantine retention never see.
 * - Notifications: ObjectCreated under pending/ only; our own copies to verified/ and
 *   quarantine/ emit ObjectCreated:Copy and must not come back as events.
 * - Lifecycle: backstops only. The reaper is the primary cleanup and records each step in
 *   the database; these rules catch what it cannot (a reaper down for days). The multipart
 *   rule also ends a staging copy still being written when its run died (scan's streamed copy).
 * - Staging copies (quarantine/<tenant>/<id>.promoting-<run>) a killed run left complete have
 *   no rule: only the reaper's sweep removes them (packages/pipeline staging-sweep.ts). A
 *   lifecycle filter matches a key prefix, never a suffix, and quarantine/ also holds the
 *   quarantined evidence, which must live out its retention. A tag filter could single them
 *   out, but tagging at write time needs s3:PutObjectTagging for every role that stages, and
 *   CopyObject carries the source's tags by default (TaggingDirective COPY, needing
 *   s3:GetObjectTagging on the source): every copy on from a staging copy would have to
 *   replace its tags, or the verified/ object would carry the staging tag. A rule that can
 *   expire an object because of a tag a copy forgot to drop is worse than the leak; the
 *   sweep deletes only what its key pattern and the upload's row allow.
 */
export class UploadBucket extends Construct {
  readonly bucket: s3.Bucket;
  readonly logBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: UploadBucketProps) {
    super(scope, id);
    for (const origin of props.corsOrigins) {
      if (!/^https?:\/\/[^/*\s]+$/.test(origin)) throw new Error(`CORS origin ${JSON.stringify(origin)} must be a scheme and host (no path, no wildcard)`);
    }
    if (props.pendingExpiryDays <= props.abortMultipartAfterDays) throw new Error("pendingExpiryDays must exceed abortMultipartAfterDays");

    this.logBucket = new s3.Bucket(this, "AccessLogs", {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      // Log delivery (S3 server access logs, ALB access logs) writes SSE-S3 only.
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: "expire-logs", expiration: Duration.days(365) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });

    this.bucket = new s3.Bucket(this, "Uploads", {
      bucketName: props.bucketName,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: false,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.logBucket,
      serverAccessLogsPrefix: "uploads/",
      removalPolicy: RemovalPolicy.RETAIN,
      cors: props.corsOrigins.length
        ? [
            {
              id: "browser-uploads",
              allowedMethods: [s3.HttpMethods.PUT, s3.HttpMethods.POST],
              allowedOrigins: [...props.corsOrigins],
              allowedHeaders: [...CORS_ALLOWED_HEADERS],
              // Multipart clients (Uppy) read each part's ETag for CompleteMultipartUpload.
              exposedHeaders: ["ETag"],
              maxAge: 3000,
            },
          ]
        : undefined,
      lifecycleRules: [
        { id: "abort-incomplete-multipart", abortIncompleteMultipartUploadAfter: Duration.days(props.abortMultipartAfterDays) },
        { id: "expire-stray-pending", prefix: "pending/", expiration: Duration.days(props.pendingExpiryDays) },
      ],
    });
  }
}
