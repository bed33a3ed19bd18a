import { describe, expect, it } from "vitest";
import { checkTextContent, JSON_LIMIT, TextContentCheck } from "./text-content.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

describe("text content checks", () => {
  it("accepts plain UTF-8 text and CSV", () => {
    expect(checkTextContent("text/plain", utf8("héllo wörld\n"))).toBeNull();
    expect(checkTextContent("text/csv", utf8("a,b\n1,2\n"))).toBeNull();
  });
  it("refuses invalid UTF-8", () => expect(checkTextContent("text/plain", Uint8Array.from([0x61, 0xff, 0x62]))).toMatch(/invalid UTF-8/));
  it("refuses a NUL byte", () => expect(checkTextContent("text/csv", utf8("a,b\0\n"))).toBe("NUL byte at offset 3: not a text file"));
  it("refuses a multi-byte sequence cut at the end", () => expect(checkTextContent("text/plain", Uint8Array.from([0x61, 0xc3]))).toMatch(/ends inside a multi-byte/));
  it("accepts a multi-byte character split across chunks", () => {
    const bytes = utf8("é");
    const check = new TextContentCheck("text/plain");
    check.push(bytes.subarray(0, 1));
    check.push(bytes.subarray(1));
    expect(check.finish()).toBeNull();
  });
  it("parses JSON", () => {
    expect(checkTextContent("application/json", utf8('{"a":[1,2]}'))).toBeNull();
    expect(checkTextContent("application/json", utf8('{"a":'))).toMatch(/^not valid JSON/);
  });
  it("refuses JSON beyond what can be parsed in memory", () => {
    const check = new TextContentCheck("application/json");
    check.push(new Uint8Array(JSON_LIMIT + 1).fill(0x20));
    expect(check.finish()).toMatch(/cannot be validated/);
  });
  it("accepts a plain SVG", () => expect(checkTextContent("image/svg+xml", utf8('<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>'))).toBeNull());
  // The SVG check itself (allowlist, attacks, limits) is tested in svg-content.test.ts.
  const SVG = '<svg xmlns="http://www.w3.org/2000/svg">';
  it.each([
    [`${SVG}<script>alert(1)</script></svg>`, /^SVG element <script> at line 1, column \d+ is not on the allowlist/],
    [`${SVG}<rect onload="alert(1)"/></svg>`, /^SVG event-handler attribute onload on <rect>/],
    [`${SVG}<a href="javascript:alert(1)">x</a></svg>`, /^SVG attribute href on <a> .*: a javascript: URL/],
    [`${SVG}<foreignObject><body/></foreignObject></svg>`, /^SVG element <foreignObject> .* not on the allowlist/],
    ['<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg/>', /^SVG with a DOCTYPE declaration at line 1/],
  ])("refuses active SVG content: %s", (svg, detail) => expect(checkTextContent("image/svg+xml", utf8(svg))).toMatch(detail));
  it("finds a <script> split across two chunks", () => {
    const check = new TextContentCheck("image/svg+xml");
    check.push(utf8(`${SVG}<scr`));
    check.push(utf8("ipt>alert(1)</script></svg>"));
    expect(check.finish()).toMatch(/^SVG element <script> at line 1/);
  });
  it("refuses an SVG declaration without an <svg> root", () => expect(checkTextContent("image/svg+xml", utf8("<html><body>hi</body></html>"))).toMatch(/no <svg> root/));
});
