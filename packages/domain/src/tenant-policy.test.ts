import { describe, expect, it } from "vitest";
import { archiveVerdict, canonicalTerms, checkRulesFor, refuseArchiveDeclaration, resolvePolicy, validateTenantPolicy, VERDICT_EVENT_TYPES, type PolicyTerms } from "./index.ts";

const DEPLOYMENT: PolicyTerms = {
  allowedTypes: ["application/pdf", "application/zip", "image/png"],
  maxSize: 1000,
  urlTtlSeconds: 600,
  maxUrlTtlSeconds: 3600,
  quarantineRetentionDays: 90,
  acceptArchives: true,
  stripImageMetadata: false,
  webhookEvents: [...VERDICT_EVENT_TYPES].sort(),
};
const refusal = (raw: unknown) => {
  try {
    validateTenantPolicy(raw, DEPLOYMENT);
  } catch (err) {
    return err as { code: string; message: string; details?: { field?: string } };
  }
  throw new Error(`accepted ${JSON.stringify(raw)}`);
};

describe("a tenant's policy", () => {
  it("keeps to the deployment's bounds, naming the field that leaves them", () => {
    const cases: [unknown, string, RegExp][] = [
      [{ allowedTypes: ["application/x-msdownload"] }, "allowedTypes", /not among the deployment's allowed types/],
      [{ allowedTypes: ["IMAGE/PNG", "text/html"] }, "allowedTypes", /text\/html/],
      [{ allowedTypes: [] }, "allowedTypes", /non-empty/],
      [{ allowedTypes: "image/png" }, "allowedTypes", /list/],
      [{ maxSize: 1001 }, "maxSize", /from 1 to 1000/],
      [{ maxSize: 0 }, "maxSize", /from 1/],
      [{ maxSize: 1.5 }, "maxSize", /integer/],
      [{ maxSize: "100" }, "maxSize", /integer/],
      [{ maxUrlTtlSeconds: 3601 }, "maxUrlTtlSeconds", /to 3600/],
      [{ maxUrlTtlSeconds: 120, urlTtlSeconds: 600 }, "urlTtlSeconds", /from 60 to 120/],
      [{ urlTtlSeconds: 59 }, "urlTtlSeconds", /from 60/],
      [{ quarantineRetentionDays: 0 }, "quarantineRetentionDays", /from 1 to 3650/],
      [{ quarantineRetentionDays: 36500 }, "quarantineRetentionDays", /3650/],
      [{ acceptArchives: "false" }, "acceptArchives", /true or false/],
      [{ stripImageMetadata: 1 }, "stripImageMetadata", /true or false/],
      [{ webhookEvents: ["upload.deleted"] }, "webhookEvents", /not an event/],
    ];
    for (const [raw, field, message] of cases) {
      const err = refusal(raw);
      expect({ raw, code: err.code, field: err.details?.field }).toEqual({ raw, code: "invalid_policy", field });
      expect(err.message).toMatch(new RegExp(`^${field}: `));
      expect(err.message).toMatch(message);
    }
    expect(refusal(JSON.parse('{"__proto__": {"maxSize": 5}}'))).toMatchObject({ code: "unknown_field" });
    expect(refusal({ maxsize: 5 })).toMatchObject({ code: "unknown_field" });
    expect(refusal(["maxSize"])).toMatchObject({ code: "invalid_policy" });
  });

  it("resolves over the defaults and never past the deployment, even when the configuration narrowed since", () => {
    expect(resolvePolicy(DEPLOYMENT, null)).toEqual(DEPLOYMENT);
    const narrowed = { ...DEPLOYMENT, allowedTypes: ["image/png"], maxSize: 500, maxUrlTtlSeconds: 300 };
    const p = resolvePolicy(narrowed, { allowedTypes: ["application/pdf", "image/png"], maxSize: 900, urlTtlSeconds: 900, maxUrlTtlSeconds: 1200 });
    expect(p).toMatchObject({ allowedTypes: ["image/png"], maxSize: 500, urlTtlSeconds: 300, maxUrlTtlSeconds: 300 });
    expect(resolvePolicy(DEPLOYMENT, { acceptArchives: false }).allowedTypes).toEqual(["application/pdf", "image/png"]);
    expect(resolvePolicy(DEPLOYMENT, { webhookEvents: [] }).webhookEvents).toEqual([]);
  });

  it("has one canonical text per set of terms, whatever the order of keys and lists", () => {
    const a = resolvePolicy(DEPLOYMENT, { allowedTypes: ["image/png", "application/pdf"] });
    const b = resolvePolicy(DEPLOYMENT, { allowedTypes: ["application/pdf", "image/png"] });
    const reordered = Object.fromEntries(Object.entries(b).reverse());
    expect(canonicalTerms(reordered)).toBe(canonicalTerms(a));
    expect(canonicalTerms({ ...a, maxSize: 999 })).not.toBe(canonicalTerms(a));
  });

  it("refuses archives as declared and as detected types when the policy refuses them", () => {
    const none = { ...resolvePolicy(DEPLOYMENT, { acceptArchives: false }), version: 3 };
    for (const t of ["application/zip", "application/x-zip-compressed", "APPLICATION/ZIP; charset=x"]) expect(() => refuseArchiveDeclaration(t, none)).toThrow(expect.objectContaining({ code: "content_type_not_allowed", details: expect.objectContaining({ acceptArchives: false, policyVersion: 3 }) }));
    expect(() => refuseArchiveDeclaration("application/pdf", none)).not.toThrow();
    expect(() => refuseArchiveDeclaration("application/zip", { ...none, acceptArchives: true })).not.toThrow();
    expect(archiveVerdict("application/x-7z-compressed", none)).toMatchObject({ reason: "type_not_allowed" });
    expect(archiveVerdict("application/zip", { acceptArchives: true })).toBeNull();
    expect(archiveVerdict("application/vnd.openxmlformats-officedocument.wordprocessingml.document", none)).toBeNull();
  });

  it("judges an upload by its recorded policy, and one recorded before policies by the deployment's", () => {
    const recorded = { ...resolvePolicy(DEPLOYMENT, { maxSize: 10, acceptArchives: false }), version: 1, digest: "d", checksDigest: "c" };
    expect(checkRulesFor({ policy: recorded }, DEPLOYMENT)).toEqual({ allowedTypes: ["application/pdf", "image/png"], maxSize: 10, acceptArchives: false });
    expect(checkRulesFor({ policy: null }, DEPLOYMENT)).toEqual({ allowedTypes: DEPLOYMENT.allowedTypes, maxSize: 1000, acceptArchives: true });
  });
});
