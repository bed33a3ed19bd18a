import { describe, expect, it } from "vitest";
import { readCsvObjects } from "../../../../../test/api/csv-reader.ts";
import { csvWriter, neutraliseFormula } from "./csv.ts";

async function write(rows: Record<string, unknown>[]): Promise<string> {
  const w = csvWriter([{ key: "a", header: "a" }, { key: "b", header: "b" }]);
  const chunks: string[] = [];
  w.on("data", (c: Buffer | string) => chunks.push(c.toString()));
  const done = new Promise((resolve, reject) => w.on("end", resolve).on("error", reject));
  for (const r of rows) w.write(r);
  w.end();
  await done;
  return chunks.join("");
}

describe("neutraliseFormula (OWASP CSV injection)", () => {
  it.each([
    ['=HYPERLINK("http://evil.example","x")'],
    ["+1"],
    ["-2"],
    ["@SUM(A1:A2)"],
    ["\t=1"],
    ["\r=1"],
    ["\tplain"],
    ["\u0000x"],
    [" =1"],
    ["  +cmd"],
    ["\u00a0=1"],
    ["\u200b=1"],
    ["\ufeff@x"],
    ["\uff1d1+1"],
    ["\uff0b1"],
    ["\uff0d1"],
    ["\uff20SUM(1)"],
    ["\n-1"],
  ])("prefixes %j with a single quote", (value) => expect(neutraliseFormula(value)).toBe(`'${value}`));

  it.each([["report.pdf"], ["a=b.txt"], ["2026-12-01T14:00:00.000Z"], ["Eicar-Test-Signature"], [""], ["'already"]])("leaves %j alone", (value) => expect(neutraliseFormula(value)).toBe(value));
});

describe("csvWriter", () => {
  it("writes a BOM, a header row, CRLF records, quoted strings, and reads back to the same values (formulas neutralised)", async () => {
    const hostile = ['=HYPERLINK("x")', 'say "hi", then\nnew line', "+1", "-2", "@SUM", "\t=1", "plain"];
    const text = await write(hostile.map((a, i) => ({ a, b: i })));
    expect(text.startsWith('\ufeff"a","b"\r\n')).toBe(true);
    const rows = readCsvObjects(text);
    expect(rows.map((r) => r.a)).toEqual(['\'=HYPERLINK("x")', 'say "hi", then\nnew line', "'+1", "'-2", "'@SUM", "'\t=1", "plain"]);
    expect(rows.map((r) => r.b)).toEqual(["0", "1", "2", "3", "4", "5", "6"]);
  });

  it("writes numbers as numbers (a negative number is data, not a formula) and null as an empty cell", async () => {
    const rows = readCsvObjects(await write([{ a: -5, b: null }]));
    expect(rows).toEqual([{ a: "-5", b: "" }]);
  });
});
