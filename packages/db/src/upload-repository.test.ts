import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASE_KINDS, freshDatabase, type TestDatabase } from "./testing.ts";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { ApiKeyRepository, AuditLog, openDatabase, secretPartOf, UploadRepository, type NewUpload } from "./index.ts";

// The other process of the race test: applies "arrived" twice to every id, prints who won.
const RACER = `
  import { openDatabase, UploadRepository } from ${JSON.stringify(fileURLToPath(new URL("./index.ts", import.meta.url)))};
  const db = openDatabase(JSON.parse(process.env.SETTINGS));
  const repo = new UploadRepository(db);
  const ids = process.env.IDS.split(",");
  await repo.getById(ids[0]); // connection open and warm
  process.stdout.write("ready\\n");
  await new Promise((go) => process.stdin.once("data", go));
  const results = await Promise.all(ids.flatMap((id) => [repo.transition(id, "arrived", "ingest"), repo.transition(id, "arrived", "ingest")]));
  process.stdout.write(JSON.stringify(results.map((r) => r.applied)));
  await db.destroy();
`;

function newUpload(tenantId: string, over: Partial<NewUpload> = {}): NewUpload {
  const id = randomUUID().replace(/-/g, "");
  return {
    id,
    tenantId,
    filename: "report.pdf",
    declaredType: "application/pdf",
    declaredSize: 1234,
    metadata: { source: "test" },
    objectKey: `pending/${tenantId}/${id}`,
    multipart: null,
    urlExpiresAt: new Date(Date.now() + 600_000),
    ...over,
  };
}

describe.each(DATABASE_KINDS)("upload repository on %s", (kind) => {
  let t: TestDatabase;
  let uploads: UploadRepository;
  beforeAll(async () => {
    t = await freshDatabase(kind);
    uploads = new UploadRepository(t.db);
    const keys = new ApiKeyRepository(t.db);
    await keys.ensureTenant("acme");
    await keys.ensureTenant("other");
  });
  afterAll(async () => t?.drop());

  it("writes a new upload as pending with an audit row", async () => {
    const { upload, created } = await uploads.create(newUpload("acme"));
    expect(created).toBe(true);
    expect(upload.status).toBe("pending");
    expect(upload.metadata).toEqual({ source: "test" });
    const audit = await new AuditLog(t.db).forUpload(upload.id);
    expect(audit.map((a) => a.action)).toEqual(["upload.created"]);
  });

  it("returns the first upload for a repeated idempotency key and refuses a different request under it", async () => {
    const first = await uploads.create(newUpload("acme", { idempotency: { key: "k-1", fingerprint: "f1" } }));
    const again = await uploads.create(newUpload("acme", { idempotency: { key: "k-1", fingerprint: "f1" } }));
    expect(again.created).toBe(false);
    expect(again.upload.id).toBe(first.upload.id);
    await expect(uploads.create(newUpload("acme", { idempotency: { key: "k-1", fingerprint: "f2" } }))).rejects.toMatchObject({ code: "idempotency_key_reused" });
    // The same key under another tenant is another upload.
    const other = await uploads.create(newUpload("other", { idempotency: { key: "k-1", fingerprint: "f1" } }));
    expect(other.created).toBe(true);
  });

  it("applies a transition once: concurrent duplicates see applied=false", async () => {
    const { upload } = await uploads.create(newUpload("acme"));
    const results = await Promise.all([1, 2, 3, 4].map(() => uploads.transition(upload.id, "arrived", "ingest", { storedSize: 1234 })));
    expect(results.filter((r) => r.applied)).toHaveLength(1);
    const after = await uploads.getById(upload.id);
    expect(after?.status).toBe("uploaded");
    expect(after?.uploadedAt).toBeInstanceOf(Date);
    const refused = await uploads.transition(upload.id, "expire", "reaper");
    expect(refused.applied).toBe(false);
    expect(refused.upload?.status).toBe("uploaded");
  });

  it("two processes racing on one database: every event applied once, no lock errors", async () => {
    // The API and the workers are separate processes on one database (one SQLite file in
    // the dev stack). A child process applies the same events as this one, at the same time.
    // Enough overlap to hit SQLite's snapshot conflict reliably; PostgreSQL pays an fsync per
    // commit, so it gets fewer.
    const ids = await Promise.all(Array.from({ length: kind === "sqlite" ? 300 : 60 }, async () => (await uploads.create(newUpload("acme"))).upload.id));
    const child = spawn(process.execPath, ["--input-type=module", "-e", RACER], { env: { ...process.env, SETTINGS: JSON.stringify(t.settings), IDS: ids.join(",") }, stdio: ["pipe", "pipe", "pipe"] });
    // Listen for the exit now: the child may well finish before this process's own share.
    const exited = once(child, "exit") as Promise<[number | null]>;
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (err += d));
    for (const until = Date.now() + 20_000; !out.startsWith("ready\n"); ) {
      if (child.exitCode !== null || Date.now() > until) throw new Error(`the racing process is not ready (exit ${child.exitCode}): ${JSON.stringify({ out, err })}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    child.stdin.end("go\n");
    const mine = await Promise.all(ids.flatMap((id) => [uploads.transition(id, "arrived", "api"), uploads.transition(id, "arrived", "api")]));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const [code] = await exited;
    clearTimeout(timer);
    expect({ code, err, out: out.slice(0, 200) }).toMatchObject({ code: 0, err: "" });
    const theirs = JSON.parse(out.slice("ready\n".length)) as boolean[];
    expect(mine.filter((r) => r.applied).length + theirs.filter(Boolean).length).toBe(ids.length);
    for (const id of ids) {
      expect((await uploads.getById(id))?.status).toBe("uploaded");
      expect((await new AuditLog(t.db).forUpload(id)).map((r) => r.action)).toEqual(["upload.created", "upload.uploaded"]);
    }
  });

  it("two workers deciding the same uploads on their own connections: one verdict and one audit row each", async () => {
    // Two worker processes, each with its own pool (on PostgreSQL the loser's UPDATE waits for
    // the winner's row lock, then re-reads the row and no longer matches WHERE status IN).
    const ids = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const { upload } = await uploads.create(newUpload("acme"));
        for (const e of ["arrived", "inspect", "scan"] as const) await uploads.transition(upload.id, e, "inspect");
        return upload.id;
      }),
    );
    const second = openDatabase(t.settings);
    try {
      const theirs = new UploadRepository(second);
      const results = await Promise.all(
        ids.flatMap((id) => [
          uploads.transition(id, "decide", "scan", { verdict: "clean", reason: null }).then((r) => ({ id, r, verdict: "clean" })),
          theirs.transition(id, "decide", "scan", { verdict: "quarantine", reason: "malware" }).then((r) => ({ id, r, verdict: "quarantine" })),
        ]),
      );
      for (const id of ids) {
        const winners = results.filter((x) => x.id === id && x.r.applied);
        expect(winners, id).toHaveLength(1);
        const row = await uploads.getById(id);
        expect(row).toMatchObject({ status: "deciding", verdict: winners[0]!.verdict });
        const decided = (await new AuditLog(t.db).forUpload(id)).filter((a) => a.action === "upload.deciding");
        expect(decided.map((a) => a.detail.verdict)).toEqual([winners[0]!.verdict]);
      }
    } finally {
      await second.destroy();
    }
  });

  it("two workers starting the same inspection (a re-entrant event): one audit row each, naming the status it left", async () => {
    // Both may apply (inspecting -> inspecting is allowed), but only one changed the status.
    // The row is read locked: read unlocked, the second saw "uploaded" from before the first
    // committed and wrote a second upload.inspecting row on PostgreSQL.
    const ids = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const { upload } = await uploads.create(newUpload("acme"));
        await uploads.transition(upload.id, "arrived", "ingest");
        return upload.id;
      }),
    );
    const second = openDatabase(t.settings);
    try {
      const theirs = new UploadRepository(second);
      await Promise.all(ids.flatMap((id) => [uploads.transition(id, "inspect", "inspect"), theirs.transition(id, "inspect", "inspect")]));
      for (const id of ids) {
        const inspecting = (await new AuditLog(t.db).forUpload(id)).filter((a) => a.action === "upload.inspecting");
        expect(inspecting.map((a) => a.detail.from), id).toEqual(["uploaded"]);
      }
    } finally {
      await second.destroy();
    }
  });

  it("keeps tenants apart and pages with a cursor", async () => {
    for (let i = 0; i < 5; i++) await uploads.create(newUpload("other"));
    expect(await uploads.get("acme", (await uploads.list("other", { limit: 1 })).items[0]!.id)).toBeNull();
    const seen: string[] = [];
    let cursor: { createdAt: number; id: string } | undefined;
    do {
      const page = await uploads.list("other", { limit: 2, cursor });
      seen.push(...page.items.map((u) => u.id));
      cursor = page.next ?? undefined;
    } while (cursor);
    expect(seen).toHaveLength(6);
    expect(new Set(seen).size).toBe(6);
  });
});

describe.each(DATABASE_KINDS)("api keys on %s", (kind) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await freshDatabase(kind);
  });
  afterAll(async () => t?.drop());

  it("authenticates a created key, stores only a hash, and refuses it once revoked", async () => {
    const keys = new ApiKeyRepository(t.db);
    const { key, info } = await keys.create("acme", "ci");
    expect(await keys.authenticate(key)).toEqual({ tenantId: "acme", keyId: info.id });
    const row = await t.db("api_keys").where({ id: info.id }).first();
    const secret = secretPartOf(key);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(JSON.stringify(row)).not.toContain(secret);
    expect(await keys.authenticate(key.slice(0, -1) + (key.endsWith("A") ? "B" : "A"))).toBeNull();
    await keys.revoke(info.id);
    expect(await keys.authenticate(key)).toBeNull();
  });
});
