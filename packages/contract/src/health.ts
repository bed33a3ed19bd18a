import * as z from "zod";
import { instant, UploadStatus } from "./fields.ts";

/** The public health routes: /healthz and /readyz (services/api/src/routes/health.ts). */

export const Liveness = z.strictObject({ status: z.literal("ok") });

const check = z.strictObject({ status: z.enum(["up", "down"]), latencyMs: z.number(), error: z.string().optional() });

/** The pipeline's health facts as /readyz shows them (no upload id, tenant or queue URL). */
const pipelineFacts = z
  .strictObject({
    checkedAt: instant(),
    clamd: z.strictObject({ reachable: z.boolean(), engine: z.string().nullable(), versionLine: z.string().nullable(), error: z.string().optional() }),
    signatures: z.strictObject({
      version: z.string().nullable(),
      date: instant().nullable(),
      dateSource: z.enum(["clamd", "test_database_files"]).nullable(),
      ageHours: z.number().nullable(),
      maxAgeHours: z.number(),
      stale: z.boolean().meta({ description: "Older than SIGNATURE_MAX_AGE_HOURS, or of unknown age" }),
      testSignaturesOnly: z.boolean().meta({ description: "Only the generated test database is loaded: no real malware protection" }),
    }),
    sqs: z.strictObject({
      receiveLag: z.strictObject({ lagMs: z.number(), observedAt: instant(), messages: z.int() }).nullable(),
      receiveLagError: z.string().optional(),
      deadLetters: z.strictObject({ depth: z.int(), inFlight: z.int() }).nullable(),
      deadLettersError: z.string().optional(),
    }),
    processing: z.strictObject({
      oldest: z.strictObject({ status: UploadStatus, since: instant(), ageSeconds: z.number(), stuck: z.boolean() }).nullable(),
      stuckAfterSeconds: z.number(),
      error: z.string().optional(),
    }),
    held: z
      .strictObject({ count: z.int(), oldestSince: instant().nullable(), oldestSeconds: z.number() })
      .nullable()
      .meta({ description: "Uploads whose clean result waits for fresh signatures (status held); null when unknown" }),
    heldError: z.string().optional(),
    flags: z.array(z.strictObject({ code: z.string(), severity: z.enum(["critical", "warning"]), message: z.string() })),
  })
  .meta({ description: "The pipeline's health facts. Flagged here, never a reason for 503: only clamd down (in checks) makes the API not ready." });

export const Readiness = z.strictObject({
  status: z.enum(["ready", "not_ready"]),
  checks: z.record(z.string(), check),
  scanner: z.strictObject({ testSignaturesOnly: z.boolean(), warning: z.string().optional() }),
  pipeline: pipelineFacts.optional(),
});
