import type { Context } from "koa";
import type { Router } from "@koa/router";
import { QuarantineReview, type Reviewer } from "@intake/db";
import {
  assertActionable,
  checkRetention,
  ConflictError,
  ForbiddenError,
  InvalidRequestError,
  justificationOf,
  needsOverride,
  NotFoundError,
  seesTenant,
  type AdminPrincipal,
  type Permission,
  type Upload,
} from "@intake/domain";
import { RecheckQueue } from "@intake/pipeline";
import { errorResponse } from "../../http/errors.ts";
import { readJsonObject } from "../../http/json-body.ts";
import type { AdminState } from "../guard.ts";
import type { AdminModule, AdminModuleContext } from "../module.ts";
import { isUploadId } from "./filters.ts";

/**
 * The compliance reviewers' actions on a quarantined upload, each with a mandatory
 * justification that goes into the audit trail with the person's id: release (into a
 * recheck with today's signatures), delete permanently, extend retention, and for an upload
 * caught by a malware signature the override two different admins must agree on. The rules
 * are the domain's (quarantine-review.ts), the writes @intake/db's QuarantineReview.
 *
 * Every action has a page form (POST, a hidden CSRF field, answered with a redirect back to
 * the detail page: works without JavaScript) and a JSON twin under /v1/admin. A reviewer
 * limited to some tenants gets 404 for any other tenant's upload, as the read side answers.
 */
const DAY_MS = 86_400_000;

/**
 * What the detail page's redirect says happened (?done=...): codes, never text from the
 * request; the partial (views/quarantine-actions.eta) words them and ignores any other.
 */
export const ACTION_NOTICES = ["released", "deleted", "already_deleted", "retention_extended", "override_requested", "override_approved", "override_rejected", "override_withdrawn"] as const;
export type ActionNotice = (typeof ACTION_NOTICES)[number];

interface ActionResult {
  notice: ActionNotice;
  status: number;
  body: Record<string, unknown>;
}

type Action = (ctx: Context, input: ActionInput) => Promise<ActionResult>;

interface ActionInput {
  admin: AdminPrincipal;
  upload: Upload;
  fields: FieldReader;
}

type FieldReader = (name: string) => unknown;

export const mountQuarantineActions: AdminModule = (router, m) => {
  const review = new QuarantineReview(m.db, m.uploads);
  // On the API's fail-fast producer connection: a release is committed before the job is
  // queued, so Redis being away delays the recheck (the reaper queues it) but loses nothing.
  const rechecks = new RecheckQueue(m.redis, { prefix: m.config.redis.prefix, attempts: m.config.worker.attempts, backoffMs: m.config.worker.backoffMs });
  const retentionDays = m.config.reaper.quarantineRetentionDays;

  const queueRecheck = async (uploadId: string): Promise<"queued" | "live" | "deferred"> => {
    try {
      return await rechecks.requeue(uploadId);
    } catch (err) {
      m.logger.warn({ uploadId, err }, "the recheck could not be queued now; the reaper will queue it");
      return "deferred";
    }
  };

  const reviewer = (admin: AdminPrincipal, fields: FieldReader): Reviewer => ({ id: admin.id, justification: justificationOf(fields("justification")) });

  const release: Action = async (_ctx, { admin, upload, fields }) => {
    const by = reviewer(admin, fields);
    const state = await review.state(upload.id);
    assertActionable(upload, state?.purgedAt ?? null, "released");
    if (needsOverride(upload)) {
      throw new ForbiddenError("override_required", `this upload was caught by the malware signature ${upload.signature ?? "(unnamed)"}: it is never released by one person; an admin requests an override and a second admin approves it`);
    }
    const done = await review.release(upload, by, m.now());
    if (!done.applied) throw notQuarantined(done.upload ?? upload);
    const recheck = await queueRecheck(upload.id);
    return { notice: "released", status: 202, body: { upload: { id: upload.id, status: done.upload.status }, recheck } };
  };

  const remove: Action = async (_ctx, { admin, upload, fields }) => {
    const by = reviewer(admin, fields);
    const state = await review.state(upload.id);
    if (upload.status === "quarantined" && state?.purgedAt) {
      return { notice: "already_deleted", status: 200, body: { upload: { id: upload.id, status: upload.status }, deleted: true, alreadyDeleted: true, purgedAt: state.purgedAt.toISOString() } };
    }
    assertActionable(upload, null, "deleted");
    // Bytes first, then the mark (as the reaper's purge): a failed delete marks nothing, and
    // deleting an object already gone succeeds, so a retried request finishes the job.
    if (upload.finalKey) await m.store.delete(upload.finalKey);
    const marked = await review.markDeleted(upload, by, m.now());
    return { notice: marked ? "deleted" : "already_deleted", status: 200, body: { upload: { id: upload.id, status: upload.status }, deleted: true, alreadyDeleted: !marked } };
  };

  const retention: Action = async (_ctx, { admin, upload, fields }) => {
    const by = reviewer(admin, fields);
    const state = await review.state(upload.id);
    assertActionable(upload, state?.purgedAt ?? null, "kept longer");
    const until = parseRetention(fields("until"));
    const byDefault = (upload.finishedAt?.getTime() ?? m.now().getTime()) + retentionDays * DAY_MS;
    const inForce = new Date(Math.max(byDefault, state?.retentionUntil?.getTime() ?? 0));
    const now = m.now();
    checkRetention(until, inForce, now);
    await review.extendRetention(upload, until, inForce, by, now);
    return { notice: "retention_extended", status: 200, body: { upload: { id: upload.id, status: upload.status }, retentionUntil: until.toISOString(), previous: inForce.toISOString() } };
  };

  const requestOverride: Action = async (_ctx, { admin, upload, fields }) => {
    const by = reviewer(admin, fields);
    const state = await review.state(upload.id);
    assertActionable(upload, state?.purgedAt ?? null, "released");
    if (!needsOverride(upload)) throw new ConflictError("override_not_needed", "this upload was not caught by a malware signature: release it directly, no override is needed");
    const o = await review.requestOverride(upload, by, m.now());
    return { notice: "override_requested", status: 201, body: { override: overrideView(o) } };
  };

  const approve: Action = async (ctx, { admin, upload, fields }) => {
    const by = reviewer(admin, fields);
    const state = await review.state(upload.id);
    assertActionable(upload, state?.purgedAt ?? null, "released");
    const done = await review.approveOverride(ctx.params.oid!, upload, by, m.now());
    const recheck = await queueRecheck(upload.id);
    return { notice: "override_approved", status: 202, body: { upload: { id: upload.id, status: done.upload?.status }, override: overrideView((await review.override(ctx.params.oid!))!), recheck } };
  };

  const reject: Action = async (ctx, { admin, upload, fields }) => {
    const by = reviewer(admin, fields);
    const o = await review.rejectOverride(ctx.params.oid!, upload, by, m.now());
    return { notice: o.status === "withdrawn" ? "override_withdrawn" : "override_rejected", status: 200, body: { override: overrideView(o) } };
  };

  const routes: [string, Permission, Action][] = [
    ["release", "quarantine.act", release],
    ["delete", "quarantine.act", remove],
    ["retention", "quarantine.act", retention],
    ["overrides", "quarantine.override", requestOverride],
    ["overrides/:oid/approve", "quarantine.override", approve],
    ["overrides/:oid/reject", "quarantine.override", reject],
  ];
  for (const [path, permission, action] of routes) {
    router.post(`/admin/quarantine/:id/${path}`, m.guard.require(permission, { page: true }), (ctx) => asPage(ctx, m, action));
    router.post(`/v1/admin/quarantine/:id/${path}`, m.guard.require(permission), (ctx) => asJson(ctx, m, action));
  }

  async function visibleUpload(ctx: Context, admin: AdminPrincipal): Promise<Upload> {
    const id = ctx.params.id!;
    const upload = isUploadId(id) ? await m.uploads.getById(id) : null;
    // Absent and another tenant's answer alike: a limited reviewer learns nothing by probing.
    if (!upload || !seesTenant(admin, upload.tenantId)) throw new NotFoundError("upload", id);
    return upload;
  }

  async function asJson(ctx: Context, mm: AdminModuleContext, action: Action): Promise<void> {
    const admin = (ctx.state as AdminState).admin;
    const upload = await visibleUpload(ctx, admin);
    const body = await readJsonObject(ctx.req, mm.config.http.bodyLimitBytes);
    const result = await action(ctx, { admin, upload, fields: (name) => body[name] });
    ctx.status = result.status;
    ctx.body = result.body;
  }

  async function asPage(ctx: Context, mm: AdminModuleContext, action: Action): Promise<void> {
    const state = ctx.state as AdminState;
    const form = state.form ?? new URLSearchParams();
    try {
      const upload = await visibleUpload(ctx, state.admin);
      const result = await action(ctx, { admin: state.admin, upload, fields: (name) => form.get(name) ?? undefined });
      // 303: the browser follows with a GET, so a reload does not post the form again.
      ctx.status = 303;
      ctx.redirect(`/admin/quarantine/${encodeURIComponent(upload.id)}?done=${result.notice}#actions`);
    } catch (err) {
      const { status, body } = errorResponse(err);
      if (status >= 500) throw err;
      mm.views.render(ctx, "quarantine-action-result", { title: "Action refused", uploadId: isUploadId(ctx.params.id!) ? ctx.params.id : null, status, code: body.error.code, message: body.error.message }, status);
    }
  }
};

function notQuarantined(upload: Pick<Upload, "id" | "status">): ConflictError {
  return new ConflictError("upload_not_quarantined", `only a quarantined upload can be released; this one is ${upload.status}`, { id: upload.id, status: upload.status });
}

/** YYYY-MM-DD (kept through the end of that day, UTC) or an ISO-8601 time with a zone. */
function parseRetention(raw: unknown): Date {
  if (typeof raw !== "string" || raw.trim() === "") throw new InvalidRequestError("retention_required", "until is required: the date to keep the quarantined bytes until (YYYY-MM-DD)");
  const s = raw.trim();
  if (/^\d{4}-\d{2}-\d{2}$/.test(s)) {
    const day = new Date(`${s}T00:00:00.000Z`);
    if (Number.isNaN(day.getTime()) || day.toISOString().slice(0, 10) !== s) throw new InvalidRequestError("invalid_retention", `${s.slice(0, 40)} is not a calendar date`);
    return new Date(day.getTime() + DAY_MS - 1);
  }
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/.test(s)) {
    const at = new Date(s);
    if (!Number.isNaN(at.getTime())) return at;
  }
  throw new InvalidRequestError("invalid_retention", "until must be a date (YYYY-MM-DD) or an ISO-8601 time with a zone");
}

function overrideView(o: { id: string; uploadId: string; status: string; signature: string | null; requestedBy: string; requestJustification: string; requestedAt: Date; decidedBy: string | null; decisionJustification: string | null; decidedAt: Date | null }) {
  return {
    id: o.id,
    uploadId: o.uploadId,
    status: o.status,
    signature: o.signature,
    requestedBy: o.requestedBy,
    requestJustification: o.requestJustification,
    requestedAt: o.requestedAt.toISOString(),
    decidedBy: o.decidedBy,
    decisionJustification: o.decisionJustification,
    decidedAt: o.decidedAt?.toISOString() ?? null,
  };
}
