import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deflateSync, gzipSync } from "node:zlib";
import { eicar } from "./fixtures.ts";

/**
 * Real files of every container format clamd unpacks that Debian's tools can build here
 * (gzip and zlib from Node; bzip2, xz, tar, 7z, gcab, arj from infra/bin/provision.sh's
 * setup), each holding a payload of `zeros` zero bytes followed by EICAR. Zeros compress
 * ~1000:1, so a payload far past a test clamd's MaxFileSize is a file of a few kilobytes.
 */
export const payload = (zeros: number): Buffer => Buffer.concat([Buffer.alloc(zeros), eicar()]);

function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "intake-containers-"));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const run = (cmd: string, args: string[], cwd: string, input?: Buffer): Buffer =>
  execFileSync(cmd, args, { cwd, input, stdio: ["pipe", "pipe", "pipe"], maxBuffer: 256 * 1024 * 1024 });

/** Members written to a temp dir, then `tool` builds `out` from them; returns the archive's bytes. */
function archive(members: Record<string, Buffer>, build: (dir: string, names: string[]) => string): Buffer {
  return withTempDir((dir) => {
    for (const [name, data] of Object.entries(members)) writeFileSync(join(dir, name), data);
    const out = build(dir, Object.keys(members));
    return readFileSync(join(dir, out));
  });
}

export const gz = (data: Buffer): Buffer => gzipSync(data, { level: 9 });
export const bz2 = (data: Buffer): Buffer => withTempDir((dir) => run("bzip2", ["-9c"], dir, data));
export const xz = (data: Buffer): Buffer => withTempDir((dir) => run("xz", ["-9c"], dir, data));

export function tar(members: Record<string, Buffer>): Buffer {
  return archive(members, (dir, names) => (run("tar", ["-cf", "out.tar", ...names], dir), "out.tar"));
}

/** 7z with the given coder: LZMA (7z's default, which clamd decodes), Deflate or BZip2 (which it does not). */
export function sevenZip(members: Record<string, Buffer>, coder: "LZMA" | "Deflate" | "BZip2" = "LZMA"): Buffer {
  return archive(members, (dir, names) => (run("7z", ["a", "-bso0", "-bsp0", `-m0=${coder}`, "out.7z", ...names], dir), "out.7z"));
}

/** Microsoft Cabinet, one MSZIP-compressed folder (gcab -z). */
export function cab(members: Record<string, Buffer>): Buffer {
  return archive(members, (dir, names) => (run("gcab", ["-c", "-z", "out.cab", ...names], dir), "out.cab"));
}

export function arj(members: Record<string, Buffer>): Buffer {
  return archive(members, (dir, names) => (run("arj", ["a", "-y", "out.arj", ...names], dir), "out.arj"));
}

/** A PDF whose one content stream is FlateDecode-compressed `data`. */
export function pdfFlate(data: Buffer): Buffer {
  const z = deflateSync(data, { level: 9 });
  return Buffer.concat([
    Buffer.from(`%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n3 0 obj\n<< /Length ${z.length} /Filter /FlateDecode >>\nstream\n`, "latin1"),
    z,
    Buffer.from("\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n", "latin1"),
  ]);
}

/** A PDF with `data` as one unfiltered stream (how a PDF carries arbitrary bytes). */
export function pdfRaw(data: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n3 0 obj\n<< /Length ${data.length} >>\nstream\n`, "latin1"),
    data,
    Buffer.from("\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n", "latin1"),
  ]);
}

/** Compressed Flash (CWS): "CWS", version, uncompressed length, zlib stream. */
export function swf(data: Buffer): Buffer {
  const head = Buffer.from("CWS\x0a\0\0\0\0", "latin1");
  head.writeUInt32LE(data.length + 8, 4);
  return Buffer.concat([head, deflateSync(data, { level: 9 })]);
}

/** An RFC 5322 message with `data` as a base64 attachment (MIME multipart/mixed). */
export function mail(data: Buffer, filename = "report.bin"): Buffer {
  const b64 = data.toString("base64").replace(/.{1,76}/g, "$&\r\n");
  return Buffer.from(
    "From: sender@example.com\r\nTo: intake@example.com\r\nSubject: report\r\nMIME-Version: 1.0\r\n" +
      'Content-Type: multipart/mixed; boundary="b0und"\r\n\r\n--b0und\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n' +
      `--b0und\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="${filename}"\r\n\r\n` +
      `${b64}--b0und--\r\n`,
    "latin1",
  );
}

/** uuencoded `data` (begin 644 name ... end), 45 bytes a line. */
export function uuencode(data: Buffer, name = "report.bin"): Buffer {
  const ch = (v: number) => String.fromCharCode(v === 0 ? 0x60 : v + 32);
  let out = `begin 644 ${name}\n`;
  for (let i = 0; i < data.length; i += 45) {
    const line = data.subarray(i, i + 45);
    out += ch(line.length);
    for (let j = 0; j < line.length; j += 3) {
      const a = line[j]!, b = line[j + 1] ?? 0, c = line[j + 2] ?? 0;
      out += ch(a >> 2) + ch(((a & 3) << 4) | (b >> 4)) + ch(((b & 15) << 2) | (c >> 6)) + ch(c & 63);
    }
    out += "\n";
  }
  return Buffer.from(`${out}${ch(0)}\nend\n`, "latin1");
}
