import Koa, { type Context, type Next } from "koa";
import { Router } from "@koa/router";
import { MIN_PART_SIZE, NotFoundError } from "@intake/domain";
import type { Config, Logger } from "@intake/runtime";
import type { ObjectStore } from "@intake/storage";
import { requireApiKey, type ApiKeyAuthenticator } from "./http/auth.ts";
import { cors } from "./http/cors.ts";
import { errorMiddleware, HttpError } from "./http/errors.ts";
import type { RateLimits } from "./http/rate-limits.ts";
import { requestLog } from "./http/request-log.ts";
import { openApiDocument } from "./openapi.ts";
import { mountHealthRoutes, type Readiness } from "./routes/health.ts";
import { mountUploadRoutes } from "./routes/uploads.ts";
import { createUppyRouter } from "./routes/uppy.ts";
import { createDemoRouter } from "./demo/routes.ts";
import { DEV_TENANT } from "./dev-key.ts";
import { mountSessionRoutes } from "./sessions/session-routes.ts";
import { DEFAULT_SESSION_POLICY, UploadSessions, type SessionStore } from "./sessions/upload-sessions.ts";
import { UploadService, type Processing, type UploadMetrics, type UploadRecords } from "./upload-service.ts";
import { createAdminRouter, type AdminModuleContext } from "./admin/index.ts";
import { deploymentPolicies, deploymentTerms, type PoliciesInForce } from "./policies/tenant-policies.ts";
import { adminPageErrors } from "./admin/views.ts";

/**
 * Everything the HTTP application needs, passed in: no environment reads, no module
 * singletons. server.ts wires the real adapters; tests may wire the same ones against
 * throwaway databases and buckets.
 */
export interface ApiDeps {
  config: Config;
  logger: Logger;
  uploads: UploadRecords;
  apiKeys: ApiKeyAuthenticator;
  /** Upload sessions (browser tokens, @intake/db UploadSessionRepository); absent: none are minted or accepted. */
  uploadSessions?: SessionStore;
  /** Request budgets and failed-authentication limits, shared by every API process. */
  rateLimits: RateLimits;
  store: ObjectStore;
  processing: Processing;
  readiness: Readiness;
  /** The admin surfaces (operators, compliance, admins); absent, none are served. */
  admin?: AdminModuleContext;
  /** Each tenant's policy in force (policies/tenant-policies.ts); absent: every tenant on the deployment's terms. */
  policies?: PoliciesInForce;
  /** Where the upload service reports uploads created (@intake/metrics); absent: nowhere. */
  metrics?: UploadMetrics;
  now?: () => Date;
}

export function createRouter(deps: ApiDeps): Router {
  const { config } = deps;
  const serviceOptions = {
    uploads: deps.uploads,
    store: deps.store,
    processing: deps.processing,
    policy: config.policy,
    policies: deps.policies ?? deploymentPolicies(deploymentTerms(config)),
    multipartWindowSeconds: config.reaper.multipartTtlSeconds,
    maxPartsPerRequest: config.limits.maxPartsPerRequest,
    quotas: config.quotas,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    ...(deps.now ? { now: deps.now } : {}),
  };
  const service = new UploadService(serviceOptions);
  // The one place session tokens are proven and scoped: the Bearer path and the Uppy routes call it alike.
  const sessions = deps.uploadSessions
    ? new UploadSessions({ store: deps.uploadSessions, uploads: service, policy: DEFAULT_SESSION_POLICY, ...(deps.now ? { now: deps.now } : {}) })
    : undefined;
  const openapi = JSON.stringify(
    openApiDocument({
      allowedTypes: config.policy.allowedTypes,
      maxSize: config.policy.maxSize,
      multipartThreshold: config.policy.multipartThreshold,
      bodyLimitBytes: config.http.bodyLimitBytes,
      maxPartsPerRequest: config.limits.maxPartsPerRequest,
      ...(config.http.publicUrl ? { publicUrl: config.http.publicUrl } : {}),
    }),
  );

  const router = new Router();
  mountHealthRoutes(router, deps.readiness);
  router.get("/openapi.json", (ctx) => {
    ctx.type = "application/json";
    ctx.body = openapi;
  });
  // The Uppy routes prove the session token in their path, so they come before the API key's check.
  const authenticate = requireApiKey({ keys: deps.apiKeys, ...(sessions ? { sessions } : {}), limits: deps.rateLimits, logger: deps.logger });
  if (deps.uploadSessions) {
    // Uppy 6 cuts files into parts of 5 MiB (S3's minimum) and every part URL is bound to its
    // length, so uploads made through the Uppy routes are planned in parts of that size.
    const uppyService = new UploadService({ ...serviceOptions, policy: { ...config.policy, partSize: MIN_PART_SIZE } });
    const uppySessions = new UploadSessions({ store: deps.uploadSessions, uploads: uppyService, policy: DEFAULT_SESSION_POLICY, ...(deps.now ? { now: deps.now } : {}) });
    router.use(createUppyRouter({ sessions: uppySessions, authenticate, bodyLimitBytes: config.http.bodyLimitBytes }).routes());
  }
  if (sessions && config.demoPage) {
    const mint = async () => sessions.mint(DEV_TENANT, { expiresIn: 3600, maxFiles: 100 });
    router.use(createDemoRouter({ sessions: { mint }, ...(config.http.publicUrl ? { publicUrl: config.http.publicUrl } : {}) }).routes());
  }
  // Authentication before any body is read or URL signed.
  router.use("/v1", authenticate);
  // Before the upload routes: a session caller is answered there, others fall through.
  if (sessions) mountSessionRoutes(router, sessions, config.http.bodyLimitBytes);
  mountUploadRoutes(router, service, config.http.bodyLimitBytes);
  return router;
}

export function createApp(deps: ApiDeps): Koa {
  const app = new Koa();
  // Errors are answered and logged by errorMiddleware; Koa's own stderr printing would
  // duplicate them outside the logger (and outside its redaction).
  app.silent = true;
  // Behind N trusted proxies the client is the Nth address from the right of
  // X-Forwarded-For; anything further left was written by the client and is ignored.
  if (deps.config.limits.trustedProxyHops > 0) {
    app.proxy = true;
    app.maxIpsCount = deps.config.limits.trustedProxyHops;
  }
  const router = createRouter(deps);
  app.use(requestLog(deps.logger));
  app.use(errorMiddleware(deps.logger));
  app.use(securityHeaders);
  app.use(cors(deps.config.http.corsOrigins));
  app.use(unmatchedAsErrors);
  if (deps.admin) {
    app.use(adminPageErrors(deps.admin.views, deps.logger));
    const admin = createAdminRouter(deps.admin);
    app.use(admin.routes());
    app.use(admin.allowedMethods());
  }
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

async function securityHeaders(ctx: Context, next: Next): Promise<void> {
  // JSON only: nothing here is meant to be sniffed or framed.
  ctx.set("X-Content-Type-Options", "nosniff");
  ctx.set("X-Frame-Options", "DENY");
  await next();
}

/** The router leaves unknown paths as a bare 404 and wrong methods as a bare 405: give them our error body. */
async function unmatchedAsErrors(ctx: Context, next: Next): Promise<void> {
  await next();
  if (ctx.body !== undefined && ctx.body !== null) return;
  if (ctx.status === 404) throw new NotFoundError("route", `${ctx.method} ${ctx.path.slice(0, 200)}`);
  if (ctx.status === 405) {
    const allowed = ctx.response.get("Allow").split(/,\s*/).filter(Boolean);
    throw new HttpError(405, "method_not_allowed", `${ctx.method} is not allowed here`, { allowed });
  }
}
