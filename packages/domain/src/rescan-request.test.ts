import { describe, expect, it } from "vitest";
import { parseRescanRequest } from "./rescan-request.ts";

const now = new Date("2026-12-01T12:00:00Z");
const parse = (input: Record<string, unknown>) => parseRescanRequest(input, { now, windowDays: 30 });
const refusal = (input: Record<string, unknown>) => {
  try {
    parse(input);
  } catch (err) {
    return { code: (err as { code: string }).code, field: (err as { details?: { field?: string } }).details?.field };
  }
  return null;
};

describe("an operator's rescan request", () => {
  it("defaults to every tenant over the window; a day means its start in UTC; to is exclusive", () => {
    expect(parse({})).toEqual({ tenantId: null, verifiedFrom: new Date("2026-11-01T12:00:00Z"), verifiedTo: null });
    expect(parse({ tenantId: "acme", from: "2026-11-20", to: "2026-11-21T06:00:00Z" })).toEqual({ tenantId: "acme", verifiedFrom: new Date("2026-11-20T00:00:00Z"), verifiedTo: new Date("2026-11-21T06:00:00Z") });
  });

  it.each([
    [{ tenantId: "Acme" }, "tenantId"],
    [{ tenantId: "../x" }, "tenantId"],
    [{ tenantId: 7 }, "tenantId"],
    [{ from: "2026-02-31" }, "from"],
    [{ from: "yesterday" }, "from"],
    [{ from: "1764590400000" }, "from"],
    [{ from: "2026-12-02" }, "from"],
    [{ from: "2026-11-20", to: "2026-11-20" }, "to"],
    [{ from: "2026-11-20", to: "2026-11-19" }, "to"],
    [{ to: ["2026-11-19"] }, "to"],
    [{ tenant: "acme" }, "tenant"],
    [{ __proto__: { x: 1 }, from: "2026-11-20" } as Record<string, unknown>, undefined],
  ])("refuses %j (%s)", (input, field) => {
    if (field === undefined) {
      expect(refusal(input)).toBeNull(); // an inherited key is not a field of the request
      return;
    }
    expect(refusal(input)).toEqual({ code: "invalid_rescan", field });
  });
});
