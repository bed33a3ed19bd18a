import { describe, expect, it } from "vitest";
import { cacheAuthentications, type ApiKeyAuthenticator, type Caller } from "./auth.ts";

describe("authentication cache", () => {
  function counting(valid: Map<string, Caller>) {
    const calls: string[] = [];
    const keys: ApiKeyAuthenticator = {
      authenticate: async (k) => {
        calls.push(k);
        return valid.get(k) ?? null;
      },
    };
    return { keys, calls };
  }

  it("reuses a success for its TTL, then asks again (so a revocation takes effect)", async () => {
    let clock = 0;
    const valid = new Map([["good", { tenantId: "acme", keyId: "k1" }]]);
    const { keys, calls } = counting(valid);
    const cached = cacheAuthentications(keys, { ttlMs: 1000, now: () => clock });
    expect(await cached.authenticate("good")).toEqual({ tenantId: "acme", keyId: "k1" });
    expect(await cached.authenticate("good")).toEqual({ tenantId: "acme", keyId: "k1" });
    expect(calls).toEqual(["good"]);
    valid.delete("good"); // revoked
    clock = 1001;
    expect(await cached.authenticate("good")).toBeNull();
  });

  it("never caches a failure, so a key created a moment later works at once", async () => {
    const valid = new Map<string, Caller>();
    const { keys, calls } = counting(valid);
    const cached = cacheAuthentications(keys, { ttlMs: 60_000 });
    expect(await cached.authenticate("new")).toBeNull();
    valid.set("new", { tenantId: "acme", keyId: "k2" });
    expect(await cached.authenticate("new")).toEqual({ tenantId: "acme", keyId: "k2" });
    expect(calls).toEqual(["new", "new"]);
  });

  it("stays bounded, dropping the oldest entry", async () => {
    const valid = new Map(["a", "b", "c"].map((k) => [k, { tenantId: k, keyId: k }]));
    const { keys, calls } = counting(valid);
    const cached = cacheAuthentications(keys, { ttlMs: 60_000, maxEntries: 2 });
    for (const k of ["a", "b", "c", "b", "a"]) await cached.authenticate(k);
    expect(calls).toEqual(["a", "b", "c", "a"]);
  });
});
