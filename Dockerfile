# syntax=docker/dockerfile:1
# One image for every Intake process; the command picks the program (README "Deploying"):
#   API       node services/api/src/main.ts                                   (the default)
#   worker    node --max-semi-space-size=2 services/worker/src/main.ts        with WORKER_ROLES=ingest|inspect|scan|finalize|reaper|recheck|webhooks
#   migrate   node services/api/src/migrate-cli.ts                            (one-shot, before a release starts)
# The code runs as TypeScript through Node's type stripping, as in development: no build step.
# Not built on the project's machines (they have no Docker engine); test/deploy/dockerfile.test.ts
# checks its structure.

# --- deps: production dependencies only, for the workspaces the image runs --------------------
FROM node:24.21.0-bookworm-slim AS deps
# A native module without a prebuilt binary for this platform (better-sqlite3, sharp on some
# architectures) compiles here, never in the final image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Every workspace's manifest: npm ci wants the lockfile's workspaces present to stay in sync;
# --workspace then installs only what the API and the worker need (and the workspaces they
# depend on), so the test, CDK and local-emulator dependencies stay out.
COPY package.json package-lock.json ./
COPY packages/client/package.json packages/client/
COPY packages/contract/package.json packages/contract/
COPY packages/db/package.json packages/db/
COPY packages/domain/package.json packages/domain/
COPY packages/metrics/package.json packages/metrics/
COPY packages/pipeline/package.json packages/pipeline/
COPY packages/runtime/package.json packages/runtime/
COPY packages/scanner/package.json packages/scanner/
COPY packages/storage/package.json packages/storage/
COPY packages/testkit/package.json packages/testkit/
COPY packages/webhooks/package.json packages/webhooks/
COPY services/api/package.json services/api/
COPY services/demo/package.json services/demo/
COPY services/worker/package.json services/worker/
COPY infra/local/package.json infra/local/
COPY infra/aws/package.json infra/aws/
COPY test/package.json test/
RUN npm ci --omit=dev --no-audit --no-fund --workspace=@intake/api --workspace=@intake/worker \
 && npm cache clean --force

# --- runtime ---------------------------------------------------------------------------------
FROM node:24.21.0-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data
WORKDIR /app
# node_modules (symlinks to the workspaces included) from deps; then the sources. Everything
# stays owned by root: the process can read its code, not change it.
COPY --from=deps /app /app
COPY packages/ packages/
COPY services/ services/
COPY infra/container/ infra/container/
# The only writable place the processes need (DATA_DIR); mount a volume or an emptyDir here
# when the root filesystem is read-only.
RUN mkdir -p /data && chown 1000:1000 /data
# The base image's unprivileged `node` user, numeric so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 3000 9464
# One check for every role: infra/container/healthcheck.ts asks the running program's own
# /healthz (the API's on PORT, a worker's on WORKER_METRICS_PORT).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "infra/container/healthcheck.ts"]
CMD ["node", "services/api/src/main.ts"]
