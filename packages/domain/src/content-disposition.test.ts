import { describe, expect, it } from "vitest";
import { contentDisposition, MAX_FILENAME_BYTES, validateFilename } from "./filename.ts";

/**
 * The value goes into a response header (the presigned GET's response-content-disposition)
 * and into the promoted object's own metadata, so it is attacked as a header: anything that
 * ends the value, adds a parameter, adds a header, or makes a client read another name than
 * the one in filename*.
 */
// One quoted fallback of visible ASCII with no quote, backslash, ';', '%' or '=' in it, then
// the RFC 5987 ext-value (attr-chars and %XX only): there is no way to a third parameter.
const SHAPE = /^attachment; filename="[\x20\x21\x23-\x24\x26-\x3a\x3c\x3e-\x5b\x5d-\x7e]*"; filename\*=UTF-8''(?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-F]{2})+$/;
// A lax parser's reading: from the first "filename*=" in the value, wherever it stands.
const decodeExt = (v: string) => decodeURIComponent(/filename\*=UTF-8''(.*)$/.exec(v)![1]!);
const fallback = (v: string) => /filename="([^"]*)"/.exec(v)![1]!;

describe("contentDisposition under attack", () => {
  const names = [
    'a"; filename="evil.exe',
    'x\\"; filename*=UTF-8\'\'evil.exe',
    "a\r\nX-Injected: 1.pdf",
    "a\nContent-Type: text/html\n\n<script>.pdf",
    "résumé – 履歴書 🙂.pdf",
    "100%25.pdf",
    "it's (final) *copy*.pdf",
    "=?UTF-8?B?ZXZpbC5leGU=?=",
    "=?UTF-8?Q?=E2=80=AEfdp.exe?=",
    "report =?iso-8859-1?q?=E9?= .pdf",
    "é".repeat(Math.floor(MAX_FILENAME_BYTES / 2)) + ".pdf",
  ];

  it.each(names)("keeps %j inside one attachment value, the real name in filename*", (name) => {
    const v = contentDisposition(name);
    expect(v).toMatch(SHAPE);
    expect(v).not.toMatch(/[\r\n]/);
    expect(decodeExt(v)).toBe(name);
  });

  it("leaves no RFC 2047 encoded word in the fallback: a client that decodes it there would read a name the filename rules refused", () => {
    // Passes validation (all ASCII), but decodes to U+202E RIGHT-TO-LEFT OVERRIDE + "fdp.exe".
    const name = validateFilename("=?UTF-8?Q?=E2=80=AEfdp.exe?=");
    const v = contentDisposition(name);
    expect(fallback(v)).not.toMatch(/=\?/);
    expect(fallback(contentDisposition("report =?iso-8859-1?q?=E9?= .pdf"))).not.toMatch(/=\?/);
  });

  it("stays short enough for any header at the longest filename", () => {
    const longest = "€".repeat(Math.floor(MAX_FILENAME_BYTES / 3));
    expect(Buffer.byteLength(longest)).toBeLessThanOrEqual(MAX_FILENAME_BYTES);
    // 3 x 255 encoded plus a fallback: far under S3's 8 KiB request header limit.
    expect(contentDisposition(validateFilename(longest)).length).toBeLessThan(1200);
  });
});
