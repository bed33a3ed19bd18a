import { randomBytes } from "node:crypto";
import { eicar, zip } from "../../pipeline/fixtures.ts";

/**
 * What the clients of a scale-out run send: mixed sizes from 4 KiB to 2 MiB (log-uniform, so
 * most are small, as real traffic is), one in a hundred of 6-12 MiB (multipart above the
 * run's 5 MiB threshold, and past ONE_PASS_MAX_BYTES: the staged inspect -> scan -> finalize
 * path), and one in twenty a ZIP holding EICAR beside random bytes (unique bytes each, so
 * the verdict cache never answers for clamd) that must end quarantined as malware.
 *
 * Half the single-PUT uploads go through the SDK (PUT, then POST .../complete), the other
 * half are a plain presigned PUT with no complete call: for those the storage event
 * (S3 -> SQS -> ingest) is the only way the pipeline hears of them, so a killed ingest that
 * loses a message would lose the upload.
 */
export type UploadKind = "zip" | "text" | "eicar";
export type ArrivalPath = "sdk" | "put-only";

export interface PlannedUpload {
  index: number;
  kind: UploadKind;
  size: number;
  via: ArrivalPath;
  large: boolean;
}

const KiB = 1024;
const MiB = 1024 * KiB;

/** A small deterministic generator (mulberry32): the same plan for the same seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function planUploads(count: number, seed = 13): PlannedUpload[] {
  const rnd = prng(seed);
  return Array.from({ length: count }, (_, index) => {
    const large = index % 100 === 50;
    // Large ones cycle through 6-7, 9-10 and 11-12 MiB: some under the one-pass bound, some over.
    const r = rnd();
    const size = large ? Math.round((6 + 2.5 * (Math.floor(index / 100) % 3) + r) * MiB) : Math.round(4 * KiB * Math.pow(512, r)); // 4 KiB .. 2 MiB
    const kind: UploadKind = index % 20 === 7 ? "eicar" : index % 2 === 0 ? "zip" : "text";
    // Multipart needs the complete call (storage sends no event before it).
    const via: ArrivalPath = large || index % 4 < 2 ? "sdk" : "put-only";
    return { index, kind, size, via, large };
  });
}

/** The bytes of one planned upload, made when it is sent (2,000 of them would not fit in memory at once as cheaply). */
export function bytesOf(p: PlannedUpload): { bytes: Buffer; contentType: string; filename: string } {
  switch (p.kind) {
    case "zip":
      return { bytes: zip([{ name: `payload-${p.index}.bin`, data: randomBytes(Math.max(1, p.size - 120)) }]), contentType: "application/zip", filename: `f${p.index}.zip` };
    case "text":
      // base64 of random bytes (valid UTF-8, incompressible) after a line of prose: bare
      // random base64 now and then matches a binary format's magic (seen: 'G' at offsets 0
      // and 188 sniffed as MPEG-TS, rightly quarantined as type_mismatch).
      return { bytes: Buffer.concat([Buffer.from(`Intake scale-out text upload ${p.index}\n`), Buffer.from(randomBytes(Math.ceil((p.size * 3) / 4)).toString("base64"))]).subarray(0, p.size), contentType: "text/plain", filename: `f${p.index}.txt` };
    case "eicar":
      return {
        bytes: zip([
          { name: "eicar.com", data: eicar() },
          { name: `padding-${p.index}.bin`, data: randomBytes(Math.max(1, p.size - 300)) },
        ]),
        contentType: "application/zip",
        filename: `f${p.index}.zip`,
      };
  }
}
