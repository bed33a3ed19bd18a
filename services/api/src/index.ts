export { createApp, createRouter, type ApiDeps } from "./app.ts";
export { startApi, type RunningApi } from "./server.ts";
export { UploadService, type Processing } from "./upload-service.ts";
export { openApiDocument } from "./openapi.ts";
export { ensureDevKey } from "./dev-key.ts";
export { createRedisRateLimits, type RateLimitSettings } from "./http/redis-rate-limits.ts";
export type { RateLimits, Requester } from "./http/rate-limits.ts";
export { guardRuleOf, type GuardRule } from "./admin/guard.ts";
