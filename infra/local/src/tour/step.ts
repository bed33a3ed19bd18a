import { createHash } from "node:crypto";
import type { Upload } from "@intake/client/node";
import type { DevStack } from "./dev-stack.ts";
import { until } from "./evidence.ts";
import type { UndoJournal } from "./undo.ts";

export interface TourContext {
  stack: DevStack;
  undo: UndoJournal;
  signal: AbortSignal;
  /** Unique to this run: in every file's bytes and rule's name, so no earlier run's upload, rule or cached verdict answers for this one. */
  nonce: string;
}

export interface TourStep {
  /** What `npm run tour -- <name>` runs alone. */
  name: string;
  title: string;
  run(ctx: TourContext): Promise<void>;
}

export const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
export const short = (hex: string | null | undefined) => (hex ? `${hex.slice(0, 16)}…` : "none");

/** Polls the upload until its status is one of `statuses` (the long-poll answers only at a verdict). */
export function untilStatus(ctx: TourContext, id: string, statuses: readonly string[], timeoutMs: number): Promise<Upload> {
  let last = "unknown";
  return until(
    `upload ${id} ${statuses.join(" or ")}`,
    async () => {
      const u = await ctx.stack.client.get(id);
      last = u.status;
      return statuses.includes(u.status) ? u : null;
    },
    { timeoutMs, intervalMs: 250, signal: ctx.signal },
  ).catch((err: Error) => {
    throw Object.assign(err, { message: `${err.message} (last status: ${last})` });
  });
}

/** The served bytes, through the download redirect as a browser would follow it. */
export async function download(ctx: TourContext, id: string): Promise<Buffer> {
  const { url } = await ctx.stack.client.downloadUrl(id);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`the presigned download answered ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}
