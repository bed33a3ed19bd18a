import { describe, expect, it } from "vitest";
import * as z from "zod";
import { checkShape } from "./request-shape.ts";

describe("checkShape's error codes", () => {
  it("takes a field's code from the table's own entries only, never from Object.prototype", () => {
    // A record at the top (keys chosen by the client): a key named like a prototype member.
    const schema = z.record(z.string(), z.string({ error: "values must be strings" }));
    for (const key of ["constructor", "toString", "__defineGetter__", "hasOwnProperty"]) {
      let caught: unknown;
      try {
        checkShape(schema, JSON.parse(`{${JSON.stringify(key)}:1}`), { other: "invalid_other" });
      } catch (err) {
        caught = err;
      }
      expect(caught, key).toMatchObject({ code: "invalid_request", message: "values must be strings" });
    }
  });
});
