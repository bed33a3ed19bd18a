import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASE_KINDS, freshDatabase, type TestDatabase } from "./testing.ts";
import Database from "better-sqlite3";
import { atomically, openDatabase, writeAtomically, type Atomic } from "./connection.ts";

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

  it("refuses a unit started inside another at once (it deadlocked on SQLite, committed apart from the outer one on PostgreSQL)", async () => {
    const started = Date.now();
    const outer = atomically(t.db, async (tx) => {
      await tx.run(insert("n-outer"));
      return atomically(t.db, async (inner) => inner.run(insert("n-inner")));
    });
    await expect(outer).rejects.toMatchObject({ name: "UnitOfWorkError", code: "nested_unit" });
    expect(Date.now() - started).toBeLessThan(2_000);
    expect((await keys()).filter((k) => k.startsWith("n-"))).toEqual([]);
  });

  it("fails a unit whose statement failed even when the unit caught the error (PostgreSQL's COMMIT had silently rolled it back, SQLite committed the rest)", async () => {
    await writeAtomically(t.db, [insert("s-taken")]);
    const swallowing = atomically(t.db, async (tx) => {
      await tx.run(insert("s-first"));
      await tx.run(insert("s-taken")).catch(() => "ignored");
      return "reported as done";
    });
    await expect(swallowing).rejects.toThrow(/UNIQUE|unique|duplicate/);
    expect((await keys()).filter((k) => k.startsWith("s-"))).toEqual(["s-taken"]);
  });

  it("refuses statements on a unit's Atomic once the unit has ended (SQLite ran them outside any unit)", async () => {
    let kept: Atomic | undefined;
    await atomically(t.db, async (tx) => {
      kept = tx;
    });
    await expect(kept!.run(insert("late"))).rejects.toMatchObject({ name: "UnitOfWorkError", code: "unit_finished" });
    expect(await keys()).not.toContain("late");
  });

  it("waits for a unit that awaits something outside the database, commits it whole, and commits a unit submitted meanwhile", async () => {
    let wroteFirst!: () => void;
    const firstWritten = new Promise<void>((r) => (wroteFirst = r));
    let release!: () => void;
    const outsideWork = new Promise<void>((r) => (release = r));
    const slow = atomically(t.db, async (tx) => {
      await tx.run(insert("w-slow-1"));
      wroteFirst();
      await outsideWork; // resolved from a timer below: other turns of the event loop
      await tx.run(insert("w-slow-2"));
      return "slow";
    });
    const other = openDatabase(t.settings);
    try {
      await firstWritten;
      // On SQLite this one joins the next group, behind the open one.
      const meanwhile = atomically(t.db, async (tx) => (await tx.run(insert("w-meanwhile")), "meanwhile"));
      expect(await other("scratch").where("k", "like", "w-slow%").select("k")).toEqual([]);
      setTimeout(release, 20);
      expect(await Promise.all([slow, meanwhile])).toEqual(["slow", "meanwhile"]);
      expect((await other("scratch").where("k", "like", "w-%").orderBy("k").select("k")).map((r: { k: string }) => r.k)).toEqual(["w-meanwhile", "w-slow-1", "w-slow-2"]);
    } finally {
      release(); // a failed expectation must not leave the unit holding the database
      await other.destroy();
    }
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

  it("rejects the whole group when its COMMIT fails, and hands the connection back to the pool outside any transaction", async () => {
    // A deferred foreign key is checked only at COMMIT, and a COMMIT that fails on it leaves
    // the transaction open, like SQLITE_FULL or IOERR. The pool's 'release' event (tarn, inside
    // knex) fires as the connection goes back: a transaction still open then is the next
    // query's. Its writes would be rolled back with the group's, or never committed.
    await t.db.raw("create table parent (id text primary key)");
    await t.db.raw("create table child (id text primary key, parent text references parent(id) deferrable initially deferred)");
    const pool = (t.db.client as { pool: { on(e: "release", f: (c: { inTransaction: boolean }) => void): void; removeAllListeners(e: string): void } }).pool;
    const openAtRelease: boolean[] = [];
    pool.on("release", (conn) => openAtRelease.push(conn.inTransaction));
    let outside: Promise<unknown> | undefined;
    try {
      const group = await Promise.allSettled([
        atomically(t.db, async (tx) => {
          // Issued while the group holds the connection: it waits for the pool.
          outside = t.db("scratch").insert({ k: "outside-the-group" });
          return tx.run(t.db("child").insert({ id: "orphan", parent: "missing" }));
        }),
        atomically(t.db, async (tx) => tx.run(t.db("scratch").insert({ k: "same-group" }))),
      ]);
      expect(group.map((r) => (r.status === "rejected" ? String(r.reason) : r.status))).toEqual([expect.stringMatching(/FOREIGN KEY/), expect.stringMatching(/FOREIGN KEY/)]);
      await outside;
      expect(openAtRelease).not.toContain(true);
      await writeAtomically(t.db, [t.db("scratch").insert({ k: "next-group" })]);
    } finally {
      pool.removeAllListeners("release");
    }
    const other = new Database((t.settings as { filename: string }).filename, { readonly: true });
    try {
      expect(other.prepare("select k from scratch order by k").all()).toEqual([{ k: "next-group" }, { k: "outside-the-group" }]);
      expect(other.prepare("select count(*) as n from child").get()).toEqual({ n: 0 });
    } finally {
      other.close();
    }
  });

  it("runs a query issued outside any unit after the open group, so it sees only committed rows", async () => {
    const order: string[] = [];
    let outside: Promise<unknown> | undefined;
    const unit = atomically(t.db, async (tx) => {
      await tx.run(t.db("scratch").insert({ k: "o-unit" }));
      outside = t.db("scratch").where({ k: "o-unit" }).first().then((row) => order.push(`outside read ${row ? "saw" : "missed"} the row`));
      await new Promise((r) => setTimeout(r, 20)); // the outside read gets every chance to jump in
      order.push("unit done");
    });
    await unit;
    await outside;
    expect(order).toEqual(["unit done", "outside read saw the row"]);
  });

  it("rejects the whole group with the real cause when SQLite rolls the transaction back itself (SQLITE_FULL)", async () => {
    await t.db.raw("create table blobs (k text primary key, v blob)");
    const { page_count: pages } = (await t.db.raw("pragma page_count"))[0] as { page_count: number };
    // The pool's one connection: every unit of the next group runs under this limit.
    await t.db.raw(`pragma max_page_count = ${pages + 5}`);
    try {
      const group = await Promise.allSettled([
        atomically(t.db, async (tx) => tx.run(t.db("blobs").insert({ k: "small-1", v: "x" }))),
        atomically(t.db, async (tx) => tx.run(t.db("blobs").insert({ k: "big", v: Buffer.alloc(200_000) }))),
        atomically(t.db, async (tx) => tx.run(t.db("blobs").insert({ k: "small-2", v: "y" }))),
      ]);
      expect(group.map((r) => (r.status === "rejected" ? (r.reason as { code?: string }).code : r.status))).toEqual(["SQLITE_FULL", "SQLITE_FULL", "SQLITE_FULL"]);
      expect(await t.db("blobs").select("k")).toEqual([]);
    } finally {
      await t.db.raw("pragma max_page_count = 1073741823");
    }
    await writeAtomically(t.db, [t.db("blobs").insert({ k: "after", v: "z" })]);
    expect(await t.db("blobs").select("k")).toEqual([{ k: "after" }]);
  });
});
