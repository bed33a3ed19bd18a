import type { ActiveContentReason } from "@intake/domain";

/**
 * What an active-content check found. Active-content reasons may be allowed by policy;
 * "unscannable" (the check could not establish what the object holds) and
 * "invalid_content" (the object is not the format it claims) never are.
 */
export type FindingReason = ActiveContentReason | "unscannable" | "invalid_content";

export interface Finding {
  reason: FindingReason;
  detail: string;
}

/** Keeps the first finding of each reason, in the order they were found. */
export class Findings {
  private readonly byReason = new Map<FindingReason, Finding>();

  add(reason: FindingReason, detail: string): void {
    if (!this.byReason.has(reason)) this.byReason.set(reason, { reason, detail });
  }

  has(reason: FindingReason): boolean {
    return this.byReason.has(reason);
  }

  list(): Finding[] {
    return [...this.byReason.values()];
  }
}
