import type { Router } from "@koa/router";
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
    const results = await Promise.all(names.map((n) => runCheck(readiness.checks[n]!, timeoutMs)));
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
    };
  });
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
