import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { COLLECT_TIMEOUT_MS, readClamd, readHealth, readQueues, sharedReading, withinTime, type ClamdReading, type HealthReading, type QueueReading } from "./collectors.ts";
import { HOLD_REASONS, METRICS, QUEUE_STATES, REAPER_ACTIONS, RESCAN_ITEM_OUTCOMES, STAGE_NAMES, STAGE_PATHS, UPLOAD_KINDS, VERDICT_OUTCOMES, VERDICT_REASONS, WEBHOOK_OUTCOMES, type MetricDefinition, type MetricKey } from "./definitions.ts";
import { pipelineObserver, type PipelineObserver } from "./pipeline-observer.ts";
import type { ScrapeSources } from "./sources.ts";

export interface MetricsOptions {
  process: "api" | "worker";
  /** config.env: production, development or test. */
  env: string;
  /** What the scrape-time gauges read; absent sources leave their gauges empty. */
  sources?: ScrapeSources;
  /** Diagnostics for failed scrape-time readings (never on the hot path). */
  onCollectError?: (collector: string, err: unknown) => void;
}

/** What the API's upload service reports (services/api upload-service.ts UploadMetrics). */
export interface UploadsObserver {
  uploadCreated(kind: "single" | "multipart"): void;
}

/** What the webhooks package's delivery worker reports (its onDelivery hook). */
export interface WebhooksObserver {
  delivery(outcome: string, latencyMs: number): void;
}

export interface IntakeMetrics {
  /** The process's registry: Intake's metrics and Node's default process metrics. */
  readonly registry: Registry;
  /** Prometheus text exposition format 0.0.4. */
  readonly contentType: string;
  /** The exposition text; reads the scrape-time gauges first. */
  scrape(): Promise<string>;
  readonly uploads: UploadsObserver;
  readonly pipeline: PipelineObserver;
  readonly webhooks: WebhooksObserver;
  /** Every metric (family) name this registry exports, process metrics included. */
  names(): string[];
}

/**
 * Node's default metrics (CPU, memory, event loop lag, GC, handles) describe the process,
 * not one registry, and prom-client's collectors install observers that cannot be removed
 * (a GC PerformanceObserver, an event-loop delay monitor): registered once per process and
 * shared by every registry made here (tests start several APIs and workers in one process).
 */
let processRegistry: Registry | null = null;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

type Metric = Counter<string> | Gauge<string> | Histogram<string>;

/** A registry for one API or worker process, with every metric of METRICS and hooks to feed them. */
export function createMetrics(o: MetricsOptions): IntakeMetrics {
  const own = new Registry();
  const sources = o.sources ?? {};
  const m = {} as Record<MetricKey, Metric>;
  const collectors = scrapeCollectors(sources, (collector, err) => {
    (m.collectorErrors as Counter<string>).inc({ collector });
    o.onCollectError?.(collector, err);
  });

  for (const [key, def] of Object.entries(METRICS) as [MetricKey, MetricDefinition][]) {
    if (!def.exportedBy.includes(o.process)) continue;
    if (def.scraped && !collectors[key]) continue; // nothing to read it from here
    m[key] = build(def, own, collectors[key]);
  }
  const counter = (k: MetricKey) => m[k] as Counter<string>;
  const gauge = (k: MetricKey) => m[k] as Gauge<string>;
  const histogram = (k: MetricKey) => m[k] as Histogram<string>;

  // Known label values start at 0, so rate() and increase() see a series from the first
  // scrape on (a counter born at 1 hides its first increment) and dashboards show zeros.
  gauge("processInfo").set({ process: o.process, env: o.env }, 1);
  // A failed reading is counted while the scrape that saw it is being written: it shows
  // from the next scrape on (the gauges themselves show the failure at once).
  for (const collector of ["queues", "clamd", "health"] as const) if (sources[collector]) counter("collectorErrors").inc({ collector }, 0);
  if (o.process === "api") for (const kind of UPLOAD_KINDS) counter("uploadsCreated").inc({ kind }, 0);
  if (o.process === "worker") {
    for (const reason of VERDICT_REASONS) counter("verdicts").inc({ reason }, 0);
    counter("rechecks").inc({ outcome: "verified", reason: "clean" }, 0);
    for (const reason of VERDICT_REASONS) if (reason !== "clean") counter("rechecks").inc({ outcome: "quarantined", reason }, 0);
    for (const action of REAPER_ACTIONS) counter("reaperActions").inc({ action }, 0);
    for (const reason of HOLD_REASONS) counter("verdictsHeld").inc({ reason }, 0);
    counter("signatureChanges").inc(0);
    for (const result of ["hit_clean", "hit_malware", "miss"]) counter("verdictCacheLookups").inc({ outcome: result }, 0);
    for (const outcome of RESCAN_ITEM_OUTCOMES) counter("rescanItems").inc({ outcome }, 0);
    counter("rescanBytes").inc(0);
    for (const outcome of WEBHOOK_OUTCOMES) {
      if (outcome === "other") continue;
      counter("webhookDeliveries").inc({ outcome }, 0);
      histogram("webhookLatency").zero({ outcome });
    }
    // Histograms too: rate() over a series born with its first observation sees no increase.
    for (const outcome of VERDICT_OUTCOMES) for (const h of ["uploadToVerdict", "uploadToFinal"] as const) histogram(h).zero({ outcome });
    for (const stage of STAGE_NAMES) for (const path of STAGE_PATHS) histogram("stageDuration").zero({ stage, path });
    // No pass yet: no sample (a 0 would read as "last pass in 1970" on a worker without the role).
    unset(gauge("reaperLastPass"));
    unset(gauge("reaperInProgress"));
  }

  const registry = Registry.merge([processMetrics(), own]);
  const webhookOutcomes = new Set<string>(WEBHOOK_OUTCOMES);
  return {
    registry,
    contentType: registry.contentType,
    scrape: () => registry.metrics(),
    uploads: { uploadCreated: (kind) => counter("uploadsCreated")?.inc({ kind }) },
    pipeline: o.process === "worker" ? pipelineObserver({ verdicts: counter("verdicts"), rechecks: counter("rechecks"), uploadToVerdict: histogram("uploadToVerdict"), uploadToFinal: histogram("uploadToFinal"), stageDuration: histogram("stageDuration"), queueWait: histogram("queueWait"), jobs: counter("jobs"), storageEventLag: histogram("storageEventLag"), reaperActions: counter("reaperActions"), reaperLastPass: gauge("reaperLastPass"), reaperInProgress: gauge("reaperInProgress"), verdictsHeld: counter("verdictsHeld"), signatureChanges: counter("signatureChanges"), verdictCacheLookups: counter("verdictCacheLookups"), rescanItems: counter("rescanItems"), rescanBytes: counter("rescanBytes") }) : pipelineObserver(null),
    webhooks: {
      delivery: (outcome, latencyMs) => {
        const label = webhookOutcomes.has(outcome) ? outcome : "other";
        counter("webhookDeliveries")?.inc({ outcome: label });
        histogram("webhookLatency")?.observe({ outcome: label }, latencyMs / 1000);
      },
    },
    names: () => registry.getMetricsAsArray().map((x) => (x as unknown as { name: string }).name),
  };
}

function build(def: MetricDefinition, registry: Registry, collect?: (this: Gauge<string>) => Promise<void>): Metric {
  const common = { name: def.name, help: def.help, labelNames: [...def.labelNames], registers: [registry] };
  switch (def.type) {
    case "counter":
      return new Counter(common);
    case "histogram":
      return new Histogram({ ...common, buckets: [...(def.buckets ?? [])] });
    case "gauge":
      return new Gauge(collect ? { ...common, collect } : common);
  }
}

/** The collect() of each scrape-time gauge, over readings shared by the gauges of one scrape. */
function scrapeCollectors(s: ScrapeSources, failed: (collector: string, err: unknown) => void): Partial<Record<MetricKey, (this: Gauge<string>) => Promise<void>>> {
  const guarded = <T>(name: string, read: () => Promise<T>) =>
    sharedReading(async (): Promise<T | null> => {
      try {
        return await withinTime(read(), COLLECT_TIMEOUT_MS, name);
      } catch (err) {
        failed(name, err);
        return null;
      }
    });
  const out: Partial<Record<MetricKey, (this: Gauge<string>) => Promise<void>>> = {};

  if (s.queues) {
    const queues = s.queues;
    const read = guarded<QueueReading[]>("queues", () => readQueues(queues));
    out.queueJobs = async function () {
      const r = await read();
      this.reset(); // a failed reading shows no depth rather than a stale one
      for (const q of r ?? []) for (const state of QUEUE_STATES) this.set({ queue: q.queue, state }, q.counts[state]);
    };
    out.queueOldestWaiting = async function () {
      const r = await read();
      this.reset();
      for (const q of r ?? []) this.set({ queue: q.queue }, q.oldestWaitingSeconds);
    };
    out.redisUp = async function () {
      this.set((await read()) ? 1 : 0);
    };
  }

  if (s.clamd) {
    const clamd = s.clamd;
    const read = guarded<ClamdReading>("clamd", () => readClamd(clamd));
    const show = (pick: (r: ClamdReading) => number | undefined) =>
      async function (this: Gauge<string>) {
        const value = pick((await read()) ?? { up: false });
        if (value === undefined) unset(this);
        else this.set(value);
      };
    out.clamdUp = show((r) => (r.up ? 1 : 0));
    out.signatureAge = show((r) => r.signatureAgeSeconds);
    out.signatureVersion = show((r) => r.signatureVersion);
    out.testSignaturesOnly = show((r) => (r.testSignaturesOnly === undefined ? undefined : Number(r.testSignaturesOnly)));
  }
  if (s.signatureMaxAgeHours !== undefined) {
    const seconds = s.signatureMaxAgeHours * 3600;
    out.signatureMaxAge = async function () {
      this.set(seconds);
    };
  }

  if (s.health) {
    const health = s.health;
    const read = guarded<HealthReading>("health", () => readHealth(health));
    out.deadLetterMessages = async function () {
      const r = await read();
      if (r?.deadLetterDepth == null) unset(this);
      else this.set(r.deadLetterDepth);
    };
    out.oldestIdle = async function () {
      const r = await read();
      if (r?.oldestInProcessing) this.set(r.oldestInProcessing.ageSeconds);
      else unset(this);
    };
    out.heldUploads = async function () {
      const r = await read();
      if (r?.held) this.set(r.held.count);
      else unset(this);
    };
    out.heldOldest = async function () {
      const r = await read();
      if (r?.held) this.set(r.held.oldestSeconds);
      else unset(this);
    };
    const stuckAfter = health.stuckAfterSeconds;
    out.stuckAfter = async function () {
      this.set(stuckAfter);
    };
  }
  return out;
}

/**
 * No sample at all for a gauge without labels (prom-client's reset() leaves a 0): an
 * unknown signature age or queue depth must not read as a fresh database or an empty DLQ.
 */
function unset(g: Gauge<string>): void {
  g.remove({});
}
