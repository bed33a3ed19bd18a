import { zlibSync } from "fflate";
import { describe, expect, it } from "vitest";
import { PdfActiveContentCheck, type PdfCheckLimits } from "./pdf-check.ts";

/**
 * Real PDFs, built here with correct cross-reference tables (classic tables, or an xref
 * stream where objects live in an object stream), each pushed whole and one byte at a time.
 */
type Body = string | Buffer;

/** A PDF with `objects` as objects 1..n (object 1 the catalog) and a classic xref table. */
function pdf(objects: Body[], trailer = ""): Buffer {
  const parts: Buffer[] = [Buffer.from("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "latin1")];
  let length = parts[0]!.length;
  const offsets: number[] = [];
  objects.forEach((o, i) => {
    offsets.push(length);
    const b = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`), Buffer.isBuffer(o) ? o : Buffer.from(o, "latin1"), Buffer.from("\nendobj\n")]);
    parts.push(b);
    length += b.length;
  });
  const xref = `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, "0")} 00000 n \n`).join("")}`;
  parts.push(Buffer.from(`${xref}trailer\n<< /Size ${objects.length + 1} /Root 1 0 R ${trailer}>>\nstartxref\n${length}\n%%EOF\n`, "latin1"));
  return Buffer.concat(parts);
}

function stream(dict: string, data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`<< ${dict} /Length ${data.length} >>\nstream\n`, "latin1"), data, Buffer.from("\nendstream", "latin1")]);
}

const PAGES = ["<< /Type /Pages /Kids [3 0 R] /Count 1 >>", "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>"];
const content = () => stream("/Filter /FlateDecode", Buffer.from(zlibSync(Buffer.from("BT /F1 12 Tf 20 100 Td (Hello) Tj ET"))));
const cleanPdf = () => pdf(["<< /Type /Catalog /Pages 2 0 R >>", ...PAGES, content()]);
const withCatalog = (catalog: string, ...more: Body[]) => pdf([catalog, ...PAGES, content(), ...more]);

/**
 * PDF 1.5: objects 5.. live in one FlateDecode object stream (object 5 + objects.length),
 * found through an xref stream with type-2 entries, as real writers produce them.
 */
function pdfWithObjectStream(catalog: string, compressed: string[], opts: { dict?: string; encode?: (b: Buffer) => Buffer } = {}): Buffer {
  const top = [catalog, ...PAGES, content()];
  const first = top.length + 1; // first compressed object number
  const streamNumber = first + compressed.length;
  const { raw, header } = objectStreamData(first, compressed);
  const encoded = (opts.encode ?? ((b) => Buffer.from(zlibSync(b))))(raw);
  const objStm = stream(opts.dict ?? `/Type /ObjStm /N ${compressed.length} /First ${header.length} /Filter /FlateDecode`, encoded);

  const parts: Buffer[] = [Buffer.from("%PDF-1.7\n", "latin1")];
  let length = parts[0]!.length;
  const offsets = new Map<number, number>();
  const add = (n: number, b: Body) => {
    offsets.set(n, length);
    const o = Buffer.concat([Buffer.from(`${n} 0 obj\n`), Buffer.isBuffer(b) ? b : Buffer.from(b, "latin1"), Buffer.from("\nendobj\n")]);
    parts.push(o);
    length += o.length;
  };
  top.forEach((o, i) => add(i + 1, o));
  add(streamNumber, objStm);
  const xrefNumber = streamNumber + 1;
  const size = xrefNumber + 1;
  const rows: Buffer[] = [];
  const row = (type: number, a: number, b: number) => {
    const r = Buffer.alloc(7);
    r.writeUInt8(type, 0);
    r.writeUInt32BE(a, 1);
    r.writeUInt16BE(b, 5);
    rows.push(r);
  };
  row(0, 0, 65535);
  for (let n = 1; n < size; n++) {
    if (n >= first && n < streamNumber) row(2, streamNumber, n - first);
    else if (n === xrefNumber) row(1, length, 0);
    else row(1, offsets.get(n)!, 0);
  }
  const xrefAt = length;
  add(xrefNumber, stream(`/Type /XRef /Size ${size} /W [1 4 2] /Root 1 0 R`, Buffer.concat(rows)));
  parts.push(Buffer.from(`startxref\n${xrefAt}\n%%EOF\n`, "latin1"));
  return Buffer.concat(parts);
}

/** An object stream's decoded data: "number offset" pairs, then the objects. */
function objectStreamData(first: number, objects: string[]): { raw: Buffer; header: string } {
  let header = "";
  let body = "";
  objects.forEach((o, i) => {
    header += `${first + i} ${body.length} `;
    body += `${o}\n`;
  });
  return { raw: Buffer.from(header + body, "latin1"), header };
}

const LIMITS: PdfCheckLimits = { maxStreamBytes: 1024 * 1024, maxTotalBytes: 4 * 1024 * 1024 };

function check(bytes: Buffer, limits = LIMITS, chunk = 0): { reason: string; detail: string }[] {
  const c = new PdfActiveContentCheck(limits);
  if (chunk === 0) c.push(bytes);
  else for (let i = 0; i < bytes.length; i += chunk) c.push(bytes.subarray(i, i + chunk));
  return c.finish();
}

/** The reasons found, the same whether the file arrives whole or one byte at a time. */
function reasons(bytes: Buffer, limits = LIMITS): string[] {
  const whole = check(bytes, limits);
  expect(check(bytes, limits, 1)).toEqual(whole);
  for (const size of [7, 64, 4096]) expect(check(bytes, limits, size), `chunks of ${size}`).toEqual(whole);
  return whole.map((f) => f.reason);
}

const JS_ACTION = "<< /S /JavaScript /JS (app.alert\\(1\\)) >>";

describe("PDF active content", () => {
  it("passes a clean PDF (FlateDecode content stream, /URI OpenAction)", () => {
    expect(reasons(cleanPdf())).toEqual([]);
    expect(reasons(withCatalog("<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /URI /URI (https://example.com/) >> >>"))).toEqual([]);
  });

  it("passes a clean PDF 1.5 whose objects live in an object stream", () => {
    expect(reasons(pdfWithObjectStream("<< /Type /Catalog /Pages 2 0 R /Outlines 5 0 R >>", ["<< /Type /Outlines /Count 0 >>"]))).toEqual([]);
  });

  it("refuses an /OpenAction JavaScript action", () => {
    expect(reasons(withCatalog(`<< /Type /Catalog /Pages 2 0 R /OpenAction ${JS_ACTION} >>`))).toEqual(["pdf_javascript"]);
  });

  it("refuses the JavaScript action written without white space (/S/JavaScript/JS(x))", () => {
    expect(reasons(withCatalog("<</Type/Catalog/Pages 2 0 R/OpenAction<</S/JavaScript/JS(x)>>>>"))).toEqual(["pdf_javascript"]);
  });

  it("refuses the JavaScript action with hex-escaped names (/J#61vaScript, /#4A#53)", () => {
    expect(reasons(withCatalog("<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /J#61vaScript /#4A#53 (x) >> >>"))).toEqual(["pdf_javascript"]);
    expect(check(withCatalog("<< /Type /Catalog /Pages 2 0 R /AA << /O << /S /Foo /#4a#53 (x) >> >> >>"))[0]?.detail).toMatch(/\/JS/);
  });

  it("refuses a JavaScript action inside a FlateDecode object stream", () => {
    const file = pdfWithObjectStream("<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R >>", [JS_ACTION]);
    expect(file.includes("JavaScript")).toBe(false); // only the inflated stream names it
    expect(check(file)).toEqual([{ reason: "pdf_javascript", detail: "PDF with JavaScript (/JavaScript) inside an object stream" }]);
    expect(reasons(file)).toEqual(["pdf_javascript"]);
  });

  it("refuses it when the object stream hides its type (/First alone, /Fl abbreviation, escaped /Obj#53tm)", () => {
    const hidden = (dict: string) => pdfWithObjectStream("<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R >>", [JS_ACTION], { dict });
    expect(reasons(hidden("/N 1 /First 4 /Filter /FlateDecode"))).toEqual(["pdf_javascript"]);
    expect(reasons(hidden("/Type /ObjStm /N 1 /First 4 /Filter [/Fl]"))).toEqual(["pdf_javascript"]);
    expect(reasons(hidden("/Type /Obj#53tm /N 1 /Filter /Fl#61teDecode"))).toEqual(["pdf_javascript"]);
  });

  it("refuses an object stream whose dictionary gives /Filter twice (readers differ on which one counts)", () => {
    // A polyglot: stored-deflate zlib whose payload is ASCIIHex text. Read with the last
    // /Filter (FlateDecode: pdf.js, qpdf) it is hex digits; read with the first
    // (ASCIIHexDecode, which skips non-hex bytes) it is the JavaScript action. Padding keeps
    // the zlib framing bytes off the hex digits.
    const isHex = (b: number) => /[0-9a-fA-F>]/.test(String.fromCharCode(b));
    const polyglot = (raw: Buffer) => {
      for (let pad = 0; ; pad++) {
        const z = Buffer.from(zlibSync(Buffer.from(`${raw.toString("hex")}${" ".repeat(pad)}>`, "latin1"), { level: 0 }));
        const framing = [...z.subarray(0, 7), ...z.subarray(z.length - 4)];
        if (!framing.some(isHex)) return z;
      }
    };
    const file = pdfWithObjectStream("<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R >>", [JS_ACTION], { dict: "/Type /ObjStm /N 1 /First 4 /Filter /ASCIIHexDecode /Filter /FlateDecode", encode: polyglot });
    const found = check(file);
    expect(found.map((f) => f.reason)).toEqual(["unscannable"]);
    expect(found[0]!.detail).toMatch(/\/Filter twice/);
    expect(reasons(file)).toEqual(["unscannable"]);
  });

  it("refuses object streams whose decoding is not established (other filters, predictors, by-reference filters)", () => {
    const asciiHex = (b: Buffer) => Buffer.from(`${b.toString("hex")}>`, "latin1");
    const cases = [
      { dict: "/Type /ObjStm /N 1 /First 4 /Filter /ASCIIHexDecode", encode: asciiHex },
      { dict: "/Type /ObjStm /N 1 /First 4 /Filter [/ASCIIHexDecode /FlateDecode]", encode: (b: Buffer) => asciiHex(Buffer.from(zlibSync(b))) },
      { dict: "/Type /ObjStm /N 1 /First 4 /Filter /LZWDecode" },
      { dict: "/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 4 >>" },
      { dict: "/Type /ObjStm /N 1 /First 4 /Filter 99 0 R" },
      { dict: "/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /DP << /Predictor 2 >>" },
      { dict: "/Type /ObjStm /N 1 /First 4 /F /AHx", encode: asciiHex },
    ];
    for (const c of cases) {
      const found = check(pdfWithObjectStream("<< /Type /Catalog /Pages 2 0 R >>", ["<< /Foo 1 >>"], c));
      expect(found.map((f) => f.reason), c.dict).toEqual(["unscannable"]);
      expect(found[0]!.detail).toMatch(/object stream/);
    }
  });

  it("refuses an object stream that does not inflate to its end, or is corrupt", () => {
    const truncated = pdfWithObjectStream("<< /Type /Catalog /Pages 2 0 R >>", ["<< /Foo 1 >>"], { encode: (b) => Buffer.from(zlibSync(b)).subarray(0, 8) });
    expect(reasons(truncated)).toEqual(["unscannable"]);
    expect(check(truncated)[0]!.detail).toMatch(/ends before its last block/);
    const corrupt = pdfWithObjectStream("<< /Type /Catalog /Pages 2 0 R >>", ["<< /Foo 1 >>"], { encode: () => Buffer.from([0x78, 0x9c, 0xff, 0xff, 0xff, 0xff]) });
    expect(reasons(corrupt)).toEqual(["unscannable"]);
  });

  it("refuses an object stream inflating past the per-stream limit or the total, at limit plus one", () => {
    const objects = [`<< /Pad (${"a".repeat(100_000)}) >>`];
    const big = pdfWithObjectStream("<< /Type /Catalog /Pages 2 0 R >>", objects);
    const inflated = objectStreamData(5, objects).raw.length;
    expect(reasons(big, { maxStreamBytes: inflated, maxTotalBytes: inflated })).toEqual([]);
    expect(reasons(big, { maxStreamBytes: inflated - 1, maxTotalBytes: 1 << 20 })).toEqual(["unscannable"]);
    expect(check(big, { maxStreamBytes: inflated - 1, maxTotalBytes: 1 << 20 })[0]!.detail).toMatch(`inflates past ${inflated - 1} bytes`);
    expect(check(big, { maxStreamBytes: 1 << 20, maxTotalBytes: inflated - 1 })[0]!.detail).toMatch(/MaxScanSize/);
  });

  it("refuses an object stream whose deflate data is followed by more than it could ever yield", () => {
    const padded = pdfWithObjectStream("<< /Type /Catalog /Pages 2 0 R >>", ["<< /Foo 1 >>"], { encode: (b) => Buffer.concat([Buffer.from(zlibSync(b)), Buffer.alloc(300 * 1024, 0x20)]) });
    expect(check(padded)[0]!.detail).toMatch(/yielded no output/);
  });

  it("refuses a Launch action", () => {
    const launch = withCatalog("<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /Launch /F (cmd.exe) /Win << /F (cmd.exe) >> >> >>");
    expect(reasons(launch)).toEqual(["pdf_launch_action"]);
  });

  it("refuses an embedded file (EmbeddedFiles name tree, file specification, embedded file stream)", () => {
    const file = withCatalog(
      "<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles << /Names [(a.exe) 6 0 R] >> >> >>",
      "<< /Type /Filespec /F (a.exe) /EF << /F 7 0 R >> >>",
      stream("/Type /EmbeddedFile", Buffer.from("MZ")),
    );
    expect(reasons(file)).toEqual(["pdf_embedded_file"]);
    expect(reasons(withCatalog("<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Annot /Subtype /FileAttachment /FS 7 0 R >>"))).toEqual(["pdf_embedded_file"]);
  });

  it("refuses an encrypted PDF (/Encrypt in the trailer) as unscannable", () => {
    const encrypted = pdf(["<< /Type /Catalog /Pages 2 0 R >>", ...PAGES, content(), "<< /Filter /Standard /V 2 /R 3 /Length 128 /P -4 /O <00> /U <00> >>"], "/Encrypt 5 0 R /ID [<01> <01>] ");
    const found = check(encrypted);
    expect(found.map((f) => f.reason)).toEqual(["unscannable"]);
    expect(found[0]!.detail).toMatch(/\/Encrypt/);
    expect(reasons(encrypted)).toEqual(["unscannable"]);
  });

  it("finds active names hidden in strings and comments (a reader may jump there through the xref)", () => {
    expect(reasons(withCatalog("<< /Type /Catalog /Pages 2 0 R >>", "(unbalanced \\( 9 0 obj << /S /JavaScript /JS (x) >> )"))).toEqual(["pdf_javascript", "unscannable"]);
    expect(reasons(withCatalog("<< /Type /Catalog /Pages 2 0 R >>\n% << /S /Launch /F (x) >>"))).toEqual(["pdf_launch_action"]);
  });

  it("finds long active names inside other streams' data, but not short ones (binary data)", () => {
    const inImage = (data: string) => withCatalog("<< /Type /Catalog /Pages 2 0 R >>", stream("/Type /XObject /Subtype /Image /Width 1 /Height 1 /BitsPerComponent 8 /ColorSpace /DeviceGray /Filter /DCTDecode", Buffer.from(data, "latin1")));
    expect(reasons(inImage("\xff\xd8 9 0 obj << /S /JavaScript /JS (x) >> endobj \xff\xd9"))).toEqual(["pdf_javascript", "unscannable"]); // the hidden object header too
    expect(reasons(inImage("\xff\xd8\x00/JS \x01/EF\x02\xff\xd9"))).toEqual([]);
  });

  it("finds a long name in megabytes of binary stream data wherever the chunks split it", () => {
    const noise = Buffer.alloc(300_000);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919 + (i >> 8) * 31) & 0xff; // deterministic binary
    const data = Buffer.concat([noise, Buffer.from(" /Laun#63h "), noise]);
    const file = withCatalog("<< /Type /Catalog /Pages 2 0 R >>", stream("/Subtype /Image /Filter /DCTDecode", data));
    expect(reasons(file)).toEqual(["pdf_launch_action"]);
    expect(reasons(withCatalog("<< /Type /Catalog /Pages 2 0 R >>", stream("/Subtype /Image /Filter /DCTDecode", Buffer.concat([noise, noise]))))).toEqual([]);
  });

  // An object placed inside another stream's data is still reached through the xref; short
  // names there do not count (binary data), so active content spelled only with short names
  // and names not on the list got through: a Rendition action's /JS (ISO 32000-1 12.6.4.13),
  // an AcroForm's /XFA, a 3D stream's /OnInstantiate script (13.6.3).
  it("refuses a Rendition action (its /JS runs JavaScript) and XFA hidden in other stream data, reached through the xref", () => {
    const hiddenAt = (catalog: string, hidden: string) => {
      const image = (pad: string) => stream("/Type /XObject /Subtype /Image /Width 1 /Height 1 /BitsPerComponent 8 /ColorSpace /DeviceGray /Filter /DCTDecode", Buffer.from(`\xff\xd8${pad}${hidden}\xff\xd9`, "latin1"));
      const file = withCatalog(catalog, image(""));
      // The xref entry of object 9 points into the image data, where "9 0 obj" starts.
      const at = file.indexOf("9 0 obj");
      const xref = file.indexOf("xref\n");
      const size = Number(/\/Size (\d+)/.exec(file.toString("latin1", xref))![1]);
      const rows = file.toString("latin1", xref).split("\n");
      const table = [`xref`, `0 10`, ...rows.slice(2, 2 + size), ...Array.from({ length: 9 - size }, () => "0000000000 65535 f "), `${String(at).padStart(10, "0")} 00000 n `].join("\n");
      return Buffer.concat([file.subarray(0, xref), Buffer.from(`${table}\ntrailer\n<< /Size 10 /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`, "latin1")]);
    };
    const rendition = hiddenAt("<< /Type /Catalog /Pages 2 0 R /OpenAction 9 0 R >>", "9 0 obj << /S /Rendition /OP 4 /JS (app.alert\\(1\\)) >> endobj ");
    expect(rendition.includes("JavaScript")).toBe(false);
    expect(reasons(rendition)).toEqual(["pdf_javascript", "unscannable"]); // and the object header hidden in the image
    const xfa = hiddenAt("<< /Type /Catalog /Pages 2 0 R /AcroForm 9 0 R >>", "9 0 obj << /Fields [] /XFA 6 0 R >> endobj ");
    expect(reasons(xfa)).toEqual(["pdf_javascript", "unscannable"]);
    // Not hidden at all: a Rendition action with /JS in the catalog was already refused (by /JS).
    expect(reasons(withCatalog("<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /Rendition /OP 4 /JS (x) >> >>"))).toEqual(["pdf_javascript"]);
  });

  it("refuses a 3D stream with an /OnInstantiate script", () => {
    const u3d = stream("/Type /3D /Subtype /U3D /OnInstantiate 7 0 R", Buffer.from("U3D\0"));
    const file = withCatalog("<< /Type /Catalog /Pages 2 0 R >>", u3d, stream("", Buffer.from("app.alert(1)")));
    expect(file.includes("JavaScript")).toBe(false);
    expect(check(file)).toEqual([{ reason: "pdf_javascript", detail: "PDF with a 3D stream's JavaScript (/OnInstantiate)" }]);
  });

  it("refuses a stream keyword the tokenizer did not see as one (an object stream hidden in a string or other stream)", () => {
    const hiddenObjStm = Buffer.concat([Buffer.from("(x\n5 0 obj << /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length 20 >> stream\n", "latin1"), Buffer.from(zlibSync(Buffer.from(`5 0 ${JS_ACTION}`))).filter((b) => b !== 0x28 && b !== 0x29 && b !== 0x5c), Buffer.from("\nendstream endobj)", "latin1")]);
    const file = withCatalog("<< /Type /Catalog /Pages 2 0 R >>", hiddenObjStm);
    expect(reasons(file)).toContain("unscannable");
  });

  it("refuses an object stream hidden in other stream data whose 'stream' keyword does not end its line", () => {
    // pdf.js takes "stream" after a dictionary as the keyword whatever follows it on the line
    // (skipToNextLine), and comments between ">>" and "stream" are skipped like white space.
    for (const [before, after] of [[" ", " x\n"], [" ", "%c\r\n"], [" %c\n", " x\n"], ["", "\t\x01\n"]]) {
      const dict = `5 0 obj << /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode /Length 99 >>${before}stream${after}`;
      const hidden = Buffer.concat([Buffer.from(`\xff\xd8${dict}`, "latin1"), Buffer.from(zlibSync(Buffer.from(`5 0 ${JS_ACTION}`))), Buffer.from("\nendstream endobj \xff\xd9", "latin1")]);
      const file = withCatalog("<< /Type /Catalog /Pages 2 0 R >>", stream("/Subtype /Image /Filter /DCTDecode", hidden));
      expect(reasons(file), JSON.stringify(before + after)).toEqual(["unscannable"]);
    }
  });

  it("refuses an object header hidden in other stream data, a string or a comment (a reader reaches it through the xref)", () => {
    // PDF 2.0 associated files (/AF) reach a file specification whose /EF holds the file:
    // hidden in image data, only short names and /Filespec (not an active name) spell it.
    const inImage = (data: string) => withCatalog("<< /Type /Catalog /Pages 2 0 R /AF [9 0 R] >>", stream("/Subtype /Image /Filter /DCTDecode", Buffer.from(`\xff\xd8${data}\xff\xd9`, "latin1")));
    for (const header of ["9 0 obj", "9 0obj", "9 0 %c\nobj", "9\n0\robj"]) {
      const file = inImage(`${header} << /Type /Filespec /F (a.exe) /EF << /F 10 0 R >> >> endobj `);
      const found = check(file);
      expect(found.map((f) => f.reason), JSON.stringify(header)).toEqual(["unscannable"]);
      expect(found[0]!.detail).toMatch(/object header/);
      expect(reasons(file)).toEqual(["unscannable"]);
    }
    expect(reasons(withCatalog("<< /Type /Catalog /Pages 2 0 R /Title (9 0 obj << /EF 1 >>) >>"))).toEqual(["pdf_embedded_file", "unscannable"]);
    // Words that are not an object header: "endobj", "/obj", "objects", "obj" inside a longer word.
    expect(reasons(inImage("endobj /obj objects nobj objx"))).toEqual([]);
  });

  it("does not mistake a 'stream' in text or a /stream name for a hidden stream", () => {
    expect(reasons(withCatalog("<< /Type /Catalog /Pages 2 0 R /Lang (a stream of words) /stream\n1 >>"))).toEqual([]);
  });
});
