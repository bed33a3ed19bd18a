import { Readable } from "node:stream";
import { crc32, deflateSync } from "node:zlib";
import type { MalwareScanner, ScanBody } from "./clamd.ts";
import { ScanFailedError } from "./errors.ts";

/**
 * A start-up check that clamd really behaves as the configuration says, by asking it: the
 * configuration can agree with itself (packages/runtime) while the clamd it talks to was
 * started with other limits, without AlertExceedsMax, or without the project's container
 * signatures (a clamd not started by infra/clamd/up.sh). Each probe is a file whose only
 * right answer proves one property:
 *
 * - a gzip inflating to MaxFileSize + 1 zero bytes must answer
 *   Heuristics.Limits.Exceeded.MaxFileSize: AlertExceedsMax is on and clamd's MaxFileSize is
 *   no larger than ours (were it larger, the stream would be "OK" and our limit a lie);
 * - a gzip inflating to exactly MaxFileSize zero bytes must answer "stream: OK": clamd's
 *   MaxFileSize is no smaller than ours. Were it smaller, the ZIP walk would pass a deflated
 *   member of a size between the two, which clamd cuts at its own MaxFileSize without any
 *   alert (infra/clamd/README.md): the rest of that member would never be scanned;
 * - a CAB header and a 7z signature must answer Intake.Unscannable.*: the signatures that
 *   make clamd name containers it would otherwise cut short silently are loaded;
 * - the EICAR test file deflated in a PDF FlateDecode stream, base64-encoded in a mail
 *   attachment and zlib-compressed in a Flash file must be found (any signature: the test
 *   database and the official one both name EICAR): ScanPDF, ScanMail and ScanSWF are on.
 *   Off, clamd says "stream: OK" for each (a .swf in a ZIP too), and nothing else in the
 *   pipeline looks for malware inside a PDF stream, a text that is a mail or a Flash file (ScanArchive off is seen by the gzip probes, which then answer OK);
 * - a ZIP with an encrypted member must answer Heuristics.Encrypted.Zip: AlertEncrypted or
 *   AlertEncryptedArchive is on. The ZIP walk leaves encrypted members of a ZIP at offset 0
 *   to that alert, and clamd.conf's default for both is "no": such a clamd answers
 *   "stream: OK" for a ZIP whose content it could not read.
 *
 * Cost, measured here (ClamAV 1.4.6, MaxFileSize 1000 MiB): each gzip is ~6.5 MB, built in
 * well under a second, and clamd inflates it in ~2 s (the two run side by side on two of
 * clamd's threads); the container probes take milliseconds.
 */
export interface LimitsProbeResult {
  ok: boolean;
  /** Why the clamd does not behave as configured, one line per failed probe. */
  problems: string[];
  durationMs: number;
}

/** Deflate's fixed-Huffman codes, written LSB first as RFC 1951 3.1.1 says. */
class BitWriter {
  private readonly out: Buffer;
  private pos = 0;
  private bit = 0;
  constructor(capacity: number) {
    this.out = Buffer.alloc(capacity);
  }
  /** Writes `len` bits of `v` LSB first (header fields and extra bits). */
  bits(v: number, len: number): void {
    for (let i = 0; i < len; i++) this.push((v >> i) & 1);
  }
  /** Writes a Huffman code of `len` bits MSB first (RFC 1951: codes are packed starting with the most significant bit). */
  code(v: number, len: number): void {
    for (let i = len - 1; i >= 0; i--) this.push((v >> i) & 1);
  }
  private push(b: number): void {
    if (b) this.out[this.pos]! |= 1 << this.bit;
    if (++this.bit === 8) {
      this.bit = 0;
      this.pos++;
    }
  }
  bytes(): Buffer {
    return this.out.subarray(0, this.pos + (this.bit ? 1 : 0));
  }
}

/**
 * A gzip member (RFC 1952) of `size` zero bytes, built directly: one literal zero, then
 * matches of length 258 at distance 1 (13 bits each with the fixed codes), so a GiB costs
 * ~6.5 MB and no compression work.
 */
export function gzipOfZeros(size: number): Buffer {
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError("size must be a positive integer");
  const matches = Math.floor((size - 1) / 258);
  const tail = (size - 1) % 258;
  const w = new BitWriter(Math.ceil((3 + 8 + matches * 13 + tail * 8 + 7) / 8) + 1);
  w.bits(1, 1); // BFINAL
  w.bits(1, 2); // BTYPE 01: fixed Huffman codes
  w.code(0x30, 8); // literal 0 (literals 0..143 are 0x30 + value, 8 bits)
  for (let i = 0; i < matches; i++) {
    w.code(0xc5, 8); // length code 285 (codes 280..287 are 0xc0 + (code - 280), 8 bits): length 258, no extra bits
    w.code(0, 5); // distance code 0: distance 1
  }
  for (let i = 0; i < tail; i++) w.code(0x30, 8);
  w.code(0, 7); // end of block (code 256: 7 zero bits)
  let crc = 0;
  const zeros = Buffer.alloc(Math.min(size, 16 * 1024 * 1024));
  for (let left = size; left > 0; left -= zeros.length) crc = crc32(left >= zeros.length ? zeros : zeros.subarray(0, left), crc);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(size % 2 ** 32, 4);
  return Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]), w.bytes(), trailer]);
}

/** The 36-byte header of a Microsoft Cabinet (one folder, one file, MSZIP), version 1.3. */
export function cabHeaderProbe(): Buffer {
  const h = Buffer.alloc(36);
  h.write("MSCF", 0, "latin1");
  h.writeUInt32LE(36, 8); // cbCabinet
  h.writeUInt32LE(36, 16); // coffFiles
  h[24] = 3; // versionMinor
  h[25] = 1; // versionMajor
  h.writeUInt16LE(1, 26); // cFolders
  h.writeUInt16LE(1, 28); // cFiles
  return h;
}

/** A 7z signature header (signature, version 0.4, start header of an empty archive). */
export function sevenZipHeaderProbe(): Buffer {
  const h = Buffer.alloc(32);
  Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0, 4]).copy(h);
  h.writeUInt32LE(crc32(h.subarray(12, 32)) >>> 0, 8);
  return h;
}

/** The one answer that proves clamd read all of `body` and found nothing past a limit. */
/** EICAR's test file, from hex halves as infra/clamd/up.sh writes it: the string never sits in the repository. */
function eicar(): Buffer {
  return Buffer.from("58354f2150254041505b345c505a58353428505e2937434329377d24" + "45494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a", "hex");
}

/** A PDF whose one stream is EICAR, deflated: only a clamd that decodes PDF streams finds it. */
export function pdfStreamProbe(): Buffer {
  const data = deflateSync(eicar());
  const head = `%PDF-1.7\n1 0 obj\n<< /Length ${data.length} /Filter /FlateDecode >>\nstream\n`;
  return Buffer.concat([Buffer.from(head, "latin1"), data, Buffer.from("\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n", "latin1")]);
}

/** A compressed Flash file (CWS: signature, version, uncompressed length, zlib) of EICAR. */
export function swfProbe(): Buffer {
  const head = Buffer.from("CWS\x0a\0\0\0\0", "latin1");
  head.writeUInt32LE(eicar().length + 8, 4);
  return Buffer.concat([head, deflateSync(eicar())]);
}

/** A MIME mail with EICAR as a base64 attachment: only a clamd that decodes mail finds it. */
export function mailAttachmentProbe(): Buffer {
  const lines = [
    "From: probe@intake.invalid", "To: probe@intake.invalid", "Subject: intake limits probe", "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="intake-probe"', "", "--intake-probe", "Content-Type: text/plain", "", "probe",
    "--intake-probe", "Content-Type: application/octet-stream", "Content-Transfer-Encoding: base64",
    'Content-Disposition: attachment; filename="probe.bin"', "", eicar().toString("base64"), "--intake-probe--", "",
  ];
  return Buffer.from(lines.join("\r\n"), "latin1");
}

/**
 * A ZIP of one stored member flagged encrypted (traditional PKWARE: a 12-byte encryption
 * header before the data), with its central directory, as zip -e writes one.
 */
export function encryptedZipProbe(): Buffer {
  const name = Buffer.from("probe.txt", "latin1");
  const data = Buffer.from("0123456789abintake limits probe", "latin1"); // encryption header + "ciphertext"
  const crc = crc32(Buffer.from("intake limits probe", "latin1")) >>> 0;
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(20, 4); // version needed
  local.writeUInt16LE(1, 6); // flags: encrypted
  local.writeUInt16LE(0, 8); // stored
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(data.length - 12, 22);
  local.writeUInt16LE(name.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4); // version made by
  central.writeUInt16LE(20, 6);
  central.writeUInt16LE(1, 8);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(data.length - 12, 24);
  central.writeUInt16LE(name.length, 28);
  const cdOffset = local.length + name.length + data.length;
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length + name.length, 12);
  end.writeUInt32LE(cdOffset, 16);
  return Buffer.concat([local, name, data, central, name, end]);
}

async function expectClean(scanner: MalwareScanner, body: Buffer, what: string): Promise<string | null> {
  const r = await scanner.scan(Readable.from([body]));
  if (r.outcome === "clean") return null;
  return `${what}: clamd answered ${JSON.stringify(r.raw || r.outcome)}, expected "stream: OK"`;
}

async function expectInfected(scanner: MalwareScanner, body: Buffer, what: string): Promise<string | null> {
  const r = await scanner.scan(Readable.from([body]));
  if (r.outcome === "infected") return null;
  return `${what}: clamd answered ${JSON.stringify(r.raw || r.outcome)}, expected EICAR FOUND`;
}

async function expectSignature(scanner: MalwareScanner, body: Buffer, prefix: string | string[], what: string): Promise<string | null> {
  const r = await scanner.scan(Readable.from([body]));
  const signature = r.outcome === "clean" ? undefined : r.signature;
  const prefixes = typeof prefix === "string" ? [prefix] : prefix;
  if (signature !== undefined && prefixes.some((p) => signature.startsWith(p))) return null;
  return `${what}: clamd answered ${JSON.stringify(r.raw)}, expected ${prefixes.join("* or ")}*`;
}

/**
 * Runs every probe. Transient failures (clamd down, a reset) throw ScanFailedError from
 * the scanner: they say nothing about clamd's behaviour and the caller tries again later.
 */
export async function probeClamdLimits(scanner: MalwareScanner, limits: { maxFileSize: number }): Promise<LimitsProbeResult> {
  const started = performance.now();
  const problems = (
    await Promise.all([
      expectSignature(scanner, gzipOfZeros(limits.maxFileSize + 1), "Heuristics.Limits.Exceeded.MaxFileSize", `a gzip inflating to MaxFileSize + 1 (${limits.maxFileSize + 1}) bytes (is clamd's MaxFileSize larger than CLAMD_MAX_FILE_SIZE, or AlertExceedsMax off?)`),
      expectClean(scanner, gzipOfZeros(limits.maxFileSize), `a gzip inflating to exactly MaxFileSize (${limits.maxFileSize}) bytes (is clamd's MaxFileSize smaller than CLAMD_MAX_FILE_SIZE?)`),
      // Both CAB signatures match an ordinary cabinet; which one clamd names depends on load
      // order. (Intake.Unscannable.OddCAB itself is not probed: a clamd started before it
      // existed loads it only at its next SelfCheck, and the raw-byte EmbeddedCabCheck
      // covers the top level meanwhile.)
      expectSignature(scanner, cabHeaderProbe(), ["Intake.Unscannable.CAB", "Intake.Unscannable.OddCAB"], "a CAB header (are infra/clamd's Intake.Unscannable signatures loaded?)"),
      expectInfected(scanner, pdfStreamProbe(), "EICAR in a PDF FlateDecode stream (is ScanPDF off?)"),
      expectInfected(scanner, mailAttachmentProbe(), "EICAR in a base64 mail attachment (is ScanMail off?)"),
      expectInfected(scanner, swfProbe(), "EICAR in a compressed Flash file (is ScanSWF off?)"),
      expectSignature(scanner, encryptedZipProbe(), "Heuristics.Encrypted.Zip", "a ZIP with an encrypted member (are AlertEncrypted and AlertEncryptedArchive both off?)"),
      expectSignature(scanner, sevenZipHeaderProbe(), "Intake.Unscannable.7z", "a 7z header (are infra/clamd's Intake.Unscannable signatures loaded?)"),
    ])
  ).filter((p): p is string => p !== null);
  return { ok: problems.length === 0, problems, durationMs: Math.round(performance.now() - started) };
}

/** A scanner that first proves clamd's behaviour (above) and refuses to scan until it has. */
export interface ProbedScanner extends MalwareScanner {
  /**
   * The probe's result: run once, again after a transient failure (never more often than
   * every `retryMs`), again once `recheckMs` have passed since it ran, and again after a
   * scan lost clamd. Throws ScanFailedError while clamd cannot be asked.
   */
  limitsProbe(): Promise<LimitsProbeResult>;
}

/** Failures that mean clamd went away: the one that answers next may be another daemon. */
const CLAMD_LOST = new Set(["connect", "connection", "empty_reply"]);

/**
 * Why re-check at all: clamd can be restarted under a running worker with another
 * clamd.conf (a hand edit, a package upgrade's default config), and a pass proved only
 * what the daemon of that moment did. A restart shows as a lost connection when a scan is
 * in flight or starts while clamd is down; an idle restart shows nothing, hence the period
 * too (default 10 minutes: ~4 s of one clamd thread at 1000 MiB, under 1%).
 */
export function withLimitsProbe(scanner: MalwareScanner, limits: { maxFileSize: number }, opts: { retryMs?: number; recheckMs?: number } = {}): ProbedScanner {
  const retryMs = opts.retryMs ?? 5_000;
  const recheckMs = opts.recheckMs ?? 600_000;
  let result: Promise<LimitsProbeResult> | null = null;
  let startedAt = 0;
  let failedAt = 0;
  const limitsProbe = (): Promise<LimitsProbeResult> => {
    const now = Date.now();
    const fresh = result && (failedAt ? now - failedAt < retryMs : now - startedAt < recheckMs);
    if (fresh) return result!;
    failedAt = 0;
    startedAt = now;
    const run: Promise<LimitsProbeResult> = probeClamdLimits(scanner, limits).catch((err: unknown) => {
      if (result === run) failedAt = Date.now();
      throw err;
    });
    result = run;
    return run;
  };
  return {
    limitsProbe,
    ping: () => scanner.ping(),
    version: () => scanner.version(),
    async scan(body, scanOpts) {
      let probe: LimitsProbeResult;
      try {
        probe = await limitsProbe();
      } catch (err) {
        destroyBody(body);
        throw err;
      }
      if (!probe.ok) {
        destroyBody(body);
        throw new ScanFailedError("misconfigured", `clamd does not behave as configured, so no scan counts: ${probe.problems.join("; ")}`);
      }
      try {
        return await scanner.scan(body, scanOpts);
      } catch (err) {
        if (err instanceof ScanFailedError && CLAMD_LOST.has(err.kind)) result = null;
        throw err;
      }
    },
  };
}

/** The MalwareScanner contract: on failure the body is closed. */
function destroyBody(body: ScanBody): void {
  const s = body as { destroy?: () => void; return?: () => unknown };
  if (typeof s.destroy === "function") s.destroy();
  else if (typeof s.return === "function") void Promise.resolve(s.return()).catch(() => {});
}
