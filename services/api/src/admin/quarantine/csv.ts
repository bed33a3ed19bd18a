import { stringify, type Stringifier } from "csv-stringify";

/**
 * CSV for auditors, who open it in a spreadsheet. Three rules beyond RFC 4180 (which
 * csv-stringify handles: quoting, doubled quotes, line breaks inside cells):
 *
 * - No cell runs as a formula. OWASP's CSV Injection guidance: a cell beginning with =, +,
 *   -, @, tab or carriage return is read as a formula by Excel, LibreOffice and Sheets; prefix
 *   it with a single quote so it is shown as text. We also look past leading whitespace and
 *   invisible characters (" =1", "\u200b=1": some importers trim them before deciding), and
 *   treat the full-width forms (＝ ＋ － ＠) and NUL (ASVS 1.2.10) the same way. Filenames,
 *   signature names and justifications are attacker- or person-written text, so every string
 *   cell goes through this, not only the ones we expect to be hostile. csv-stringify's own
 *   escape_formulas looks at the first character only, hence our own cast.
 * - Every string cell is quoted, so a separator or quote in a filename never shifts columns.
 * - A UTF-8 byte order mark first: without it Excel reads UTF-8 as the local code page and
 *   non-ASCII filenames arrive garbled.
 */
const FORMULA_START = /^[\s\u0000-\u001f\u007f\u00ad\u180e\u200b-\u200f\u2028-\u202f\u2060-\u2064\ufeff]*[=+\-@\uff1d\uff0b\uff0d\uff20]/u;
const CONTROL_START = /^[\t\r\n\u0000]/;

export function neutraliseFormula(value: string): string {
  return CONTROL_START.test(value) || FORMULA_START.test(value) ? `'${value}` : value;
}

export function csvWriter(columns: readonly { key: string; header: string }[]): Stringifier {
  return stringify({
    header: true,
    bom: true,
    columns: columns.map((c) => ({ key: c.key, header: c.header })),
    quoted_string: true,
    record_delimiter: "windows", // CRLF, as RFC 4180 says
    cast: {
      string: (value) => neutraliseFormula(value),
      date: (value) => value.toISOString(),
      boolean: (value) => (value ? "true" : "false"),
    },
  });
}

/** A download's headers: CSV as an attachment under a name that says what and when. */
export function attachment(filename: string): string {
  // Our own ASCII name (no client text in it), so the plain quoted form is enough.
  return `attachment; filename="${filename.replace(/[^A-Za-z0-9._-]/g, "_")}"`;
}

/** 20261201T140000Z: a timestamp safe in a filename. */
export function fileStamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}
