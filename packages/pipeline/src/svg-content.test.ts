import { describe, expect, it } from "vitest";
import { SVG_LIMITS, SvgContentCheck, type SvgLimits } from "./svg-content.ts";
import { ATTACKS, CLEAN, INKSCAPE, SVG_OPEN, svg } from "./svg-content.fixtures.ts";
import { checkTextContent, TextContentCheck } from "./text-content.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

/** The bytes as the scan stage would feed them, in chunks of `size` bytes. */
function checkInChunks(text: string | Uint8Array, size: number): string | null {
  const bytes = typeof text === "string" ? utf8(text) : text;
  const check = new TextContentCheck("image/svg+xml");
  for (let i = 0; i < bytes.length; i += size) check.push(bytes.subarray(i, i + size));
  return check.finish();
}

/** With other limits, fed in chunks of 100 characters (the token cap is checked between chunks). */
function checkWith(limits: Partial<SvgLimits>, text: string): string | null {
  const check = new SvgContentCheck({ ...SVG_LIMITS, ...limits });
  for (let i = 0; i < text.length; i += 100) check.push(text.slice(i, i + 100));
  return check.finish();
}

describe("SVG content check: attacks are refused", () => {
  it.each(ATTACKS.map((a) => [a.name, a] as const))("%s", (_name, attack) => {
    expect(checkTextContent("image/svg+xml", utf8(attack.svg))).toMatch(attack.detail);
  });
  it.each(ATTACKS.map((a) => [a.name, a] as const))("%s, fed one byte at a time", (_name, attack) => {
    expect(checkInChunks(attack.svg, 1)).toMatch(attack.detail);
  });
  it("lists every attack issue 8 names", () => {
    const names = ATTACKS.filter((a) => a.issue).map((a) => a.name);
    for (const wanted of [/<s:script>/, /XHTML <h:script>/, /javascript&#58; in xlink:href/, /javascript&#58; in href/, /&#x6A;avascript: in xlink:href/, /&#x6A;avascript: in href/, /<animate/, /iframe with srcdoc inside/, /external DTD/, /xi:include/]) {
      expect(names.some((n) => wanted.test(n)), String(wanted)).toBe(true);
    }
  });
  it("finds <s:script> however the bytes are split into two chunks", () => {
    const bytes = utf8(ATTACKS[0]!.svg);
    for (let at = 1; at < bytes.length; at++) {
      const check = new TextContentCheck("image/svg+xml");
      check.push(bytes.subarray(0, at));
      check.push(bytes.subarray(at));
      expect(check.finish(), `split at ${at}`).toMatch(ATTACKS[0]!.detail);
    }
  });
});

describe("SVG content check: real files pass", () => {
  it.each(CLEAN)("%s", (_name, text) => expect(checkTextContent("image/svg+xml", utf8(text))).toBeNull());
  it.each(CLEAN)("%s, fed one byte at a time", (_name, text) => expect(checkInChunks(text, 1)).toBeNull());
  it("accepts the Inkscape file however it is split into two chunks", () => {
    const bytes = utf8(INKSCAPE);
    for (let at = 1; at < bytes.length; at += 7) {
      const check = new TextContentCheck("image/svg+xml");
      check.push(bytes.subarray(0, at));
      check.push(bytes.subarray(at));
      expect(check.finish(), `split at ${at}`).toBeNull();
    }
  });
  it("accepts editors' attributes on SVG elements (inert) but not an unknown namespace's", () => {
    const ns = 'xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" xmlns:x="urn:example:x"';
    expect(checkTextContent("image/svg+xml", utf8(svg(`<g ${ns} inkscape:label="Layer 1"><rect width="1" height="1"/></g>`)))).toBeNull();
    expect(checkTextContent("image/svg+xml", utf8(svg(`<g ${ns} x:label="Layer 1"/>`)))).toMatch(/attribute x:label on <g> .* foreign namespace urn:example:x/);
  });
  it("accepts a fragment href and a base64 raster data: URI on <image>, but a data: URI only there", () => {
    const png = "data:image/png;base64,iVBORw0KGgo=";
    expect(checkTextContent("image/svg+xml", utf8(svg(`<image href="${png}" width="1" height="1"/><image xlink:href="#i" width="1" height="1"/>`)))).toBeNull();
    expect(checkTextContent("image/svg+xml", utf8(svg(`<use href="${png}"/>`)))).toMatch(/href on <use> .* external reference/);
  });
});

describe("SVG content check: bytes and limits", () => {
  it("refuses UTF-16 (a byte order mark that is not UTF-8)", () => {
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(svg(""), "utf16le")]);
    expect(checkInChunks(utf16, 4096)).toMatch(/^NUL byte at offset 3:/);
  });
  it("refuses Latin-1 bytes and a NUL byte", () => {
    expect(checkInChunks(Buffer.concat([utf8(`${SVG_OPEN}<text>caf`), Buffer.from([0xe9]), utf8("</text></svg>")]), 4096)).toMatch(/invalid UTF-8/);
    expect(checkInChunks(utf8(svg("<text>a\0b</text>")), 4096)).toMatch(/^NUL byte at offset \d+/);
  });
  it("refuses an SVG cut short", () => expect(checkInChunks(SVG_OPEN, 4096)).toMatch(/not well-formed XML/));

  const nested = (depth: number) => `${SVG_OPEN}${"<g>".repeat(depth - 1)}${"</g>".repeat(depth - 1)}</svg>`;
  it("caps element depth: at the limit passes, one more is refused", () => {
    expect(checkWith({ maxDepth: 5 }, nested(5))).toBeNull();
    expect(checkWith({ maxDepth: 5 }, nested(6))).toMatch(/nested deeper than 5 elements at line 1/);
    expect(checkInChunks(nested(SVG_LIMITS.maxDepth + 1), 1024)).toMatch(new RegExp(`nested deeper than ${SVG_LIMITS.maxDepth}`));
  });
  it("caps attributes per element: at the limit passes, one more is refused", () => {
    const rect = (n: number) => svg(`<rect ${Array.from({ length: n }, (_, i) => `data-a${i}="${i}"`).join(" ")}/>`);
    expect(checkWith({ maxAttributes: 4 }, rect(4))).toBeNull();
    expect(checkWith({ maxAttributes: 4 }, rect(5))).toMatch(/more than 4 attributes/);
  });
  it.each([
    ["a text run", (n: number) => svg(`<text>${"a".repeat(n)}</text>`)],
    ["an attribute value", (n: number) => svg(`<path d="M0 0${" 1".repeat(n / 2)}"/>`)],
    ["an open tag whose attributes are each under the cap", (n: number) => svg(`<rect data-a="${"a".repeat(n / 2)}" data-b="${"b".repeat(n / 2)}"/>`)],
    ["a comment", (n: number) => svg(`<!--${"a".repeat(n)}-->`)],
    ["a CDATA section", (n: number) => svg(`<text><![CDATA[${"a".repeat(n)}]]></text>`)],
    ["a DOCTYPE", (n: number) => svg("", `<!DOCTYPE svg [<!-- ${"a".repeat(n)} -->]>`)],
  ])("caps the length of %s saxes must buffer", (_what, make) => {
    // Under the cap the file gets its ordinary verdict (clean, or refused for its DOCTYPE).
    expect(checkWith({ maxTokenChars: 1000 }, make(900)) ?? "clean").not.toMatch(/longer than/);
    expect(checkWith({ maxTokenChars: 1000 }, make(1100))).toMatch(/longer than 1000 characters/);
  });
  it("refuses a text run over the real limit while it streams, before the end of the file", () => {
    const check = new SvgContentCheck();
    check.push(`${SVG_OPEN}<text>`);
    const mib = "a".repeat(1024 * 1024);
    let pushed = 0;
    while (check.finding === null && pushed < 64) {
      check.push(mib);
      pushed++;
    }
    expect(check.finding).toMatch(/longer than 16777216 characters/);
    expect(pushed).toBe(SVG_LIMITS.maxTokenChars / mib.length + 1);
  });
  it("caps the file's total length: at the limit passes, one character more is refused", () => {
    const file = svg("<rect width='1' height='1'/>");
    expect(checkWith({ maxTotalChars: file.length }, file)).toBeNull();
    expect(checkWith({ maxTotalChars: file.length - 1 }, file)).toBe(`SVG larger than ${file.length - 1} characters: not parsed`);
  });
  it("caps the CSS of one <style> element", () => {
    expect(checkWith({ maxStyleChars: 100 }, svg(`<style>${"rect{fill:red}".repeat(5)}</style>`))).toBeNull();
    expect(checkWith({ maxStyleChars: 100 }, svg(`<style>${"rect{fill:red}".repeat(8)}</style>`))).toMatch(/<style> at line 1, column \d+ longer than 100 characters/);
  });
});
