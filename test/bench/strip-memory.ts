/**
 * Peak RSS of image metadata stripping (packages/pipeline/src/image-stripping.ts) on a large
 * photo: an 8000x6000 (48 MP) JPEG of camera-like noise, with EXIF orientation 6 (the worst
 * case: a 90-degree turn needs the whole decoded image), GPS and a camera serial, streamed
 * from a file (standing in for the GET) through ImageStripper into a discarding sink, in a
 * fresh process with the worker's settings (no libvips cache, one libvips thread, one image
 * at a time). The process's own VmHWM (peak RSS) is reported, with the baseline after
 * loading sharp.
 *
 *   node test/bench/strip-memory.ts [--width 8000 --height 6000] [--orientation 6|1] [--format jpeg|png|webp]
 */
import { createReadStream, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import sharp from "sharp";
import { ImageStripper } from "@intake/pipeline";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const width = Number(arg("width", "8000"));
const height = Number(arg("height", "6000"));
const orientation = Number(arg("orientation", "6"));
const format = arg("format", "jpeg") as "jpeg" | "png" | "webp";
const hwmMiB = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))![1]) / 1024;

const dir = mkdtempSync(join(tmpdir(), "intake-strip-bench-"));
const file = join(dir, `photo.${format}`);
try {
  // Made in a child so the generator's own memory is not counted here.
  const { execFileSync } = await import("node:child_process");
  execFileSync(process.execPath, ["--input-type=module", "-e", `
    import sharp from "sharp";
    const img = sharp({ create: { width: ${width}, height: ${height}, channels: 3, noise: { type: "gaussian", mean: 128, sigma: 40 } } }).blur(1.2)
      .withExif({ IFD0: { Make: "Acme", Model: "Xenon 7" }, IFD2: { BodySerialNumber: "SN-1" }, IFD3: { GPSLatitudeRef: "N", GPSLatitude: "48/1 51/1 2970/100" } })
      .withMetadata({ orientation: ${orientation} }).withIccProfile("p3");
    await img.${format}(${format === "jpeg" ? "{ quality: 90 }" : "{}"}).toFile(${JSON.stringify(file)});
  `], { stdio: "inherit", cwd: process.cwd() });
  const size = statSync(file).size;
  const stripper = await ImageStripper.create({ maxPixels: 100_000_000, maxBytes: 256 * 1024 * 1024, concurrency: 1 });
  const baseline = hwmMiB();
  let out = 0;
  const sink = new PassThrough();
  sink.on("data", (c: Buffer) => (out += c.length));
  const t0 = performance.now();
  const result = await stripper.strip(createReadStream(file), size, format, sink);
  const ms = performance.now() - t0;
  const meta = result.kind === "stripped" ? null : result.verdict;
  console.log(JSON.stringify({ sharp: sharp.versions.sharp, vips: sharp.versions.vips, node: process.version, width, height, orientation, format, inputMiB: +(size / 2 ** 20).toFixed(1), outputMiB: +(out / 2 ** 20).toFixed(1), ms: Math.round(ms), outcome: result.kind, refusal: meta, baselineRssMiB: Math.round(baseline), peakRssMiB: Math.round(hwmMiB()) }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
