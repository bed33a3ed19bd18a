import type { FindingReason } from "./findings.ts";

/**
 * What the XML parts of an OOXML package that decide what gets loaded say, once inflated:
 * [Content_Types].xml (which parts are VBA projects, OLE objects, macro-enabled documents)
 * and every .rels part (ECMA-376 part 2, 9.3). Word and Excel find a part through its
 * relationship's type, not its name: a VBA project renamed to media/image9.bin is still
 * loaded through a ".../vbaProject" relationship, and an external oleObject relationship
 * (CVE-2022-30190, "Follina") fetches and runs what it points at without any part or
 * content type in the package saying so.
 */
export type XmlPartKind = "content types" | "relationships";

export interface XmlPartFinding {
  reason: FindingReason;
  detail: string;
}

/**
 * XML text as Office would read it. OPC admits only UTF-8 and UTF-16; an XML parser takes
 * UTF-16 from its byte-order mark or, without one, from the NUL bytes of "<?" (XML 1.0
 * appendix F). Only ASCII words are looked for, so the NUL bytes of UTF-16 (either byte
 * order, with or without a mark) are dropped and the rest read as Latin-1: the words come
 * out the same whichever of those encodings the part uses. Any other declared encoding
 * (UTF-7, EBCDIC...) could spell them differently: refused, returned as a problem.
 */
export function decodeXmlPart(bytes: Buffer): { text: string } | { problem: string } {
  const text = Buffer.from(bytes.filter((b) => b !== 0)).toString("latin1").replace(/^\xff\xfe|^\xfe\xff|^\xef\xbb\xbf/, "");
  // Without "<" first it is neither (EBCDIC's "<?xm" is 4C 6F A7 94): its words cannot be read.
  if (!/^\s*</.test(text)) return { problem: "does not start as UTF-8 or UTF-16 XML" };
  const declared = /^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([^"']*)["']/i.exec(text)?.[1];
  if (declared !== undefined && !/^(utf-?8|utf-?16(le|be)?|unicode)$/i.test(declared)) return { problem: `declares the encoding ${JSON.stringify(declared)}` };
  if (/<!DOCTYPE/i.test(text)) return { problem: "declares a DTD" };
  return { text: decodeCharacterReferences(text) };
}

/** &#NN; and &#xHH; references and the predefined entities, as an XML parser reads them. */
function decodeCharacterReferences(xml: string): string {
  const named: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
  return xml.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (_m, ref: string) => {
    if (ref[0] !== "#") return named[ref.toLowerCase()]!;
    const code = ref[1] === "x" || ref[1] === "X" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : "";
  });
}

/** Findings in a decoded [Content_Types].xml. */
export function contentTypesFindings(xml: string): XmlPartFinding[] {
  const types = xml.toLowerCase();
  const found: XmlPartFinding[] = [];
  if (types.includes("vbaproject")) found.push({ reason: "office_macros", detail: "OOXML document whose [Content_Types].xml declares a VBA project" });
  else if (types.includes("macrosheet")) found.push({ reason: "office_macros", detail: "OOXML document whose [Content_Types].xml declares an Excel 4.0 macro sheet" });
  else if (types.includes("macroenabled")) found.push({ reason: "office_macros", detail: "OOXML document whose [Content_Types].xml declares a macro-enabled content type" });
  if (types.includes("activex")) found.push({ reason: "office_ole_object", detail: "OOXML document whose [Content_Types].xml declares ActiveX controls" });
  else if (types.includes("oleobject")) found.push({ reason: "office_ole_object", detail: "OOXML document whose [Content_Types].xml declares OLE objects" });
  return found;
}

/** A Relationship element's attributes; a quoted value may hold ">" (legal in XML). */
const RELATIONSHIP = /<(?:[\w.-]+:)?relationship\b((?:[^>"']|"[^"]*"|'[^']*')*)>/g;
const ATTRIBUTE = /([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;
/**
 * A template on a local drive (C:\..., file:///C:/...). Any other target is fetched from
 * wherever it points: http:, a UNC path (\\host, file:///\\host, file://host), or a
 * relative path resolved against the document's own location, which may be a share.
 */
const LOCAL_DRIVE = /^\s*(?:file:\/\/\/)?[a-z]:[\\/]/;
const MACRO_ENABLED = /\.(docm|dotm|xlsm|xltm|xlsb|xlam|pptm|potm|ppsm|ppam|sldm)\s*$/;
/** altChunk sources that are plain content; RTF (\object), MHTML and nested packages can bring OLE objects in. */
const HARMLESS_ALT_CHUNK = /\.(html?|xhtml|txt|xml)\s*$/;

/**
 * Findings in a decoded .rels part. Relationship types are matched on their last segment,
 * without case (the namespaces differ between the transitional, strict and Microsoft
 * variants): vbaProject, wordVbaData and Excel 4.0 macro sheets (xlMacrosheet,
 * xlIntlMacrosheet) are macros, oleObject, control and activeX* are OLE/ActiveX objects
 * (internal or external), so is an altChunk Word imports from anything but HTML or text
 * (RTF's \object groups and a nested package's embeddings become OLE objects on import),
 * an attachedTemplate is a macro source unless it sits on a local drive (a local file:///
 * Normal.dotm is what Word writes into most documents), and a package relationship to a
 * macro-enabled document embeds one.
 */
export function relationshipFindings(xml: string, partName: string): XmlPartFinding[] {
  const found: XmlPartFinding[] = [];
  for (const [, attrs] of xml.toLowerCase().matchAll(RELATIONSHIP)) {
    const a = new Map<string, string>();
    for (const [, name, dq, sq] of attrs!.matchAll(ATTRIBUTE)) a.set(name!.replace(/^.*:/, ""), dq ?? sq ?? "");
    const type = (a.get("type") ?? "").replace(/^.*\//, "");
    const target = a.get("target") ?? "";
    const what = `a ${type} relationship in ${partName} (target ${JSON.stringify(target.slice(0, 80))})`;
    if (type === "vbaproject" || type === "wordvbadata" || type.endsWith("macrosheet")) found.push({ reason: "office_macros", detail: `OOXML document with ${what}` });
    else if (type === "oleobject" || type === "control" || type.startsWith("activex")) found.push({ reason: "office_ole_object", detail: `OOXML document with ${what}` });
    else if (type === "afchunk" && !HARMLESS_ALT_CHUNK.test(target)) found.push({ reason: "office_ole_object", detail: `OOXML document importing content that can carry OLE objects: ${what}` });
    else if (type === "attachedtemplate" && !LOCAL_DRIVE.test(target)) found.push({ reason: "office_macros", detail: `OOXML document with a remote template, which can carry macros: ${what}` });
    else if (type === "package" && MACRO_ENABLED.test(target)) found.push({ reason: "office_macros", detail: `OOXML document embedding a macro-enabled document: ${what}` });
  }
  return found;
}
