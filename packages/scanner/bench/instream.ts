/**
 * Raw INSTREAM throughput and client memory: streams N MiB of random data (generated on
 * the fly, never held whole) through createClamdScanner and prints MB/s and peak RSS.
 *
 *   node packages/scanner/bench/instream.ts [MiB=200] [port=3310]
 */
import { randomBytes } from "node:crypto";
import { createClamdScanner } from "../src/index.ts";

const mib = Number(process.argv[2] ?? 200);
const port = Number(process.argv[3] ?? 3310);
const total = mib * 1024 * 1024;
const chunk = 1024 * 1024;

let peakRss = process.memoryUsage().rss;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);

async function* body() {
  for (let sent = 0; sent < total; sent += chunk) yield randomBytes(Math.min(chunk, total - sent));
}

const scanner = createClamdScanner({ port });
const rssBefore = process.memoryUsage().rss;
const t0 = performance.now();
const report = await scanner.scan(body());
const seconds = (performance.now() - t0) / 1000;
clearInterval(sampler);
const mb = total / 1e6;
console.log(
  JSON.stringify({
    mib,
    outcome: report.outcome,
    raw: report.raw,
    bytes: report.bytes,
    seconds: Number(seconds.toFixed(2)),
    MBps: Number((mb / seconds).toFixed(1)),
    rssBeforeMiB: Math.round(rssBefore / 2 ** 20),
    peakRssMiB: Math.round(peakRss / 2 ** 20),
  }),
);
