import type { UploadProgress } from "../progress.ts";
import { bytes, rate } from "./format.ts";
import { TtyBars } from "./tty-bars.ts";

/** What `put` says of one file once it is done: the --json line, field for field. */
export interface FileResult {
  file: string;
  id?: string;
  /** uploaded (no --wait), verified, quarantined, refused (4xx) or failed (transport, 5xx). */
  status: string;
  /** Why it was quarantined, or the error code. */
  reason?: string;
  message?: string;
  bytes: number;
  sha256?: string;
}

/** Where `put` reports its events: a TTY gets bars, a pipe gets lines, --json gets objects. */
export interface PutReporter {
  start(file: string, size: number): void;
  progress(file: string, p: UploadProgress): void;
  uploaded(file: string, id: string): void;
  done(result: FileResult): void;
  close(): void;
}

export type OutputMode = "tty" | "plain" | "json";

export function outputMode(o: { json?: boolean }, out: NodeJS.WriteStream = process.stdout): OutputMode {
  return o.json ? "json" : out.isTTY ? "tty" : "plain";
}

export function putReporter(mode: OutputMode, out: NodeJS.WriteStream = process.stdout): PutReporter {
  if (mode === "json") return jsonReporter(out);
  if (mode === "tty") return ttyReporter(out);
  return plainReporter(out);
}

const outcome = (r: FileResult): string => {
  if (r.status === "quarantined") return `quarantined (${r.reason ?? "no reason given"})`;
  if (r.status === "refused" || r.status === "failed") return `${r.status}: ${r.message ?? r.reason}${r.reason ? ` [${r.reason}]` : ""}`;
  return r.status;
};

function jsonReporter(out: NodeJS.WriteStream): PutReporter {
  return {
    start: () => undefined,
    progress: () => undefined,
    uploaded: () => undefined,
    done: (r) => void out.write(`${JSON.stringify(r)}\n`),
    close: () => undefined,
  };
}

/** One line per event and no escape codes; progress at most every 10% so logs stay short. */
function plainReporter(out: NodeJS.WriteStream): PutReporter {
  const lastTenth = new Map<string, number>();
  const line = (s: string) => void out.write(`${s}\n`);
  return {
    start: (file, size) => line(`${file}: uploading ${bytes(size)}`),
    progress: (file, p) => {
      const tenth = p.totalBytes > 0 ? Math.floor((p.bytesSent / p.totalBytes) * 10) : 10;
      if (tenth <= (lastTenth.get(file) ?? 0)) return;
      lastTenth.set(file, tenth);
      line(`${file}: ${bytes(p.bytesSent)} of ${bytes(p.totalBytes)} sent (${tenth * 10}%, ${rate(p.rate)})`);
    },
    uploaded: (file, id) => line(`${file}: uploaded as ${id}`),
    done: (r) => line(`${r.file}: ${outcome(r)}${r.id ? ` ${r.id}` : ""}${r.sha256 && r.status === "verified" ? ` sha256 ${r.sha256}` : ""}`),
    close: () => undefined,
  };
}

function ttyReporter(out: NodeJS.WriteStream): PutReporter {
  const bars = new TtyBars(out);
  const rows = new Map<string, number>();
  return {
    start: (file, size) => void rows.set(file, bars.add(file, size)),
    progress: (file, p) => bars.update(rows.get(file)!, p.bytesSent, p.rate),
    uploaded: (file, id) => bars.finish(rows.get(file)!, `uploaded ${id}, waiting for the verdict…`),
    done: (r) => {
      const i = rows.get(r.file) ?? bars.add(r.file, r.bytes);
      bars.finish(i, `${outcome(r)}${r.id ? ` ${r.id}` : ""}`);
    },
    close: () => bars.stop(),
  };
}
