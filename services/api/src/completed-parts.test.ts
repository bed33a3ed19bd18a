import { describe, expect, it } from "vitest";
import { validateCompletedParts } from "./upload-service.ts";

describe("the parts of a complete request", () => {
  it("sorts parts given out of order and refuses a part listed twice", () => {
    expect(validateCompletedParts([{ partNumber: 2, etag: '"b"' }, { partNumber: 1, etag: '"a"' }], 2)).toEqual([{ partNumber: 1, eTag: '"a"' }, { partNumber: 2, eTag: '"b"' }]);
    expect(() => validateCompletedParts([{ partNumber: 1, etag: '"a"' }, { partNumber: 1, etag: '"b"' }, { partNumber: 2, etag: '"c"' }], 2)).toThrow(/listed twice/);
  });

  it.each(["1", 1.5, -1, 0, 3, 10_001])("refuses part number %j", (partNumber) => {
    expect(() => validateCompletedParts([{ partNumber, etag: '"a"' }], 2)).toThrow(/partNumber must be an integer from 1 to 2/);
  });

  it("names an unknown field without echoing its bidi or line-separator characters", () => {
    let message = "";
    try {
      validateCompletedParts([{ partNumber: 1, etag: '"a"', ["x\u202Ey\u2028"]: 1 }], 1);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^unknown field "x\\u202ey\\u2028" in parts\[\]$/);
  });
});
