import { describe, expect, it } from "vitest";
import { validateFilename } from "./filename.ts";
import { validateDeclaration, type UploadPolicy } from "./upload-policy.ts";

const policy: UploadPolicy = { allowedTypes: ["application/pdf"], maxSize: 1000, multipartThreshold: 1000, partSize: 5 * 1024 * 1024, urlTtlSeconds: 600, maxUrlTtlSeconds: 3600 };
const declare = (over: Record<string, unknown>) => validateDeclaration({ filename: "a.pdf", contentType: "application/pdf", size: 10, ...over }, policy);

describe("filename characters", () => {
  it.each([
    ["zero-width space", "inv\u200Boice.pdf", "invisible", "U+200B"],
    ["zero-width non-joiner", "a\u200Cb.pdf", "invisible", "U+200C"],
    ["zero-width joiner", "a\u200Db.pdf", "invisible", "U+200D"],
    ["word joiner", "a\u2060b.pdf", "invisible", "U+2060"],
    ["BOM at the start", "\uFEFFreport.pdf", "invisible", "U+FEFF"],
    ["BOM at the end", "report.pdf\uFEFF", "invisible", "U+FEFF"],
    ["soft hyphen", "re\u00ADport.pdf", "invisible", "U+00AD"],
    ["invisible times", "a\u2062b.pdf", "invisible", "U+2062"],
    ["Mongolian vowel separator", "a\u180Eb.pdf", "invisible", "U+180E"],
    ["tag character", "a\u{E0041}b.pdf", "invisible", "U+E0041"],
    ["Hangul filler", "\u3164.pdf", "invisible", "U+3164"],
    ["combining grapheme joiner", "a\u034Fb.pdf", "invisible", "U+034F"],
    ["right-to-left override", "photo\u202Egnp.exe", "bidi", "U+202E"],
    ["right-to-left isolate", "a\u2067b.pdf", "bidi", "U+2067"],
    ["right-to-left mark", "a\u200Fb.pdf", "bidi", "U+200F"],
    ["Arabic letter mark", "a\u061Cb.pdf", "bidi", "U+061C"],
    ["NUL", "a\u0000b.pdf", "control", "U+0000"],
    ["C1 control", "a\u0085b.pdf", "control", "U+0085"],
    ["line separator", "a\u2028b.pdf", "control", "U+2028"],
    ["paragraph separator", "a\u2029b.pdf", "control", "U+2029"],
  ])("refuses a %s, naming it", (_what, name, rule, character) => {
    expect(() => validateFilename(name)).toThrow(expect.objectContaining({ code: "invalid_filename", details: expect.objectContaining({ rule, character }) }));
    expect(() => validateFilename(name)).toThrow(new RegExp(character.replace("+", "\\+")));
  });

  it("refuses unpaired surrogates, which have no UTF-8 form", () => {
    for (const name of ["a\uD800.pdf", "a\uDC00.pdf", "\uDBFF"]) {
      expect(() => validateFilename(name)).toThrow(expect.objectContaining({ code: "invalid_filename", details: { rule: "unpaired_surrogate" } }));
    }
  });

  it("keeps names in other scripts, with emoji and combining accents", () => {
    for (const name of ["отчёт.pdf", "تقرير.pdf", "報告書.pdf", "e\u0301te\u0301.pdf", "📄 report.pdf", "résumé (final).pdf"]) {
      expect(validateFilename(name)).toBe(name.normalize("NFC"));
    }
  });
});

describe("metadata values follow the control and bidi rules", () => {
  it.each([
    ["bidi override", "\u202Egnp.exe", "bidi"],
    ["bidi isolate", "x\u2066y", "bidi"],
    ["NUL", "a\u0000", "control"],
    ["newline", "line1\nline2", "control"],
    ["line separator", "a\u2028b", "control"],
    ["unpaired surrogate", "a\uD83D", "unpaired_surrogate"],
  ])("refuses a %s", (_what, value, rule) => {
    expect(() => declare({ metadata: { note: value } })).toThrow(expect.objectContaining({ code: "invalid_metadata", details: expect.objectContaining({ key: "note", rule }) }));
  });

  it("keeps zero-width joiners in values (emoji sequences, Persian words)", () => {
    const family = "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}";
    const persian = "می\u200Cخواهم";
    expect(declare({ metadata: { a: family, b: persian } }).metadata).toEqual({ a: family, b: persian });
  });
});

describe("filenames that are only dots", () => {
  it.each([".", "..", " ..", ".. ", ". .", "...", "\u3000.."])("refuses %j: padded or not, it names a directory once trimmed", (name) => {
    expect(() => validateFilename(name)).toThrow(/relative path|only dots/);
  });

  it("keeps names that merely start or end with dots", () => {
    for (const name of [".bashrc", "a..b.txt", "notes.", "...txt"]) expect(validateFilename(name)).toBe(name);
  });
});

describe("metadata keys", () => {
  it.each([["a right-to-left override", "a\u202Eb"], ["a zero-width joiner", "a\u200Db"], ["a line separator", "a\u2028b"], ["a NUL", "a\u0000b"]])("refuses a key with %s without echoing the character in the message", (_what, key) => {
    let message = "";
    try {
      declare({ metadata: { [key]: "x" } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/metadata key/);
    // The message is shown by clients and UIs like any text we echo: only printable ASCII.
    expect(message).toMatch(/^[\x20-\x7e]+$/);
  });

  it("refuses an overlong key and a 513-character value, keeps 512", () => {
    expect(() => declare({ metadata: { ["k".repeat(65)]: "x" } })).toThrow(/metadata key/);
    expect(() => declare({ metadata: { k: "v".repeat(513) } })).toThrow(/at most 512/);
    expect(declare({ metadata: { k: "v".repeat(512) } }).metadata.k).toHaveLength(512);
  });
});
