import type { Router } from "@koa/router";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { KoaAdapter } from "@bull-board/koa";
import { Queue } from "bullmq";
import type { Context, Middleware, Next } from "koa";
import { REAPER_QUEUE, RECHECK_QUEUE, RESCAN_QUEUE, STAGES } from "@intake/pipeline";
import { WEBHOOK_QUEUE } from "@intake/webhooks";
import { HttpError } from "../../http/errors.ts";
import type { AdminModuleContext } from "../module.ts";

/** Where bull-board is served; its assets and its JSON API live below it. */
export const QUEUES_PATH = "/admin/queues";

export interface WatchedQueue {
  queue: Queue;
  /** What the queue is for, in the operators' words (bull-board shows it under the name). */
  description: string;
}

/**
 * Every queue an operator watches, under the configured prefix (the names BullMQ keys are
 * made of: `<prefix>:<name>:...`). The stage queues are the API's own producers (one
 * connection); the others are opened on the API's general connection, only to be read and
 * to have jobs retried or removed: their workers live in the worker processes.
 */
export function watchedQueues(ctx: Pick<AdminModuleContext, "queues" | "redis" | "config">): WatchedQueue[] {
  const stages = STAGES.map((stage) => ({ queue: ctx.queues.queue(stage), description: STAGE_DESCRIPTIONS[stage] }));
  const others = [
    { name: REAPER_QUEUE, description: "The reaper's schedule: expired pending uploads, abandoned multipart uploads, stuck uploads re-queued, quarantine retention" },
    { name: RECHECK_QUEUE, description: "Released quarantined uploads, re-scanned with today's signatures before promotion" },
    { name: RESCAN_QUEUE, description: "Verified uploads scanned again after a signature update (its own concurrency; a share of clamd while new uploads wait): /admin/rescans" },
    { name: WEBHOOK_QUEUE, description: "Verdict webhook deliveries (retried with backoff; the delivery log is under Webhooks)" },
  ].map(({ name, description }) => {
    const queue = new Queue(name, { connection: ctx.redis, prefix: ctx.config.redis.prefix });
    queue.on("error", () => undefined); // Redis down shows on the health page and in readiness
    return { queue, description };
  });
  return [...stages, ...others];
}

const STAGE_DESCRIPTIONS: Record<(typeof STAGES)[number], string> = {
  inspect: "Stage 1 of uploads above the one-pass size: real size and magic bytes",
  scan: "ClamAV scan and content checks (small uploads: every check in one pass, then the verdict is carried out)",
  finalize: "Verdicts carried out: copy to verified/ or quarantine/, pending object deleted",
};

/**
 * bull-board's actions an operator may take, by method and path below QUEUES_PATH:
 * retry, remove ("clean") and promote jobs, one or all of a status, and pause or resume a
 * queue. Jobs are triggers and the database is the truth (packages/pipeline stage-queues.ts),
 * so these only change WHEN a stage looks at an upload, never what it decides. Refused:
 * adding jobs, editing a job's data, delay or priority, emptying or obliterating a queue,
 * changing concurrency, rate limits or job schedulers (the reaper's), purging metrics:
 * they change what the pipeline runs or how, which belongs to configuration and code.
 */
const ACTIONS: readonly RegExp[] = [
  /^\/api\/queues\/(?:pause|resume)$/,
  /^\/api\/queues\/[^/]+\/(?:pause|resume|promote)$/,
  /^\/api\/queues\/[^/]+\/(?:retry|clean)\/[a-z-]+$/,
  /^\/api\/queues\/[^/]+\/[^/]+\/(?:retry|clean|promote)$/,
];

export function isAllowedAction(method: string, path: string): boolean {
  return method === "PUT" && ACTIONS.some((a) => a.test(path));
}

/**
 * bull-board's own page loads its scripts and styles from its static/ folder and sets
 * inline styles; it fetches its JSON API from the same origin. Our pages' policy (no
 * scripts at all, views.ts) would blank it, so it gets this one: scripts from us only, no
 * inline script, nothing fetched from anywhere else (the Google Fonts stylesheet it links
 * is blocked on purpose: an admin page should not tell a third party who opens it; the
 * fonts fall back to the system's).
 */
const BOARD_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'self'";

/**
 * Mounts bull-board at QUEUES_PATH behind the guard: reading (the page, its assets, the
 * GETs of its API) needs pipeline.watch; its actions need pipeline.operate and go through
 * isAllowedAction.
 *
 * CSRF: bull-board's UI sends its PUTs without our token (it knows nothing of it), so
 * these routes take the browser's own proof instead (guard csrf "same-origin":
 * Sec-Fetch-Site: same-origin, else an Origin equal to ours; neither is refused). That is
 * enough here because (1) the session cookie is SameSite=Strict, so a cross-site request
 * carries no session at all in any current browser; (2) where it would (an old browser,
 * a sibling subdomain counted as same-site), the request still names its real origin,
 * since a page cannot forge Sec-Fetch-Site or Origin; (3) every action is a PUT with a
 * JSON body, which a cross-origin form cannot send, and which a cross-origin script can
 * only send after a CORS preflight that we never answer for this path; (4) nothing under
 * QUEUES_PATH is served to another origin's scripts (no CORS headers). A non-browser
 * client can set those headers, but then it holds the cookie itself, and CSRF is not the
 * question.
 */
export function mountQueueBoard(router: Router, ctx: AdminModuleContext, queues: readonly WatchedQueue[]): void {
  const adapter = new KoaAdapter();
  adapter.setBasePath(QUEUES_PATH);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q.queue, { description: q.description, allowRetries: true })),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: "Intake queues", hideDocsLink: true, miscLinks: [{ text: "Health", url: "/admin/health" }, { text: "Admin home", url: "/admin" }] } },
  });
  const board = adapter.registerPlugin() as unknown as Middleware;
  const withBoardPolicy: Middleware = async (c: Context, next: Next) => {
    c.set("Content-Security-Policy", BOARD_CSP);
    await board(c, next);
  };
  const onlyAllowedActions: Middleware = async (c: Context, next: Next) => {
    const below = c.path.slice(QUEUES_PATH.length);
    if (!isAllowedAction(c.method, below)) throw new HttpError(403, "action_not_allowed", "this dashboard action is not allowed here: retry, clean, promote, pause and resume are");
    await next();
  };
  const paths = [QUEUES_PATH, `${QUEUES_PATH}/{*rest}`];
  router.get(paths, ctx.guard.require("pipeline.watch", { page: true }), withBoardPolicy);
  router.put(`${QUEUES_PATH}/{*rest}`, ctx.guard.require("pipeline.operate", { csrf: "same-origin" }), onlyAllowedActions, withBoardPolicy);
  // Every other method is refused behind the guard too (an action bull-board has and we
  // do not allow, or one it may add in a release to come).
  for (const method of ["post", "patch", "delete"] as const) router[method](`${QUEUES_PATH}/{*rest}`, ctx.guard.require("pipeline.operate", { csrf: "same-origin" }), onlyAllowedActions);
}
