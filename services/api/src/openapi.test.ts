import { describe, expect, it } from "vitest";
import { loadConfig, createLogger } from "@intake/runtime";
import type { ObjectStore } from "@intake/storage";
import { createRouter, type ApiDeps } from "./app.ts";
import { openApiDocument } from "./openapi.ts";

/** Router stack -> "METHOD /path/{param}" (HEAD is Koa's automatic twin of GET). */
function routerOperations(): string[] {
  // The development demo page (GET /demo, POST /demo/session) is a page, not the API: off here.
  const config = loadConfig({ S3_BUCKET: "intake-test", DEMO_PAGE: "false" });
  // Nothing is called here: the router is built only to read its stack.
  const unused = () => {
    throw new Error("not called in this test");
  };
  const deps: ApiDeps = {
    config,
    logger: createLogger({ level: "silent", name: "test" }),
    uploads: { create: unused, get: unused, list: unused, transition: unused },
    apiKeys: { authenticate: unused },
    uploadSessions: { create: unused, authenticate: unused, revoke: unused, claim: unused, remainingBytes: unused, owns: unused },
    rateLimits: { admit: unused, admitKey: unused, reserveAttempt: unused, releaseAttempt: unused, recordFailure: unused },
    store: {} as ObjectStore,
    processing: { startChecks: unused },
    readiness: { checks: {}, testSignaturesOnly: () => false },
  };
  const ops = new Set<string>();
  for (const layer of createRouter(deps).stack) {
    for (const method of layer.methods) {
      if (method === "HEAD") continue;
      ops.add(`${method} ${String(layer.path).replace(/:([A-Za-z0-9_]+)/g, "{$1}")}`);
    }
  }
  return [...ops].sort();
}

function documentedOperations(): string[] {
  const doc = openApiDocument({ allowedTypes: ["image/png"], maxSize: 10, multipartThreshold: 5, bodyLimitBytes: 1024 }) as { paths: Record<string, Record<string, unknown>> };
  const ops: string[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of Object.keys(item)) ops.push(`${method.toUpperCase()} ${path}`);
  }
  return ops.sort();
}

// Paths and methods only here; that every real response has a documented status and a
// body its schema accepts is test/api/openapi-responses.test.ts (against the running API).
describe("OpenAPI document", () => {
  it("describes exactly the routes the router serves", () => {
    const routes = routerOperations();
    expect(routes.length).toBeGreaterThanOrEqual(11);
    expect(documentedOperations()).toEqual(routes);
  });

  it("is OpenAPI 3.1 with an operation summary and responses everywhere", () => {
    const doc = openApiDocument({ allowedTypes: ["image/png"], maxSize: 10, multipartThreshold: 5, bodyLimitBytes: 1024 }) as { openapi: string; paths: Record<string, Record<string, { summary?: string; responses?: object }>> };
    expect(doc.openapi).toBe("3.1.0");
    for (const item of Object.values(doc.paths)) {
      for (const op of Object.values(item)) {
        expect(op.summary).toBeTruthy();
        expect(Object.keys(op.responses ?? {}).length).toBeGreaterThan(0);
      }
    }
  });
});
