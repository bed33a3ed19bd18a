import { describe, expect, it } from "vitest";
import type { AdminPrincipal } from "@intake/domain";
import { decodeCursor, encodeCursor, parseReviewQuery, utcDay } from "./filters.ts";

const everyone: AdminPrincipal = { id: "a", email: "a@x", name: "A", role: "compliance", tenantIds: null };
const limited: AdminPrincipal = { ...everyone, tenantIds: ["alpha"] };
const parse = (q: string, p = everyone) => parseReviewQuery(new URLSearchParams(q), p);

describe("parseReviewQuery", () => {
  it("reads the filters, empty fields as absent, dates as whole UTC days", () => {
    const q = parse("tenant=alpha&reason=malware&signature=%20eicar%20&from=2026-11-02&to=2026-11-03&cursor=");
    expect(q.filter).toEqual({ scope: null, tenantId: "alpha", reason: "malware", signature: "eicar", finishedFrom: new Date("2026-11-02T00:00:00.000Z"), finishedBefore: new Date("2026-11-04T00:00:00.000Z") });
    expect(parse("tenant=&reason=&signature=&from=&to=").filter).toEqual({ scope: null });
  });

  it("keeps the reader's scope in the filter, also when the tenant asked for is outside it", () => {
    expect(parse("tenant=beta", limited).filter).toEqual({ scope: ["alpha"], tenantId: "beta" });
  });

  it.each([
    ["reason=virus", "reason"],
    ["from=2026-02-30", "from"],
    ["to=yesterday", "to"],
    ["from=2026-11-05&to=2026-11-04", "to"],
    ["tenant=a%20b", "tenant"],
    [`signature=${"x".repeat(201)}`, "signature"],
  ])("refuses %s (field %s)", (q, field) => expect(() => parse(q)).toThrow(expect.objectContaining({ code: "invalid_filter", details: { field } })));

  it("round-trips its cursor and refuses any other", () => {
    const c = { finishedAt: 1_700_000_000_000, id: "up_1" };
    expect(decodeCursor(encodeCursor(c))).toEqual(c);
    for (const bad of ["x", Buffer.from('[1.5,"a"]').toString("base64url"), Buffer.from('[1,"a b"]').toString("base64url"), Buffer.from("{}").toString("base64url")]) {
      expect(() => decodeCursor(bad)).toThrow(expect.objectContaining({ code: "invalid_cursor" }));
    }
  });

  it("utcDay is midnight UTC", () => expect(utcDay("2026-12-01", "from").toISOString()).toBe("2026-12-01T00:00:00.000Z"));
});
