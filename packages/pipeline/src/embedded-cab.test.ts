import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EmbeddedCabCheck } from "./embedded-cab.ts";

/** A real cabinet from gcab (the setup installs it), MSZIP-compressed unless `stored`. */
function cab(data: Buffer, stored = false): Buffer {
  const dir = mkdtempSync(join(tmpdir(), "intake-cab-"));
  try {
    writeFileSync(join(dir, "report.bin"), data);
    execFileSync("gcab", ["-c", ...(stored ? [] : ["-z"]), "out.cab", "report.bin"], { cwd: dir });
    return readFileSync(join(dir, "out.cab"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(bytes: Buffer, chunkSize = 64 * 1024): string | null {
  const c = new EmbeddedCabCheck();
  for (let at = 0; at < bytes.length; at += chunkSize) c.push(bytes.subarray(at, at + chunkSize));
  return c.finish();
}

const set = (b: Buffer, offset: number, value: number) => {
  const out = Buffer.from(b);
  out[offset] = value;
  return out;
};

describe("EmbeddedCabCheck", () => {
  const mszip = cab(Buffer.concat([Buffer.alloc(3 * 1024 * 1024), Buffer.from("payload")]));
  const stored = cab(Buffer.from("a stored cabinet member\n".repeat(50)), true);
  const prefix = Buffer.from("%PDF-1.4\n%%EOF\n");

  it("finds MSZIP and stored cabinets at offset 0 and after a prefix", () => {
    for (const c of [mszip, stored]) {
      expect(run(c)).toMatch(/Microsoft Cabinet at offset 0/);
      expect(run(Buffer.concat([prefix, c]))).toMatch(new RegExp(`offset ${prefix.length}`));
    }
  });

  it("finds the cabinets clamd does not even recognise (non-zero reserved fields, other versions: cabextract and gcab extract them)", () => {
    for (const [offset, value] of [[4, 1], [12, 1], [20, 1], [24, 0], [25, 2]] as const) {
      expect(run(Buffer.concat([prefix, set(mszip, offset, value)])), `byte ${offset} = ${value}`).not.toBeNull();
    }
  });

  it("finds it whatever the chunking (signature and data block split across chunks)", () => {
    const bytes = Buffer.concat([prefix, mszip]);
    for (const size of [1, 3, 7, prefix.length + 2, 4096]) expect(run(bytes, size), `chunks of ${size}`).not.toBeNull();
  });

  it("dismisses chance matches: random data with MSCF dropped in", () => {
    const noise = randomBytes(4 * 1024 * 1024);
    for (let i = 1; i < 200; i++) noise.write("MSCF", i * 20_000, "latin1");
    expect(run(noise)).toBeNull();
  });

  it("dismisses a cabinet header whose first data block lies past the object's end", () => {
    const cut = mszip.subarray(0, 60); // header and folder, no data block
    expect(run(Buffer.concat([prefix, cut]))).toBeNull();
  });

  it("refuses an object crafted to hold too many headers open at once", () => {
    const header = Buffer.from(mszip.subarray(0, 44));
    expect(run(Buffer.concat(Array.from({ length: 100 }, () => header)))).toMatch(/more than 64 cabinet headers/);
  });
});
