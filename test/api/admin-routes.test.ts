import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Router } from "@koa/router";
import { guardRuleOf, startApi, type GuardRule, type RunningApi } from "@intake/api";
import { ADMIN_ROLES, PERMISSIONS, type AdminRole } from "@intake/domain";
import { createLogger } from "@intake/runtime";
import { signInAs, type AdminClient } from "./admin-session.ts";
import { startApiUnderTest, type ApiUnderTest } from "./harness.ts";

/**
 * THE ROUTE WALK. Every route of the admin router, taken from the running app's router
 * itself (so a route anyone adds later is walked too), plus /metrics and bull-board's
 * /admin/queues with its sub-paths, must refuse:
 *  (a) anonymous requests (401, or a redirect to the sign-in page for a page);
 *  (b) a valid tenant API key (Authorization: Bearer);
 *  (c) a session whose role lacks the route's permission (403 forbidden);
 *  (d) a state-changing request from a session that has the permission, but without the
 *      CSRF token, or with it from another origin (403 csrf_failed).
 * The only routes open to anonymous people are the sign-in routes, named below.
 */
const PUBLIC_ROUTES = new Set(["GET /admin/login", "POST /admin/login", "POST /v1/admin/session", "GET /admin/login/oidc", "GET /admin/oidc/callback"]);
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

interface WalkedRoute {
  method: string;
  pattern: string;
  path: string;
  rule: GuardRule | undefined;
}

type Layer = { path: string | RegExp; methods: string[]; stack: unknown[] };

/** The admin router among the app's middleware: the router whose routes carry guard rules. */
function adminRouterOf(api: RunningApi): Router {
  const routers = api.app.middleware.map((m) => (m as { router?: Router }).router).filter((r): r is Router => Boolean(r));
  const admin = routers.find((r) => (r.stack as unknown as Layer[]).some((l) => l.stack.some((f) => guardRuleOf(f))));
  if (!admin) throw new Error("no admin router in the app");
  return admin;
}

/** A concrete path for a pattern: every parameter, wildcard and optional group filled. */
function concrete(pattern: string): string {
  return pattern
    .replace(/\{\*[A-Za-z0-9_]+\}/g, "api/queues")
    .replace(/\*[A-Za-z0-9_]+/g, "api/queues")
    .replace(/[{}]/g, "")
    .replace(/:([A-Za-z0-9_]+)/g, (_, name: string) => `walk-${name}`);
}

function walk(router: Router): WalkedRoute[] {
  const out: WalkedRoute[] = [];
  for (const layer of router.stack as unknown as Layer[]) {
    const pattern = String(layer.path);
    const rule = layer.stack.map(guardRuleOf).find(Boolean);
    for (const method of layer.methods) if (method !== "HEAD" && method !== "OPTIONS") out.push({ method, pattern, path: concrete(pattern), rule });
  }
  return out;
}

/** Paths that must be refused whatever router serves them (bull-board, metrics). */
const ALWAYS_PROBED: { method: string; path: string; permission: keyof typeof PERMISSIONS }[] = [
  { method: "GET", path: "/metrics", permission: "pipeline.watch" },
  { method: "GET", path: "/admin/queues", permission: "pipeline.watch" },
  { method: "GET", path: "/admin/queues/", permission: "pipeline.watch" },
  { method: "GET", path: "/admin/queues/api/queues", permission: "pipeline.watch" },
  { method: "GET", path: "/admin/queues/static/js/main.js", permission: "pipeline.watch" },
  { method: "GET", path: "/admin/queues/queue/scan", permission: "pipeline.watch" },
  { method: "PUT", path: "/admin/queues/api/queues/scan/retry/failed", permission: "pipeline.operate" },
  { method: "PUT", path: "/admin/queues/api/queues/scan/clean/completed", permission: "pipeline.operate" },
  { method: "DELETE", path: "/admin/queues/api/queues/scan/walk-job", permission: "pipeline.operate" },
];

describe("every admin route refuses anonymous requests, tenant API keys, the wrong role and forged requests", () => {
  let infra: ApiUnderTest;
  let api: RunningApi;
  let routes: WalkedRoute[];
  let apiKey: string;
  const sessions = new Map<AdminRole, AdminClient>();
  beforeAll(async () => {
    infra = await startApiUnderTest({ storage: "fauxqs", database: "sqlite", env: { METRICS_TOKEN: "walk-metrics-token-0123456789" } });
    // A second process on the same configuration, whose Koa app the walk reads its routes from.
    api = await startApi(infra.config, { logger: createLogger({ level: "silent", name: "api-walk" }) });
    routes = walk(adminRouterOf(api));
    apiKey = await infra.newKey("walk");
    for (const role of ADMIN_ROLES) sessions.set(role, await signInAs(infra, role));
  });
  afterAll(async () => {
    await api?.close();
    await infra?.close();
  });

  const send = (method: string, path: string, headers: Record<string, string> = {}, body?: string) =>
    fetch(api.url + path, { method, headers: { accept: "application/json", ...headers }, body: SAFE.has(method) ? undefined : (body ?? "{}"), redirect: "manual" });
  const codeOf = async (res: Response) => ((await res.json().catch(() => ({}))) as { error?: { code?: string } }).error?.code;
  const label = (r: { method: string; path: string }) => `${r.method} ${r.path}`;

  it("finds the admin routes in the router, each behind a guard, under /admin, /v1/admin or /metrics", () => {
    expect(routes.length).toBeGreaterThan(10);
    for (const r of routes) {
      expect(r.rule, `${r.method} ${r.pattern} has no guard (ctx.guard.require / session / optional)`).toBeDefined();
      expect(r.pattern, r.pattern).toMatch(/^\/(admin($|\/)|v1\/admin\/|metrics$)/);
    }
    const open = routes.filter((r) => r.rule?.kind === "public").map((r) => `${r.method} ${r.pattern}`);
    expect(new Set(open), "only the sign-in routes may admit anonymous people").toEqual(PUBLIC_ROUTES);
    // The walk covers what the issue names.
    const patterns = routes.map((r) => r.pattern);
    expect(patterns).toEqual(expect.arrayContaining(["/admin", "/admin/users", "/v1/admin/users", "/v1/admin/tenants", "/v1/admin/api-keys"]));
  });

  it("leaves no admin path to the tenant API's router", () => {
    const tenantRouters = api.app.middleware.map((m) => (m as { router?: Router }).router).filter((r): r is Router => Boolean(r) && r !== adminRouterOf(api));
    for (const r of tenantRouters) for (const l of r.stack as unknown as Layer[]) expect(String(l.path)).not.toMatch(/^\/(admin|v1\/admin|metrics)/);
  });

  it("(a) refuses anonymous requests on every route but the sign-in routes", async () => {
    const targets = [...routes.filter((r) => r.rule?.kind !== "public"), ...ALWAYS_PROBED];
    for (const r of targets) {
      const res = await send(r.method, r.path);
      if (res.status === 303) expect(res.headers.get("location"), label(r)).toMatch(/^\/admin\/login\?next=/);
      else expect(res.status, label(r)).toBe(401);
      await res.body?.cancel();
    }
  });

  it("(b) refuses a valid tenant API key on every route, the sign-in routes included", async () => {
    expect((await fetch(`${infra.url}/v1/uploads?limit=1`, { headers: { authorization: `Bearer ${apiKey}` } })).status).toBe(200);
    for (const r of [...routes, ...ALWAYS_PROBED]) {
      const res = await send(r.method, r.path, { authorization: `Bearer ${apiKey}`, "content-type": "application/json" });
      expect([401, 403], `${label(r)} answered ${res.status}`).toContain(res.status);
      expect(["api_key_not_allowed", "invalid_metrics_token"], label(r)).toContain(await codeOf(res));
    }
    // Even together with an operator's session cookie.
    const op = sessions.get("admin")!;
    const res = await send("GET", "/v1/admin/users", { authorization: `Bearer ${apiKey}`, cookie: op.cookie });
    expect(res.status).toBe(403);
  });

  it("(c) refuses every session whose role lacks the route's permission", async () => {
    const targets = [
      ...routes.filter((r) => r.rule?.kind === "permission").map((r) => ({ ...r, permission: (r.rule as { permission: keyof typeof PERMISSIONS }).permission })),
      ...ALWAYS_PROBED,
    ];
    let checked = 0;
    for (const r of targets) {
      const allowed = PERMISSIONS[r.permission] as readonly AdminRole[];
      for (const role of ADMIN_ROLES.filter((x) => !allowed.includes(x))) {
        const s = sessions.get(role)!;
        const res = await send(r.method, r.path, { cookie: s.cookie, "x-csrf-token": s.csrfToken, "content-type": "application/json" });
        expect(res.status, `${label(r)} as ${role}`).toBe(403);
        expect(await codeOf(res), `${label(r)} as ${role}`).toBe("forbidden");
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(5);
  });

  it("(d) refuses every state-changing request without the CSRF token, or from another origin, even from a permitted session", async () => {
    const targets = [
      ...routes.filter((r): r is WalkedRoute & { rule: GuardRule } => !SAFE.has(r.method) && r.rule !== undefined && r.rule.kind !== "public"),
      ...ALWAYS_PROBED.filter((r) => !SAFE.has(r.method)).map((r) => ({ ...r, rule: { kind: "permission", permission: r.permission } as GuardRule })),
    ];
    expect(targets.length).toBeGreaterThan(3);
    for (const r of targets) {
      const role = r.rule.kind === "permission" ? (PERMISSIONS[r.rule.permission] as readonly AdminRole[])[0]! : "admin";
      const s = sessions.get(role)!;
      const forged: { why: string; headers: Record<string, string>; body?: string }[] = [
        { why: "no token", headers: { cookie: s.cookie, "content-type": "application/json" } },
        { why: "no token (form)", headers: { cookie: s.cookie, "content-type": "application/x-www-form-urlencoded" }, body: "x=1" },
        { why: "wrong token", headers: { cookie: s.cookie, "content-type": "application/json", "x-csrf-token": "W".repeat(32) } },
        { why: "another origin", headers: { cookie: s.cookie, "content-type": "application/json", "x-csrf-token": s.csrfToken, origin: "https://evil.example" } },
        { why: "cross-site", headers: { cookie: s.cookie, "content-type": "application/json", "x-csrf-token": s.csrfToken, "sec-fetch-site": "cross-site" } },
      ];
      for (const f of forged) {
        const res = await send(r.method, r.path, f.headers, f.body);
        expect(res.status, `${label(r)} (${f.why}) as ${role}`).toBe(403);
        expect(await codeOf(res), `${label(r)} (${f.why})`).toBe("csrf_failed");
      }
    }
  });
});
