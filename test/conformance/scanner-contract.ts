import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { ScanFailedError, type MalwareScanner, type ScanReport } from "@intake/scanner";
import { beforeAllOrFailEach, zipWithCli, type LoadedSignatures } from "@intake/test";

/**
 * The MalwareScanner contract, run against every way the product reaches a scanner. What
 * every implementation must give: clean only for clean bytes, infected with the name of the
 * loaded signature, unscannable for what cannot be looked into, and never clean when the
 * connection fails (ScanFailedError instead), with bytes and sha256 of the whole body in
 * every report.
 */
export interface ScannerUnderTest {
  scanner: MalwareScanner;
  /** The same scanner with StreamMaxLength mirrored at this many bytes. */
  limitedTo(bytes: number): MalwareScanner;
  /** A scanner whose connection fails once `bytes` have gone to clamd (mid-scan); `cut` settles then. */
  failingAfter(bytes: number): Promise<{ scanner: MalwareScanner; cut: Promise<void> }>;
  /** A scanner whose clamd does not answer at all (down, refused). */
  unreachable(): Promise<MalwareScanner>;
  /** Undo failingAfter's damage before the next test. */
  heal(): Promise<void>;
  stop(): Promise<void>;
}

// The EICAR test file, assembled from hex halves so the repository never holds it whole.
export const EICAR = Buffer.from(
  "58354f2150254041505b345c505a58353428505e2937434329377d24" + "45494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a",
  "hex",
);
const MARKER = Buffer.from(["INTAKE", "TEST", "MALWARE", "MARKER"].join("-"));
const HASH_FIXTURE = Buffer.from("Intake hash-signature test fixture: harmless.");
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function chunked(b: Buffer, size = 64 * 1024): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += size) parts.push(b.subarray(i, i + size));
  return Readable.from(parts);
}

export function scannerContract(name: string, start: () => Promise<ScannerUnderTest>, signatures: () => LoadedSignatures): void {
  describe(`MalwareScanner contract: ${name}`, () => {
    let t: ScannerUnderTest;
    let sig: LoadedSignatures;
    beforeAllOrFailEach(async () => {
      sig = signatures();
      t = await start();
    });
    afterAll(async () => t?.stop());
    const scan = (b: Buffer, scanner = t.scanner): Promise<ScanReport> => scanner.scan(chunked(b));
    const expectedName = (b: Buffer) => {
      const n = sig.nameFor(b);
      if (!n) throw new Error(`no signature in ${sig.databaseDirectory} matches the fixture: the test database is not the one these tests expect`);
      return n;
    };

    it("reports clean bytes as clean with their size and sha256, the empty body too", async () => {
      const body = Buffer.concat([Buffer.from("%PDF-1.7 not really\n"), randomBytes(3 * 1024 * 1024 + 17)]);
      expect(sig.nameFor(body)).toBeNull();
      expect(await scan(body)).toEqual({ outcome: "clean", bytes: body.length, sha256: sha(body), raw: "stream: OK" });
      expect(await t.scanner.scan(Readable.from([]))).toEqual({ outcome: "clean", bytes: 0, sha256: sha(Buffer.alloc(0)), raw: "stream: OK" });
    });

    it("reports EICAR as infected with the loaded signature's name, split across chunks of any size", async () => {
      const name = expectedName(EICAR);
      for (const size of [1, 7, 68]) {
        expect(await t.scanner.scan(chunked(EICAR, size))).toEqual({ outcome: "infected", signature: name, bytes: 68, sha256: sha(EICAR), raw: `stream: ${name} FOUND` });
      }
    });

    it("finds a body signature anywhere in the object and a hash signature only for the exact file", async () => {
      const withMarker = Buffer.concat([randomBytes(100_000), MARKER, randomBytes(100_000)]);
      expect(await scan(withMarker)).toMatchObject({ outcome: "infected", signature: expectedName(withMarker), bytes: withMarker.length });
      expect(await scan(HASH_FIXTURE)).toMatchObject({ outcome: "infected", signature: expectedName(HASH_FIXTURE) });
      const longer = Buffer.concat([HASH_FIXTURE, Buffer.from("\n")]);
      expect(sig.nameFor(longer)).toBeNull();
      expect(await scan(longer)).toMatchObject({ outcome: "clean" });
    });

    it("looks into archives: EICAR in a ZIP and in a ZIP inside a ZIP", async () => {
      const name = expectedName(EICAR);
      // EICAR with trailing white space (as the EICAR standard allows) deflates, so the
      // signature is not in the archive's raw bytes: a match means clamd unpacked it.
      const inner = zipWithCli({ "eicar.com": Buffer.concat([EICAR, Buffer.alloc(10_000, 0x20)]), "readme.txt": Buffer.from("hello\n") }, { level: 9 });
      expect(sig.nameFor(inner)).toBeNull();
      expect(await scan(inner)).toMatchObject({ outcome: "infected", signature: name, bytes: inner.length, sha256: sha(inner) });
      const outer = zipWithCli({ "inner.zip": inner });
      expect(await scan(outer)).toMatchObject({ outcome: "infected", signature: name });
    });

    it("reports an encrypted archive as unscannable, not clean", async () => {
      const enc = zipWithCli({ "secret.txt": Buffer.from("nothing to see here\n".repeat(100)) }, { password: "secret" });
      const r = await scan(enc);
      expect(r).toMatchObject({ outcome: "unscannable", kind: "encrypted", bytes: enc.length, sha256: sha(enc) });
      expect(r.outcome === "unscannable" && r.signature).toMatch(/^Heuristics\.Encrypted\./);
    });

    it("reports a stream longer than StreamMaxLength as unscannable, hashing the whole body", async () => {
      const limited = t.limitedTo(1024 * 1024);
      const body = randomBytes(3 * 1024 * 1024);
      expect(await scan(body, limited)).toMatchObject({ outcome: "unscannable", kind: "stream_limit_exceeded", bytes: body.length, sha256: sha(body) });
      // EICAR past the limit is not "clean" either: clamd never saw it.
      const late = Buffer.concat([randomBytes(2 * 1024 * 1024), EICAR]);
      expect(await scan(late, limited)).toMatchObject({ outcome: "unscannable", kind: "stream_limit_exceeded" });
    });

    it("throws ScanFailedError, never a verdict, when the connection fails mid-scan", async () => {
      try {
        const body = randomBytes(8 * 1024 * 1024);
        const { scanner, cut } = await t.failingAfter(1024 * 1024);
        const outcome = await scan(body, scanner).then(
          (r) => r,
          (e: unknown) => e,
        );
        await cut;
        expect(outcome).toBeInstanceOf(ScanFailedError);
        expect(["connection", "connect", "empty_reply"]).toContain((outcome as ScanFailedError).kind);
      } finally {
        await t.heal();
      }
      // Healed: the same scanner scans again.
      expect(await scan(EICAR)).toMatchObject({ outcome: "infected" });
    });

    it("throws ScanFailedError (connect) when clamd does not answer; ping is false, version throws", async () => {
      const down = await t.unreachable();
      await expect(scan(EICAR, down)).rejects.toMatchObject({ name: "ScanFailedError", code: "scan_error", kind: "connect" });
      expect(await down.ping()).toBe(false);
      await expect(down.version()).rejects.toBeInstanceOf(ScanFailedError);
    });

    it("answers PING and VERSION", async () => {
      expect(await t.scanner.ping()).toBe(true);
      expect((await t.scanner.version()).engine).toMatch(/^ClamAV \d+\.\d+/);
    });
  });
}
