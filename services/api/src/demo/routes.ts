import { Router } from "@koa/router";
import { cachedDemoAssets, demoPage } from "@intake/demo";
import { requireSameOriginProof } from "../admin/guard.ts";

/**
 * The development demo page (DEMO_PAGE, refused in production by config validation): Uppy's
 * Dashboard bundled from node_modules at first request, and an endpoint that hands the page
 * an upload session for the development tenant. That endpoint gives anyone who reaches the
 * API a session without a key: it exists only while the demo is on.
 */
export interface DemoSessions {
  /** Mints an upload session for the demo's tenant; the token is shown to the page only. */
  mint(): Promise<{ token: string; expiresAt: Date }>;
}

export function createDemoRouter(o: { sessions: DemoSessions; publicUrl?: string }): Router {
  const router = new Router();
  const assets = cachedDemoAssets();
  const html = demoPage();

  router.get("/demo", (ctx) => {
    ctx.type = "text/html; charset=utf-8";
    // The page runs only its own bundled script and style (nothing from a CDN); uploads go to
    // storage (another origin), so connect-src stays open to it.
    ctx.set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; connect-src *; frame-ancestors 'none'");
    ctx.body = html;
  });
  router.get("/demo/assets/demo.js", async (ctx) => {
    ctx.type = "text/javascript; charset=utf-8";
    ctx.set("Cache-Control", "no-cache");
    ctx.body = (await assets()).js;
  });
  router.get("/demo/assets/uppy.css", async (ctx) => {
    ctx.type = "text/css; charset=utf-8";
    ctx.set("Cache-Control", "no-cache");
    ctx.body = (await assets()).css;
  });
  router.post("/demo/session", async (ctx) => {
    // Only the demo page itself: another site a developer visits could otherwise mint
    // sessions on their local API (a simple cross-origin POST needs no preflight).
    requireSameOriginProof(ctx, o.publicUrl);
    const { token, expiresAt } = await o.sessions.mint();
    // Not ctx.origin: in Koa 3 that is the request's Origin header, which the caller writes.
    const base = (o.publicUrl ?? `${ctx.protocol}://${ctx.host}`).replace(/\/+$/, "");
    ctx.set("Cache-Control", "no-store");
    ctx.status = 201;
    // The token twice: in Uppy's endpoint, and for the page's status reads (Authorization: Bearer).
    ctx.body = { token, uppyEndpoint: `${base}/v1/uppy/${token}`, expiresAt: expiresAt.toISOString() };
  });
  return router;
}
