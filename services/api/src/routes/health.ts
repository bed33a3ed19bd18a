import type { Router } from "@koa/router";
import type { PipelineHealthReport } from "@intake/pipeline";
import { TEST_SIGNATURES_WARNING } from "@intake/scanner";

/**
 * Liveness and readiness. /healthz answers while the process can serve at all (a
 * supervisor restarts it otherwise); /readyz checks every dependency a request may need,
 * so a load balancer stops sending traffic while one is down (503) instead of the API
 * answering 503 request by request.
 */
export interface Readiness {
  /** Each check resolves when its dependency answers; a rejection or `false` means down. */
  checks: Record<string, () => Promise<unknown>>;
  /** clamd loaded only the generated test database: no real malware protection. */
  testSignaturesOnly(): boolean;
  /** The pipeline's health facts (@intake/pipeline health.ts), shown as fields of /readyz. */
  health?: { report(): Promise<PipelineHealthReport> };
  timeoutMs?: number;
}


interface CheckResult {
  status: "up" | "down";
  latencyMs: number;
  error?: string;
}

export function mountHealthRoutes(router: Router, readiness: Readiness): void {
  router.get("/healthz", (ctx) => {
    ctx.set("Cache-Control", "no-store");
    ctx.body = { status: "ok" };
  });

  router.get("/readyz", async (ctx) => {
    const timeoutMs = readiness.timeoutMs ?? 2000;
    const names = Object.keys(readiness.checks);
    const [results, health] = await Promise.all([Promise.all(names.map((n) => runCheck(readiness.checks[n]!, timeoutMs))), readiness.health?.report()]);
    const checks = Object.fromEntries(names.map((n, i) => [n, results[i]!]));
    const ready = results.every((r) => r.status === "up");
    // After the checks: the clamd check is what learns which database clamd loaded.
    const testSignaturesOnly = readiness.testSignaturesOnly();
    ctx.set("Cache-Control", "no-store");
    ctx.status = ready ? 200 : 503;
    ctx.body = {
      status: ready ? "ready" : "not_ready",
      checks,
      scanner: testSignaturesOnly ? { testSignaturesOnly, warning: TEST_SIGNATURES_WARNING } : { testSignaturesOnly },
      ...(health ? { pipeline: publicFacts(health) } : {}),
    };
  });
}

/**
 * The health facts on /readyz. None of them changes the status: readiness says whether
 * this API process can serve requests, and a stale signature database, test signatures,
 * dead letters, a receive lag or a stuck upload are conditions of the pipeline that taking
 * the API out of its load balancer would not cure. Every API process reads the same facts,
 * so failing readiness on one would take all of them out at once and turn a degraded
 * pipeline into an outage of uploads that would otherwise wait safely (nothing is promoted
 * without a scan). They are flagged here, on the health page and in the alert rules
 * instead. clamd down already fails readiness through its own check above.
 * /readyz answers anyone: the oldest upload is shown by status and age, its id and tenant
 * (and the dead-letter queue's URL) only on the operators' page (/v1/admin/health).
 */
function publicFacts(r: PipelineHealthReport) {
  const oldest = r.processing.oldest && { status: r.processing.oldest.status, since: r.processing.oldest.since, ageSeconds: r.processing.oldest.ageSeconds, stuck: r.processing.oldest.stuck };
  // The dead-letter queue's URL names the cloud account: the operators' page shows it.
  const deadLetters = r.sqs.deadLetters && { depth: r.sqs.deadLetters.depth, inFlight: r.sqs.deadLetters.inFlight };
  return { ...r, sqs: { ...r.sqs, deadLetters }, processing: { ...r.processing, oldest } };
}

async function runCheck(check: () => Promise<unknown>, timeoutMs: number): Promise<CheckResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const outcome = await Promise.race([
      check(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    const latencyMs = Math.round(performance.now() - started);
    return outcome === false ? { status: "down", latencyMs, error: "check failed" } : { status: "up", latencyMs };
  } catch (err) {
    // Only a short reason: connection errors can quote URLs with credentials in them.
    const e = err as { code?: string; name?: string; message?: string };
    const reason = e.code ?? (e.message && e.message.length < 120 && !/[?@]/.test(e.message) ? e.message : e.name) ?? "error";
    return { status: "down", latencyMs: Math.round(performance.now() - started), error: String(reason) };
  } finally {
    clearTimeout(timer);
  }
}
