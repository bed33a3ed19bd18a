/**
 * An RFC 4180 reader for the tests of our CSV exports (csv-parse is not installed): quoted
 * fields with doubled quotes, commas and line breaks inside quotes, CRLF or LF records, and
 * a leading byte order mark. Strict: a quote inside an unquoted field, or text after a
 * closing quote, is an error, so a malformed export fails the test instead of parsing loosely.
 */
export function readCsv(text: string): string[][] {
  const src = text.startsWith("\ufeff") ? text.slice(1) : text;
  const records: string[][] = [];
  let record: string[] = [];
  let i = 0;
  const endRecord = () => {
    records.push(record);
    record = [];
  };
  while (i < src.length) {
    let field = "";
    if (src[i] === '"') {
      i++;
      for (;;) {
        if (i >= src.length) throw new Error("unterminated quoted field");
        if (src[i] === '"') {
          if (src[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += src[i++];
      }
      if (i < src.length && src[i] !== "," && src[i] !== "\r" && src[i] !== "\n") throw new Error(`text after a closing quote at ${i}`);
    } else {
      while (i < src.length && src[i] !== "," && src[i] !== "\r" && src[i] !== "\n") {
        if (src[i] === '"') throw new Error(`quote inside an unquoted field at ${i}`);
        field += src[i++];
      }
    }
    record.push(field);
    if (src[i] === ",") {
      i++;
      if (i === src.length) record.push("");
      continue;
    }
    if (src[i] === "\r") i++;
    if (src[i] === "\n") i++;
    endRecord();
  }
  return records;
}

/** Records as objects keyed by the header row. */
export function readCsvObjects(text: string): Record<string, string>[] {
  const [header, ...rows] = readCsv(text);
  if (!header) return [];
  return rows.map((r) => {
    if (r.length !== header.length) throw new Error(`a record has ${r.length} fields, the header ${header.length}`);
    return Object.fromEntries(header.map((h, i) => [h, r[i]!]));
  });
}
