import { describe, expect, it } from "vitest";
import { validatePartRequests } from "./part-checksums.ts";

const plan = { partSize: 5 * 1024 * 1024, partCount: 3 };
const md5 = "XUFAKrxLKna5cZ2REBfFkg==";
const sha = "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824";

describe("validatePartRequests", () => {
  it("keeps the original partNumbers shape", () => {
    expect(validatePartRequests({ partNumbers: [2, 1] }, plan, 100)).toEqual([{ partNumber: 1 }, { partNumber: 2 }]);
  });

  it("takes per-part checksums, sorted, sha256 lower-cased", () => {
    expect(validatePartRequests({ parts: [{ partNumber: 3, sha256: sha }, { partNumber: 1, md5 }, { partNumber: 2 }] }, plan, 100)).toEqual([
      { partNumber: 1, md5 },
      { partNumber: 2 },
      { partNumber: 3, sha256: sha.toLowerCase() },
    ]);
  });

  it("refuses both shapes at once, and neither", () => {
    expect(() => validatePartRequests({ partNumbers: [1], parts: [{ partNumber: 1 }] }, plan, 100)).toThrow(expect.objectContaining({ code: "invalid_part_numbers" }));
    expect(() => validatePartRequests({}, plan, 100)).toThrow(expect.objectContaining({ code: "invalid_part_numbers" }));
    for (const parts of [[], "1", [1], [null], [[1]]]) expect(() => validatePartRequests({ parts }, plan, 100)).toThrow(expect.objectContaining({ code: "invalid_part_numbers" }));
  });

  it("applies the same limits as partNumbers", () => {
    expect(() => validatePartRequests({ parts: [{ partNumber: 4 }] }, plan, 100)).toThrow(expect.objectContaining({ code: "invalid_part_numbers" }));
    expect(() => validatePartRequests({ parts: [{ partNumber: 1.5 }] }, plan, 100)).toThrow(expect.objectContaining({ code: "invalid_part_numbers" }));
    expect(() => validatePartRequests({ parts: [{ partNumber: 1 }, { partNumber: 1, md5 }] }, plan, 100)).toThrow(expect.objectContaining({ code: "duplicate_part_number" }));
    expect(() => validatePartRequests({ parts: [{ partNumber: 1 }, { partNumber: 2 }] }, plan, 1)).toThrow(expect.objectContaining({ code: "too_many_part_numbers" }));
  });

  it("refuses malformed checksums and unknown fields", () => {
    for (const bad of [{ md5: "nope" }, { md5: Buffer.alloc(16).toString("hex") }, { sha256: "abc" }, { sha256: Buffer.alloc(32).toString("base64") }, { md5: 5 }]) {
      expect(() => validatePartRequests({ parts: [{ partNumber: 1, ...bad }] }, plan, 100)).toThrow(expect.objectContaining({ code: "invalid_checksum", details: { partNumber: 1 } }));
    }
    expect(() => validatePartRequests({ parts: [{ partNumber: 1, crc32: "AAAAAA==" }] }, plan, 100)).toThrow(expect.objectContaining({ code: "unknown_field" }));
  });
});
