import { describe, expect, it } from "vitest";
import { identityFromClaims } from "./oidc-claims.ts";

const base = { iss: "https://idp.example", sub: "u1", email: "Ana@Example.com", name: "Ana" };

describe("identityFromClaims", () => {
  it("takes the role from the configured claim and lower-cases the email", () => {
    const v = identityFromClaims({ ...base, intake_role: "compliance" }, { roleClaim: "intake_role" });
    expect(v).toEqual({ ok: true, identity: { issuer: base.iss, subject: "u1", email: "ana@example.com", name: "Ana", role: "compliance", tenantIds: null } });
  });

  it("accepts a list holding exactly one admin role", () => {
    expect(identityFromClaims({ ...base, groups: ["staff", "operator"] }, { roleClaim: "groups" })).toMatchObject({ ok: true, identity: { role: "operator" } });
    expect(identityFromClaims({ ...base, groups: ["admin", "operator"] }, { roleClaim: "groups" })).toMatchObject({ ok: false, code: "role_not_allowed" });
  });

  it.each([[undefined], ["superuser"], ["Admin"], [""], [42], [["staff"]]])("refuses the role claim %j", (role) => {
    expect(identityFromClaims({ ...base, intake_role: role }, { roleClaim: "intake_role" })).toMatchObject({ ok: false, code: "role_not_allowed" });
  });

  it("requires the tenants claim when one is configured, and reads lists, strings and '*'", () => {
    const s = { roleClaim: "r", tenantsClaim: "t" };
    expect(identityFromClaims({ ...base, r: "compliance" }, s)).toMatchObject({ ok: false, code: "tenants_claim_invalid" });
    expect(identityFromClaims({ ...base, r: "compliance", t: ["b", "a", "a"] }, s)).toMatchObject({ ok: true, identity: { tenantIds: ["a", "b"] } });
    expect(identityFromClaims({ ...base, r: "compliance", t: "a, b" }, s)).toMatchObject({ ok: true, identity: { tenantIds: ["a", "b"] } });
    expect(identityFromClaims({ ...base, r: "admin", t: "*" }, s)).toMatchObject({ ok: true, identity: { tenantIds: null } });
    expect(identityFromClaims({ ...base, r: "compliance", t: ["*", "a"] }, s)).toMatchObject({ ok: false });
    expect(identityFromClaims({ ...base, r: "compliance", t: ["../x"] }, s)).toMatchObject({ ok: false });
    expect(identityFromClaims({ ...base, r: "compliance", t: [] }, s)).toMatchObject({ ok: false });
  });

  it("refuses a missing or unverified email", () => {
    expect(identityFromClaims({ iss: base.iss, sub: "u1", r: "admin" }, { roleClaim: "r" })).toMatchObject({ ok: false, code: "email_missing" });
    expect(identityFromClaims({ ...base, r: "admin", email_verified: false }, { roleClaim: "r" })).toMatchObject({ ok: false, code: "email_unverified" });
  });
});
