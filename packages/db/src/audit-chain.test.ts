import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import knexFactory, { type Knex } from "knex";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidRequestError } from "@intake/domain";
import { ApiKeyRepository, AuditChainError, AuditLog, GENESIS_HASH, linkHash, migrate, openDatabase, UploadRepository, verifyAuditChain, type DatabaseSettings, type NewUpload } from "./index.ts";
import { allowAuditEdits, migrationSource } from "./migrations.ts";
import { DATABASE_KINDS, freshDatabase, PG_ADMIN_URL, type DatabaseKind, type TestDatabase } from "./testing.ts";

const WRITER = fileURLToPath(new URL("./audit-chain-writer.ts", import.meta.url));

function newUpload(tenantId: string): NewUpload {
  const id = randomUUID().replace(/-/g, "");
  return { id, tenantId, filename: "report.pdf", declaredType: "application/pdf", declaredSize: 1234, metadata: {}, objectKey: `pending/${tenantId}/${id}`, multipart: null, urlExpiresAt: new Date(Date.now() + 600_000) };
}

/** A row's chained content as the walk reads it, for a tamperer who recomputes hashes. */
function rehash(r: Record<string, any>, prevHash: string): string {
  return linkHash({ seq: Number(r.seq), at: Number(r.at), actor: r.actor, actorId: r.actor_id, action: r.action, uploadId: r.upload_id, tenantId: r.tenant_id, objectKey: r.object_key, detail: r.detail, justification: r.justification, stateBefore: r.state_before, stateAfter: r.state_after, prevHash });
}

describe.each(DATABASE_KINDS)("audit chain on %s", (kind) => {
  let t: TestDatabase;
  let audit: AuditLog;
  let uploads: UploadRepository;
  beforeAll(async () => {
    t = await freshDatabase(kind);
    audit = new AuditLog(t.db);
    uploads = new UploadRepository(t.db);
    const keys = new ApiKeyRepository(t.db);
    await keys.ensureTenant("acme");
    await keys.ensureTenant("other");
  });
  afterAll(async () => t?.drop());

  const row = async (seq: number) => t.db("audit_events").where({ seq }).first();
  const head = async () => t.db("audit_chain_head").where({ id: 1 }).first();

  it("starts at seq 0 with the genesis hash and verifies empty", async () => {
    expect(await head()).toMatchObject({ hash: GENESIS_HASH });
    expect(Number((await head()).seq)).toBe(0);
    expect(await verifyAuditChain(t.db)).toEqual({ ok: true, count: 0, head: { seq: 0, hash: GENESIS_HASH } });
  });

  it("chains every write, in-process and concurrent, with the states before and after", async () => {
    const ids = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const { upload } = await uploads.create(newUpload(i % 2 ? "acme" : "other"));
        await uploads.transition(upload.id, "arrived", "ingest");
        await uploads.transition(upload.id, "inspect", "inspect");
        await uploads.transition(upload.id, "inspect", "inspect"); // re-entrant: no second row
        await audit.record({ actor: "admin", action: "quarantine.viewed", uploadId: upload.id, tenantId: upload.tenantId, actorId: "adm_1", justification: "looking" });
        return upload.id;
      }),
    );
    const verdict = await verifyAuditChain(t.db, { pageSize: 7 }); // several pages
    expect(verdict).toMatchObject({ ok: true, count: 160 });
    const timeline = await audit.forUpload(ids[3]!);
    expect(timeline.map((r) => [r.action, r.stateBefore, r.stateAfter])).toEqual([
      ["upload.created", null, "pending"],
      ["upload.uploaded", "pending", "uploaded"],
      ["upload.inspecting", "uploaded", "inspecting"],
      ["quarantine.viewed", null, null],
    ]);
    expect(timeline.map((r) => r.seq)).toEqual([...timeline.map((r) => r.seq)].sort((a, b) => a - b));
    expect(timeline[3]).toMatchObject({ actorId: "adm_1", justification: "looking", actor: "admin" });
  });

  it("appends inside the caller's unit: a unit that fails leaves no link and no hole", async () => {
    const before = Number((await head()).seq);
    const { atomically } = await import("./connection.ts");
    await expect(
      atomically(t.db, async (tx) => {
        await audit.append(tx, { actor: "cli", action: "doomed" });
        throw new Error("changed my mind");
      }),
    ).rejects.toThrow("changed my mind");
    await audit.record({ actor: "cli", action: "kept" });
    expect(Number((await head()).seq)).toBe(before + 1);
    expect(await t.db("audit_events").where({ action: "doomed" }).first()).toBeUndefined();
    expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true, count: before + 1 });
  });

  it("stores a justification with a lone surrogate as it hashed it (the row is not reported as tampered)", async () => {
    await audit.record({ actor: "admin", action: "quarantine.released", actorId: "adm_\ud800", justification: "ok \udc00 then 😀", detail: { note: "x\ud800" } });
    expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true });
    const last = (await audit.byAction("quarantine.released", 1))[0]!;
    expect(last.justification).toBe("ok \ufffd then 😀");
  });

  it("the database itself refuses to edit or delete an audit row", async () => {
    const r = await row(5);
    await expect(t.db("audit_events").where({ id: r.id }).update({ justification: "edited" })).rejects.toThrow(/append-only/);
    await expect(t.db("audit_events").where({ id: r.id }).delete()).rejects.toThrow(/append-only/);
    if (kind === "pg") await expect(t.db.raw("truncate audit_events")).rejects.toThrow(/append-only/);
    expect(await row(5)).toEqual(r);
    expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true });
  });

  it("tampering needs the append-only triggers gone: the tests below act as someone who dropped them", async () => {
    await allowAuditEdits(t.db);
  });

  // Each tampering below is undone before the next, so they share one chain.
  async function tampered(seq: number, change: Partial<Record<string, unknown>>) {
    const original = await row(seq);
    await t.db("audit_events").where({ id: original.id }).update(change);
    try {
      return { verdict: await verifyAuditChain(t.db), id: Number(original.id) };
    } finally {
      await t.db("audit_events").where({ id: original.id }).update(original);
      expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true });
    }
  }

  it.each([
    ["detail", { detail: JSON.stringify({ from: "pending", event: "arrived", reason: "none" }) }],
    ["justification", { justification: "nothing to see" }],
    ["actor", { actor: "reaper" }],
    ["actor_id", { actor_id: "adm_2" }],
    ["state_after", { state_after: "verified" }],
    ["at", { at: 1 }],
  ])("an edited %s is reported as a hash mismatch on that row", async (_column, change) => {
    const { verdict, id } = await tampered(10, change);
    expect(verdict).toMatchObject({ ok: false, count: 9, broken: { problem: "hash_mismatch", seq: 10, id } });
  });

  it("an edit whose hash was recomputed is reported at the next row (prev_hash mismatch)", async () => {
    const r = await row(10);
    const detail = JSON.stringify({ forged: true });
    const { verdict } = await tampered(10, { detail, hash: rehash({ ...r, detail }, r.prev_hash) });
    expect(verdict).toMatchObject({ ok: false, count: 10, broken: { problem: "prev_hash_mismatch", seq: 11, id: Number((await row(11)).id) } });
  });

  it("a deleted row is reported as a seq gap at the row after it", async () => {
    const r = await row(20);
    await t.db("audit_events").where({ id: r.id }).delete();
    try {
      const verdict = await verifyAuditChain(t.db);
      expect(verdict).toMatchObject({ ok: false, count: 19, broken: { problem: "seq_gap", seq: 21, id: Number((await row(21)).id) } });
      if (!verdict.ok) expect(verdict.broken.message).toMatch(/seq 20 missing/);
    } finally {
      await t.db("audit_events").insert(r);
    }
    expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true });
  });

  it("the last row deleted is a head mismatch; deleted with the head rewound, a recorded anchor still catches it", async () => {
    const h = await head();
    const last = await row(Number(h.seq));
    const anchor = { seq: Number(h.seq), hash: h.hash as string };
    await t.db("audit_events").where({ id: last.id }).delete();
    try {
      expect(await verifyAuditChain(t.db)).toMatchObject({ ok: false, broken: { problem: "head_mismatch" } });
      await t.db("audit_chain_head").where({ id: 1 }).update({ seq: anchor.seq - 1, hash: last.prev_hash });
      expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true }); // what the chain alone cannot see
      expect(await verifyAuditChain(t.db, { anchors: [anchor] })).toMatchObject({ ok: false, broken: { problem: "anchor_mismatch", seq: anchor.seq } });
    } finally {
      await t.db("audit_events").insert(last);
      await t.db("audit_chain_head").where({ id: 1 }).update({ seq: h.seq, hash: h.hash });
    }
    expect(await verifyAuditChain(t.db, { anchors: [anchor] })).toMatchObject({ ok: true });
  });

  it("a chain rewritten from a row on is caught by an anchor recorded before", async () => {
    const anchor = { seq: 30, hash: (await row(30)).hash as string };
    const saved = await t.db("audit_events").where("seq", ">=", 30).orderBy("seq");
    const h = await head();
    let prev = (await row(29)).hash as string;
    for (const r of saved) {
      const forged = { ...r, detail: Number(r.seq) === 30 ? JSON.stringify({ rewritten: true }) : r.detail, prev_hash: prev };
      forged.hash = rehash(forged, prev);
      await t.db("audit_events").where({ id: r.id }).update(forged);
      prev = forged.hash;
    }
    await t.db("audit_chain_head").where({ id: 1 }).update({ hash: prev });
    try {
      expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true });
      expect(await verifyAuditChain(t.db, { anchors: [anchor] })).toMatchObject({ ok: false, count: 29, broken: { problem: "anchor_mismatch", seq: 30 } });
    } finally {
      for (const r of saved) await t.db("audit_events").where({ id: r.id }).update(r);
      await t.db("audit_chain_head").where({ id: 1 }).update({ seq: h.seq, hash: h.hash });
    }
    expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true });
  });

  it("rows written around the chain are reported: without a seq, or beyond the head", async () => {
    const h = await head();
    const base = { at: Date.now(), actor: "cli", action: "forged", detail: "{}" };
    const [{ id: unchained }] = await t.db("audit_events").insert(base).returning("id");
    try {
      expect(await verifyAuditChain(t.db)).toMatchObject({ ok: false, broken: { problem: "unchained_row", id: Number(unchained?.id ?? unchained) } });
    } finally {
      await t.db("audit_events").where({ id: unchained?.id ?? unchained }).delete();
    }
    const seq = Number(h.seq) + 1;
    const beyond = { ...base, seq, prev_hash: h.hash, hash: "" };
    beyond.hash = rehash(beyond, h.hash);
    await t.db("audit_events").insert(beyond);
    try {
      expect(await verifyAuditChain(t.db)).toMatchObject({ ok: false, broken: { problem: "head_mismatch", seq } });
    } finally {
      await t.db("audit_events").where({ seq }).delete();
    }
    expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true });
  });

  it("without its head the chain is reported and nothing more is appended (the unit fails)", async () => {
    const h = await head();
    await t.db("audit_chain_head").where({ id: 1 }).delete();
    try {
      expect(await verifyAuditChain(t.db)).toMatchObject({ ok: false, broken: { problem: "head_missing" } });
      await expect(audit.record({ actor: "cli", action: "orphan" })).rejects.toBeInstanceOf(AuditChainError);
      await expect(uploads.create(newUpload("acme"))).rejects.toMatchObject({ code: "audit_chain_head_missing" });
    } finally {
      await t.db("audit_chain_head").insert(h);
    }
    expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true });
  });

  it("searches by tenant, action, actor, upload and date, in pages", async () => {
    const all = await audit.search({ limit: 10_000 });
    expect(all.items.length).toBe(Number((await head()).seq));
    const pages: number[] = [];
    let cursor: number | null = null;
    do {
      const page = await audit.search({ tenantIds: ["acme"], actions: ["upload.created", "upload.uploaded"], limit: 7, cursor });
      pages.push(...page.items.map((r) => r.seq));
      for (const r of page.items) expect(r).toMatchObject({ tenantId: "acme", action: expect.stringMatching(/^upload\.(created|uploaded)$/) });
      cursor = page.next;
    } while (cursor !== null);
    expect(pages).toHaveLength(40);
    expect(pages).toEqual([...pages].sort((a, b) => a - b));
    expect((await audit.search({ tenantIds: [], limit: 10 })).items).toEqual([]);
    expect((await audit.search({ tenantIds: null, actor: "admin", actorId: "adm_1", limit: 100 })).items).toHaveLength(40);
    const newest = await audit.search({ limit: 3, order: "desc" });
    expect(newest.items.map((r) => r.seq)).toEqual([all.items.at(-1)!.seq, all.items.at(-2)!.seq, all.items.at(-3)!.seq]);
    expect((await audit.search({ limit: 3, order: "desc", cursor: String(newest.next) })).items[0]!.seq).toBe(all.items.at(-4)!.seq);
    const one = all.items[5]!;
    expect((await audit.search({ uploadId: one.uploadId!, limit: 10 })).items.every((r) => r.uploadId === one.uploadId)).toBe(true);
    expect((await audit.search({ from: new Date(Date.now() + 60_000), limit: 10 })).items).toEqual([]);
    expect((await audit.search({ from: one.at, to: new Date(one.at.getTime() + 1), limit: 10_000 })).items.every((r) => r.at.getTime() === one.at.getTime())).toBe(true);
    await expect(audit.search({ limit: 10, cursor: "1; drop table audit_events" })).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(audit.search({ limit: 0 })).rejects.toMatchObject({ code: "invalid_limit" });
  });

  it("several processes writing at once: one chain, no seq twice, and it verifies", async () => {
    const start = Number((await head()).seq);
    const count = kind === "sqlite" ? 100 : 50;
    const writers = Array.from({ length: 4 }, (_, i) => {
      const proc = spawn(process.execPath, [WRITER], { env: { ...process.env, SETTINGS: JSON.stringify(t.settings), COUNT: String(count), WRITER: `w${i}`, TENANT: i % 2 ? "acme" : "other" }, stdio: ["pipe", "pipe", "pipe"] });
      const out = { stdout: "", stderr: "" };
      proc.stdout.on("data", (d: Buffer) => (out.stdout += d));
      proc.stderr.on("data", (d: Buffer) => (out.stderr += d));
      return { proc, out, exited: once(proc, "exit") as Promise<[number | null]> };
    });
    for (const until = Date.now() + 20_000; !writers.every((w) => w.out.stdout.startsWith("ready\n")); ) {
      if (writers.some((w) => w.proc.exitCode !== null) || Date.now() > until) throw new Error(`a writer is not ready: ${JSON.stringify(writers.map((w) => w.out))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    for (const w of writers) w.proc.stdin.end("go\n");
    const timer = setTimeout(() => writers.forEach((w) => w.proc.kill("SIGKILL")), 50_000);
    let running = true;
    const codes = Promise.all(writers.map((w) => w.exited)).finally(() => (running = false));
    // Verified while they append: the walk stops at the head it read first, so a chain that
    // grows under it still verifies.
    const during: Awaited<ReturnType<typeof verifyAuditChain>>[] = [];
    // better-sqlite3 answers synchronously: without a timer between walks this loop would
    // never let the event loop deliver the writers' "go" or their exits.
    while (running) {
      during.push(await verifyAuditChain(t.db, { pageSize: 100 }));
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(during.filter((v) => !v.ok)).toEqual([]);
    expect(during.length).toBeGreaterThan(1);
    const exits = await codes;
    clearTimeout(timer);
    expect(writers.map((w, i) => ({ code: exits[i]![0], stderr: w.out.stderr }))).toEqual(writers.map(() => ({ code: 0, stderr: "" })));
    const written = writers.reduce((n, w) => n + (JSON.parse(w.out.stdout.slice("ready\n".length)) as { written: number }).written, 0);
    expect(written).toBe(4 * count * 4);
    expect(await verifyAuditChain(t.db)).toMatchObject({ ok: true, count: start + written });
    const repeated = await t.db("audit_events").select("seq").groupBy("seq").havingRaw("count(*) > 1");
    expect(repeated).toEqual([]);
    // The writers' links interleave: the chain is one, not four appended one after another.
    const order = (await t.db("audit_events").where("seq", ">", start).andWhere({ action: "race.recorded" }).orderBy("seq").select("actor_id")).map((r) => r.actor_id as string);
    expect(new Set(order.slice(0, order.length / 2)).size).toBeGreaterThan(1);
  });
});

describe.each(DATABASE_KINDS)("migration 0005 on %s", (kind) => {
  it("chains the rows written before it, in the order they were written, and the chain goes on from there", async () => {
    const { settings, drop } = await unmigrated(kind);
    const db = openDatabase(settings);
    try {
      // Up to 0004, then rows as the code before the chain wrote them.
      for (let i = 0; i < 4; i++) await db.migrate.up({ migrationSource, tableName: "intake_migrations" });
      const old = Array.from({ length: 25 }, (_, i) => ({ at: 1_700_000_000_000 + i, actor: "api", action: "upload.created", upload_id: `u${i}`, tenant_id: "acme", object_key: `pending/acme/u${i}`, detail: JSON.stringify({ i }) }));
      await db("audit_events").insert(old);
      await migrate(db);
      expect(await verifyAuditChain(db)).toMatchObject({ ok: true, count: 25 });
      const rows = await db("audit_events").orderBy("seq");
      expect(rows.map((r) => r.upload_id)).toEqual(old.map((o) => o.upload_id));
      expect(rows[0].prev_hash).toBe(GENESIS_HASH);
      await new AuditLog(db).record({ actor: "cli", action: "after" });
      expect(await verifyAuditChain(db)).toMatchObject({ ok: true, count: 26 });
    } finally {
      await db.destroy();
      await drop();
    }
  });
});

/** An empty database, not migrated. */
async function unmigrated(kind: DatabaseKind): Promise<{ settings: DatabaseSettings; drop: () => Promise<void> }> {
  if (kind === "sqlite") {
    const dir = mkdtempSync(join(tmpdir(), "intake-audit-"));
    return { settings: { client: "sqlite", filename: join(dir, "intake.sqlite") }, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `intake_test_${randomBytes(6).toString("hex")}`;
  const admin = (sql: string) => withAdmin((k) => k.raw(sql));
  await admin(`create database ${name}`);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return { settings: { client: "pg", url: url.toString() }, drop: () => admin(`drop database if exists ${name} with (force)`) };
}

async function withAdmin(work: (k: Knex) => Promise<unknown>): Promise<void> {
  const k = knexFactory({ client: "pg", connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
  try {
    await work(k);
  } finally {
    await k.destroy();
  }
}
