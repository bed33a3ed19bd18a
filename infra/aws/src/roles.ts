/**
 * What each Intake process kind may touch in AWS, and how each worker role scales: the one
 * table the stack's IAM policies, services and scaling policies are built from (a new
 * worker role is a new row here, nothing else). The grants follow what the code really
 * calls (packages/pipeline, services/api), one process kind per task role, so a role's
 * policy is the list of S3 operations its stage performs and nothing more.
 *
 * IAM has no separate actions for multipart steps: CreateMultipartUpload, UploadPart and
 * CompleteMultipartUpload are authorised by s3:PutObject, ListParts by
 * s3:ListMultipartUploadParts, HeadObject by s3:GetObject, CopyObject by s3:GetObject on
 * the source and s3:PutObject on the target. A presigned URL carries the signer's
 * permissions, so the API role must hold what its URLs let clients do.
 */

/** The bucket's key spaces (@intake/domain PREFIX): pending/, verified/, quarantine/. */
export const KEY_SPACES = ["pending", "verified", "quarantine"] as const;
export type KeySpace = (typeof KEY_SPACES)[number];

export type ObjectAction = "s3:GetObject" | "s3:PutObject" | "s3:DeleteObject" | "s3:AbortMultipartUpload" | "s3:ListMultipartUploadParts";
/**
 * Bucket-level actions. s3:ListBucket is granted to every role that heads or reads keys
 * that may be missing: without it S3 answers 403 instead of 404 for a missing key (HeadObject
 * and GetObject docs), and the pipeline's idempotency checks (finalize's "was it moved
 * already?", the reaper's "did it arrive?") read a missing object as null only on a 404.
 * A listing shows key names, which are server-generated ids the database already holds,
 * never bytes. HeadBucket (the API's storage readiness check) is authorised by it too.
 */
export type BucketAction = "s3:ListBucket" | "s3:ListBucketMultipartUploads";

export interface ProcessAccess {
  objects: Partial<Record<KeySpace, readonly ObjectAction[]>>;
  bucket: readonly BucketAction[];
  /** The S3 event queue: receive and delete (the ingest loop; it never changes visibility). */
  eventQueue?: true;
  /** GetQueueAttributes on the dead-letter queue (the operators' health page and intake_dlq_messages). */
  deadLetterDepth?: true;
  /** Reaches clamd on the Cloud Map name (security group ingress on clamd's port). */
  clamd?: true;
}

const READ: ObjectAction[] = ["s3:GetObject"];

/**
 * The API (public surface): presigned PUT/POST/part URLs and its own create/complete calls
 * under pending/ (PutObject covers all of them), abort and ListParts for multipart, HeadObject
 * on complete and DeleteObject when a client cancels (both pending/), presigned GETs under
 * verified/. Nothing under quarantine/.
 */
export const API_ACCESS: ProcessAccess = {
  objects: {
    pending: ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts", "s3:GetObject", "s3:DeleteObject"],
    verified: READ,
  },
  bucket: ["s3:ListBucket"],
};

/**
 * The admin surface (operators, compliance reviewers, admins: /admin and /v1/admin, routed
 * by the load balancer to their own service with this role). It is the one designated
 * reader of quarantine/ (compliance review of the evidence) and deletes quarantined bytes
 * (the reviewers' delete action); a release only queues a recheck, which the recheck role
 * carries out. It reads the dead-letter queue's depth and reaches clamd for the health page.
 */
export const ADMIN_ACCESS: ProcessAccess = {
  objects: { quarantine: ["s3:GetObject", "s3:DeleteObject"] },
  bucket: ["s3:ListBucket"],
  deadLetterDepth: true,
  clamd: true,
};

/** The one-shot migration task: the database only. */
export const MIGRATE_ACCESS: ProcessAccess = { objects: {}, bucket: [] };

export type Scaling =
  /** SQS ApproximateNumberOfMessagesVisible of the event queue. */
  | { signal: "event-queue"; scaleOutAt: number; min: number; max: number }
  /** The BullMQ queue's waiting count, published to CloudWatch (queue-metrics.ts). */
  | { signal: "bullmq-waiting"; queue: string; scaleOutAt: number; min: number; max: number }
  /** A fixed count (the reaper: its job scheduler keeps one schedule across replicas anyway). */
  | { signal: "fixed"; count: number };

export interface WorkerRole {
  name: string;
  access: ProcessAccess;
  scaling: Scaling;
  /** Fargate size: cpu units and MiB (one-pass reads hold ONE_PASS_MAX_BYTES per job in memory). */
  cpu: number;
  memoryMiB: number;
}

export const WORKER_ROLES: readonly WorkerRole[] = [
  {
    // S3 events -> BullMQ jobs; heads the object named by an event, deletes strays under pending/.
    name: "ingest",
    access: { objects: { pending: ["s3:GetObject", "s3:DeleteObject"] }, bucket: ["s3:ListBucket"], eventQueue: true },
    scaling: { signal: "event-queue", scaleOutAt: 100, min: 1, max: 4 },
    cpu: 256,
    memoryMiB: 512,
  },
  {
    // Real size and magic bytes: ranged reads of the pending object.
    name: "inspect",
    access: { objects: { pending: READ }, bucket: ["s3:ListBucket"] },
    scaling: { signal: "bullmq-waiting", queue: "intake-inspect", scaleOutAt: 50, min: 1, max: 6 },
    cpu: 512,
    memoryMiB: 1024,
  },
  {
    // clamd over the pending object's bytes. Alone in its process (WORKER_ROLES=scan) it
    // does not finalize inline, so it only reads.
    name: "scan",
    access: { objects: { pending: READ }, bucket: ["s3:ListBucket"], clamd: true },
    scaling: { signal: "bullmq-waiting", queue: "intake-scan", scaleOutAt: 20, min: 1, max: 10 },
    cpu: 1024,
    memoryMiB: 2048,
  },
  {
    // Verdicts carried out: copy pending -> verified/ or quarantine/ through a staging copy
    // that lives under quarantine/ (finalize-decision.ts stagingKey: never served), heads of
    // both final keys after a crash (so it reads quarantine/ by design), a stale verified/
    // copy discarded, the pending object deleted. clamd: a stripped image's copy is scanned
    // before it is served (stripped-promotion.ts scanServed).
    name: "finalize",
    access: {
      objects: {
        pending: ["s3:GetObject", "s3:DeleteObject"],
        verified: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        quarantine: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
      },
      bucket: ["s3:ListBucket"],
      clamd: true,
    },
    scaling: { signal: "bullmq-waiting", queue: "intake-finalize", scaleOutAt: 50, min: 1, max: 6 },
    cpu: 512,
    memoryMiB: 1024,
  },
  {
    // Expired pending uploads and abandoned multipart uploads (list, abort, delete under
    // pending/), quarantine retention and the staging copies a killed run left (listed by
    // ListObjectsV2 under quarantine/, deleted; their final objects' presence is listed too:
    // it never reads quarantine/).
    name: "reaper",
    access: {
      objects: { pending: ["s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"], quarantine: ["s3:DeleteObject"] },
      bucket: ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
    },
    scaling: { signal: "fixed", count: 1 },
    cpu: 256,
    memoryMiB: 512,
  },
  {
    // A reviewer's release: the quarantined object scanned again with today's signatures,
    // promoted to verified/ through a staging copy, the quarantine copy deleted. The one
    // worker that reads quarantined bytes.
    name: "recheck",
    access: {
      objects: {
        quarantine: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
        verified: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
      },
      bucket: ["s3:ListBucket"],
      clamd: true,
    },
    scaling: { signal: "bullmq-waiting", queue: "intake-recheck", scaleOutAt: 10, min: 1, max: 2 },
    cpu: 1024,
    memoryMiB: 2048,
  },
  {
    // Verdict webhooks: the database and the network, no storage.
    name: "webhooks",
    access: { objects: {}, bucket: [] },
    scaling: { signal: "bullmq-waiting", queue: "intake-webhooks", scaleOutAt: 200, min: 1, max: 4 },
    cpu: 256,
    memoryMiB: 512,
  },
  {
    // Issue 12 §6 (packages/pipeline/src/rescan.ts): verified uploads cleared by older
    // signatures scanned again; a match moves from verified/ to quarantine/ (read verified,
    // copy to quarantine, delete verified). A retried move reads quarantine/ (HEAD needs
    // GetObject) to see whether the copy is already made.
    name: "rescan",
    access: {
      objects: { verified: ["s3:GetObject", "s3:DeleteObject"], quarantine: ["s3:GetObject", "s3:PutObject"] },
      bucket: ["s3:ListBucket"],
      clamd: true,
    },
    scaling: { signal: "bullmq-waiting", queue: "intake-rescan", scaleOutAt: 100, min: 1, max: 4 },
    cpu: 1024,
    memoryMiB: 2048,
  },
];

export function workerRole(name: string): WorkerRole {
  const role = WORKER_ROLES.find((r) => r.name === name);
  if (!role) throw new Error(`unknown worker role ${name} (known: ${WORKER_ROLES.map((r) => r.name).join(", ")})`);
  return role;
}
