import { describe, expect, it } from "vitest";
import { validatePartNumbers } from "./multipart.ts";

const plan = { partSize: 5 * 1024 * 1024, partCount: 2000 };

describe("part numbers of one request", () => {
  it("accepts distinct in-range numbers up to the cap, sorted", () => {
    expect(validatePartNumbers([3, 1, 2], plan, 100)).toEqual([1, 2, 3]);
    expect(validatePartNumbers(Array.from({ length: 100 }, (_, i) => i + 1), plan, 100)).toHaveLength(100);
  });

  it("refuses one more than the cap, and 1,000 at once", () => {
    expect(() => validatePartNumbers(Array.from({ length: 101 }, (_, i) => i + 1), plan, 100)).toThrow(expect.objectContaining({ code: "too_many_part_numbers", details: { maxPerRequest: 100, requested: 101 } }));
    expect(() => validatePartNumbers(Array.from({ length: 1000 }, (_, i) => i + 1), plan, 100)).toThrow(expect.objectContaining({ code: "too_many_part_numbers" }));
  });

  it("refuses a repeated part number instead of dropping it", () => {
    expect(() => validatePartNumbers([1, 2, 1], plan, 100)).toThrow(expect.objectContaining({ code: "duplicate_part_number", details: { partNumber: 1 } }));
  });

  it.each([[0], [-1], [2001], [1.5], ["1"], [null], [Number.NaN]])("refuses part number %j", (n) => {
    expect(() => validatePartNumbers([n], plan, 100)).toThrow(expect.objectContaining({ code: "invalid_part_numbers" }));
  });

  it("refuses an empty list or not a list", () => {
    for (const raw of [[], undefined, "1,2", { 0: 1 }]) expect(() => validatePartNumbers(raw, plan, 100)).toThrow(expect.objectContaining({ code: "invalid_part_numbers" }));
  });
});
