import { describe, expect, it } from "vitest";
import { Webhook } from "standardwebhooks";
import { generateSecret, secretsInForce, signedHeaders } from "./signing.ts";

const body = JSON.stringify({ type: "upload.verified", data: { id: "u1" } });

describe("signing during a secret rotation", () => {
  const oldSecret = generateSecret();
  const newSecret = generateSecret();
  const until = new Date("2030-01-02T00:00:00Z");
  const rotating = { secret: newSecret, previousSecret: oldSecret, previousSecretExpiresAt: until };

  it("signs with the new and the old secret while the overlap lasts, new first", () => {
    expect(secretsInForce(rotating, new Date(until.getTime() - 1))).toEqual([newSecret, oldSecret]);
  });

  it("signs with the new secret only from the overlap's end on (the boundary included)", () => {
    expect(secretsInForce(rotating, until)).toEqual([newSecret]);
    expect(secretsInForce(rotating, new Date(until.getTime() + 1))).toEqual([newSecret]);
  });

  it("signs with the current secret only when no rotation is under way, or half a record is left", () => {
    expect(secretsInForce({ secret: newSecret, previousSecret: null, previousSecretExpiresAt: null }, new Date())).toEqual([newSecret]);
    expect(secretsInForce({ secret: newSecret, previousSecret: oldSecret, previousSecretExpiresAt: null }, new Date())).toEqual([newSecret]);
    expect(secretsInForce({ secret: newSecret, previousSecret: null, previousSecretExpiresAt: until }, new Date(0))).toEqual([newSecret]);
  });

  it("sends one v1 signature per secret, space-delimited, each verifying with its own secret in the standardwebhooks library", () => {
    const at = new Date();
    const headers = signedHeaders([newSecret, oldSecret], "msg_abc", body, at);
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]{43}= v1,[A-Za-z0-9+/]{43}=$/);
    expect(new Webhook(newSecret).verify(body, headers)).toMatchObject({ type: "upload.verified" });
    expect(new Webhook(oldSecret).verify(body, headers)).toMatchObject({ type: "upload.verified" });
    expect(() => new Webhook(generateSecret()).verify(body, headers)).toThrow(/No matching signature/);
    // Both signatures cover the same bytes: a changed body fails with either secret.
    expect(() => new Webhook(oldSecret).verify(body.replace("verified", "quarantined"), headers)).toThrow(/No matching signature/);
  });

  it("after the overlap the old secret's receiver is refused", () => {
    const at = new Date();
    const headers = signedHeaders(secretsInForce({ ...rotating, previousSecretExpiresAt: new Date(at.getTime() - 1000) }, at), "msg_abc", body, at);
    expect(headers["webhook-signature"].split(" ")).toHaveLength(1);
    expect(() => new Webhook(oldSecret).verify(body, headers)).toThrow(/No matching signature/);
    expect(new Webhook(newSecret).verify(body, headers)).toBeTruthy();
  });

  it("refuses to sign with no secret at all", () => {
    expect(() => signedHeaders([], "msg_abc", body, new Date())).toThrow(/no secret/);
  });
});
