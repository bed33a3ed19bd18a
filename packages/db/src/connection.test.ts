import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASE_KINDS, freshDatabase, type TestDatabase } from "./testing.ts";
import Database from "better-sqlite3";
import { atomically, openDatabase, writeAtomically } from "./connection.ts";

// writeAtomically is one transaction per call on PostgreSQL and a group commit on SQLite
// (calls made in the same turn of the event loop share one COMMIT). Either way each call
// must be all-or-nothing on its own: these calls are all made in one turn, so on SQLite
// they land in one group.
describe.each(DATABASE_KINDS)("writeAtomically on %s", (kind) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await freshDatabase(kind);
    await t.db.schema.createTable("scratch", (table) => table.string("k").primary());
  });
  afterAll(async () => t?.drop());

  const insert = (k: string) => t.db("scratch").insert({ k });
  const keys = async () => (await t.db("scratch").select("k").orderBy("k")).map((r: { k: string }) => r.k);

  it("commits each call or none of it: a failing call rolls back alone and is the only one rejected", async () => {
    await writeAtomically(t.db, [insert("a1"), insert("a2")]);
    const results = await Promise.allSettled([
      // b1 goes in first, then the duplicate fails: b1 must not survive.
      writeAtomically(t.db, [insert("b1"), insert("a1")]),
      writeAtomically(t.db, [insert("c1")]),
      ...Array.from({ length: 40 }, (_, i) => writeAtomically(t.db, [insert(`d${String(i).padStart(2, "0")}`)])),
    ]);
    expect(results.map((r) => r.status)).toEqual(["rejected", ...Array(41).fill("fulfilled")]);
    expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/UNIQUE|unique|duplicate/);
    expect(await keys()).toEqual(["a1", "a2", "c1", ...Array.from({ length: 40 }, (_, i) => `d${String(i).padStart(2, "0")}`)]);
  });

  it("answers nobody before the commit: another connection sees every write once its call resolves", async () => {
    // A second connection sees committed rows only (SQLite WAL, PostgreSQL READ COMMITTED).
    const other = openDatabase(t.settings);
    const batch = Array.from({ length: 200 }, (_, i) => `e${String(i).padStart(3, "0")}`);
    try {
      await Promise.all(
        batch.map(async (k) => {
          await writeAtomically(t.db, [insert(k)]);
          expect(await other("scratch").where({ k }).first()).toEqual({ k });
        }),
      );
    } finally {
      await other.destroy();
    }
    expect((await keys()).filter((k) => k.startsWith("e"))).toEqual(batch);
  });

  it("runs a unit's reads and conditional writes together and returns its value; a unit that throws leaves nothing", async () => {
    await writeAtomically(t.db, [insert("f0")]);
    const claim = (k: string) =>
      atomically(t.db, async (tx) => {
        const seen = await tx.first<{ k: string }>(t.db("scratch").where({ k }));
        if (!seen) return "absent";
        const changed = await tx.run(t.db("scratch").where({ k }).update({ k: `${k}-claimed` }));
        return changed === 1 ? "claimed" : "lost";
      });
    const failing = atomically(t.db, async (tx) => {
      await tx.run(insert("g0"));
      throw new Error("the unit changed its mind");
    });
    const results = await Promise.allSettled([claim("f0"), claim("f0"), failing, claim("nope")]);
    const outcome = results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message));
    // Exactly one claim wins. The other saw no row (units ran one after the other, as in a
    // SQLite group) or lost the UPDATE (concurrent PostgreSQL transactions).
    expect([outcome[0], outcome[1]].sort()).toEqual(kind === "sqlite" ? ["absent", "claimed"] : [expect.stringMatching(/absent|claimed|lost/), expect.stringMatching(/absent|claimed|lost/)]);
    expect(outcome.filter((o) => o === "claimed")).toHaveLength(1);
    expect(outcome.slice(2)).toEqual(["the unit changed its mind", "absent"]);
    expect((await keys()).filter((k) => k.startsWith("f") || k.startsWith("g"))).toEqual(["f0-claimed"]);
  });
});

describe("the SQLite group commit", () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await freshDatabase("sqlite");
    await t.db.schema.createTable("scratch", (table) => table.string("k").primary());
  });
  afterAll(async () => t?.drop());

  it("holds the write lock from its first statement, before a unit has written anything (BEGIN IMMEDIATE's effect)", async () => {
    // A second process's view: with the lock held, it cannot start a write transaction.
    // A deferred transaction that has only read would let it, and then lose the race on
    // its own first write (SQLITE_BUSY_SNAPSHOT, which busy_timeout does not retry).
    if (t.settings.client !== "sqlite") throw new Error("expected a SQLite database");
    const other = new Database(t.settings.filename, { timeout: 0 });
    const tryWrite = () => {
      try {
        other.exec("BEGIN IMMEDIATE");
        other.exec("ROLLBACK");
        return "free";
      } catch (err) {
        return (err as { code?: string }).code ?? String(err);
      }
    };
    try {
      expect(tryWrite()).toBe("free");
      const seenInside = await atomically(t.db, async (tx) => {
        await tx.first(t.db("scratch").where({ k: "nothing" }));
        return tryWrite();
      });
      expect(seenInside).toBe("SQLITE_BUSY");
      expect(tryWrite()).toBe("free");
    } finally {
      other.close();
    }
  });
});
