/**
 * What the audit trail's hash chain costs a unit of work, side by side in one run:
 *
 *   node test/bench/audit-chain.ts [--units 3000] [--concurrency 16] [--rounds 3]
 *
 * On SQLite and PostgreSQL (fresh databases, as the tests make them), units of the shape
 * the pipeline's transitions have: (a) one conditional UPDATE of an upload-sized row, and
 * (b) the same UPDATE plus the chained audit append (AuditLog.append: lock the head, hash,
 * insert, move the head). The two take turns in every round, so the machine's noise weighs
 * on both alike. Units/s is what the database commits with `--concurrency` units in flight
 * (on PostgreSQL the chain's head lock makes audited units commit one after another); CPU
 * is this process's per unit.
 */
import { AuditLog, atomically, Statement } from "@intake/db";
import { freshDatabase, type DatabaseKind } from "@intake/db/testing";

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const UNITS = arg("units", 3000);
const CONCURRENCY = arg("concurrency", 16);
const ROUNDS = arg("rounds", 3);

async function run(kind: DatabaseKind): Promise<void> {
  const t = await freshDatabase(kind);
  try {
    await t.db("tenants").insert({ id: "bench", name: "bench", created_at: Date.now() });
    const audit = new AuditLog(t.db);
    const ids = Array.from({ length: CONCURRENCY }, (_, i) => `u${i}`);
    for (const id of ids) {
      await t.db("uploads").insert({ id, tenant_id: "bench", status: "inspecting", filename: "f.txt", declared_type: "text/plain", declared_size: 1, metadata: "{}", object_key: `pending/bench/${id}`, url_expires_at: Date.now(), created_at: Date.now(), updated_at: Date.now() });
    }
    const unit = (id: string, chained: boolean) =>
      atomically(t.db, async (tx) => {
        await tx.run(new Statement("update uploads set updated_at = ?, attempts = attempts + 1 where id = ? and status in (?, ?)", [Date.now(), id, "inspecting", "scanning"]));
        if (chained) await audit.append(tx, { actor: "scan", action: "upload.bench", uploadId: id, tenantId: "bench", objectKey: `pending/bench/${id}`, detail: { from: "inspecting", event: "bench" }, stateBefore: "inspecting", stateAfter: "inspecting" });
      });
    const measure = async (chained: boolean) => {
      let next = 0;
      const cpu = process.cpuUsage();
      const started = performance.now();
      await Promise.all(
        ids.map(async (id) => {
          while (next < UNITS) {
            next++;
            await unit(id, chained);
          }
        }),
      );
      const ms = performance.now() - started;
      const used = process.cpuUsage(cpu);
      return { perSecond: (UNITS / ms) * 1000, cpuMsPerUnit: (used.user + used.system) / 1000 / UNITS };
    };
    await measure(true); // warm-up: the chain's first links, JIT
    const sums = { plain: { perSecond: [] as number[], cpu: [] as number[] }, chained: { perSecond: [] as number[], cpu: [] as number[] } };
    for (let r = 0; r < ROUNDS; r++) {
      for (const chained of r % 2 === 0 ? [false, true] : [true, false]) {
        const m = await measure(chained);
        const s = chained ? sums.chained : sums.plain;
        s.perSecond.push(m.perSecond);
        s.cpu.push(m.cpuMsPerUnit);
      }
    }
    const fmt = (xs: number[], digits: number) => `${Math.min(...xs).toFixed(digits)}-${Math.max(...xs).toFixed(digits)}`;
    console.log(`${kind}: ${UNITS} units x ${ROUNDS} rounds, ${CONCURRENCY} in flight`);
    console.log(`  update only:          ${fmt(sums.plain.perSecond, 0)} units/s, CPU ${fmt(sums.plain.cpu, 3)} ms/unit`);
    console.log(`  update + audit link:  ${fmt(sums.chained.perSecond, 0)} units/s, CPU ${fmt(sums.chained.cpu, 3)} ms/unit`);
  } finally {
    await t.drop();
  }
}

for (const kind of ["sqlite", "pg"] as const) await run(kind);
