import type { Router } from "@koa/router";
import type { Knex } from "knex";
import type { RedisConnection } from "@intake/pipeline";
import type { AdminSessionRepository, AdminUserRepository, AuditLog, UploadRepository } from "@intake/db";
import type { PipelineHealth, StageQueues } from "@intake/pipeline";
import type { Config, Logger } from "@intake/runtime";
import type { Scanner } from "@intake/pipeline";
import type { ObjectStore } from "@intake/storage";
import type { IntakeMetrics } from "@intake/metrics";
import type { AdminGuard } from "./guard.ts";
import type { TenantPolicies } from "../policies/tenant-policies.ts";
import type { Views } from "./views.ts";

/**
 * What every admin area (sign-in, operators' view, metrics, quarantine review, webhook
 * endpoints) is given: the shared adapters of the API process and the guard every route
 * goes through. An area is a function that mounts its routes on the admin router.
 */
export interface AdminModuleContext {
  config: Config;
  logger: Logger;
  db: Knex;
  guard: AdminGuard;
  views: Views;
  users: AdminUserRepository;
  sessions: AdminSessionRepository;
  audit: AuditLog;
  uploads: UploadRepository;
  store: ObjectStore;
  /** A general-purpose connection (not the rate limits' fail-fast one). */
  redis: RedisConnection;
  queues: StageQueues;
  /** clamd, as the API reaches it (readiness, the health page). */
  scanner: Pick<Scanner, "version">;
  /** The pipeline's health facts, as /readyz shows them (@intake/pipeline health.ts). */
  health: PipelineHealth;
  /** Tenants' policies, shared with the create path (its cache); absent: the policy area builds its own. */
  policies?: TenantPolicies;
  /** The process's metrics registry (served at /metrics); absent: the metrics area builds one. */
  metrics?: IntakeMetrics;
  now: () => Date;
}

export type AdminModule = (router: Router, ctx: AdminModuleContext) => void;
