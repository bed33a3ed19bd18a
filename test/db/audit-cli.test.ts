import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "@intake/db";
import { allowAuditEdits, DATABASE_KINDS, freshDatabase, type TestDatabase } from "@intake/test";

const run = promisify(execFile);
const CLI = resolve(import.meta.dirname, "../../services/api/src/audit-cli.ts");

describe.each(DATABASE_KINDS)("audit CLI on %s", (kind) => {
  let database: TestDatabase;
  let dataDir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    database = await freshDatabase(kind);
    // The tests below tamper as the database's owner could: past the append-only triggers.
    await allowAuditEdits(database.db);
    dataDir = mkdtempSync(join(tmpdir(), "intake-audit-cli-"));
    env = {
      PATH: process.env.PATH!,
      DATA_DIR: dataDir,
      ...(database.settings.client === "pg" ? { DATABASE_URL: database.settings.url } : { SQLITE_PATH: database.settings.filename }),
    };
    const audit = new AuditLog(database.db);
    for (let i = 0; i < 12; i++) await audit.record({ actor: "admin", action: "quarantine.reviewed", actorId: "adm_1", justification: `row ${i}`, detail: { i } });
  });
  afterAll(async () => {
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const cli = (args: string[], extra: Record<string, string> = {}) => run(process.execPath, [CLI, ...args], { env: { ...env, ...extra } });

  it("prints OK with the count and an anchor, and exits 0", async () => {
    const { stdout } = await cli(["verify"]);
    expect(stdout).toMatch(/^OK: 12 audit rows verify, seq 1 to 12\nanchor: 12:[0-9a-f]{64}\n$/);
    const anchor = /anchor: (\S+)/.exec(stdout)![1]!;
    expect((await cli(["verify", "--anchor", anchor])).stdout).toMatch(/^OK: 12/);
    const json = JSON.parse((await cli(["verify", "--json"])).stdout);
    expect(json).toMatchObject({ ok: true, count: 12, head: { seq: 12 } });
  });

  it("names the first broken row and exits 1 when a row was edited in the database", async () => {
    const row = await database.db("audit_events").where({ seq: 7 }).first();
    await database.db("audit_events").where({ id: row.id }).update({ justification: "edited later" });
    try {
      const failed = await cli(["verify"]).then(() => null, (err: { code: number; stdout: string }) => err);
      expect(failed?.code).toBe(1);
      expect(failed?.stdout).toContain(`BROKEN: hash mismatch at seq 7, id ${row.id}`);
      expect(failed?.stdout).toContain("the 6 rows before it verify (seq 1 to 6)");
      const json = await cli(["verify", "--json"]).then(() => null, (err: { stdout: string }) => JSON.parse(err.stdout));
      expect(json).toMatchObject({ ok: false, count: 6, broken: { problem: "hash_mismatch", seq: 7, id: Number(row.id) } });
    } finally {
      await database.db("audit_events").where({ id: row.id }).update({ justification: row.justification });
    }
  });

  it("reports a deleted row as a seq gap and a wrong anchor as such", async () => {
    const row = await database.db("audit_events").where({ seq: 3 }).first();
    await database.db("audit_events").where({ id: row.id }).delete();
    try {
      await expect(cli(["verify"])).rejects.toMatchObject({ code: 1, stdout: expect.stringMatching(/^BROKEN: seq gap at seq 4, id \d+\n {2}seq 3 missing/) });
    } finally {
      await database.db("audit_events").insert(row);
    }
    await expect(cli(["verify", "--anchor", `5:${"a".repeat(64)}`])).rejects.toMatchObject({ code: 1, stdout: expect.stringContaining("BROKEN: anchor mismatch at seq 5") });
  });

  it("refuses bad usage (64) and says when it could not check at all (2)", async () => {
    await expect(cli([])).rejects.toMatchObject({ code: 64 });
    await expect(cli(["repair"])).rejects.toMatchObject({ code: 64, stderr: expect.stringContaining("unknown command repair") });
    await expect(cli(["verify", "--anchor", "5:xyz"])).rejects.toMatchObject({ code: 64, stderr: expect.stringContaining("expected SEQ:HASH") });
    const empty = mkdtempSync(join(tmpdir(), "intake-audit-cli-empty-"));
    try {
      // A database without the audit tables (not migrated): nothing is created in it.
      await expect(cli(["verify"], { SQLITE_PATH: join(empty, "none.sqlite"), DATABASE_URL: "" })).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining("could not verify the audit chain") });
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
