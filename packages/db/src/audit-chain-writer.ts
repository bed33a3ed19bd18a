/**
 * One of the writer processes of the audit chain's race test (audit-chain.test.ts), run by
 * plain node: opens the database named in SETTINGS, prints "ready", waits for a line on
 * stdin, then creates COUNT uploads of tenant TENANT, moves each through two transitions and
 * records one action outside the state machine for each, CONCURRENCY at a time (so on
 * SQLite they share group commits, on PostgreSQL they hold several connections), and prints
 * how many audit rows it wrote.
 */
import { randomUUID } from "node:crypto";
import { AuditLog, openDatabase, UploadRepository, type DatabaseSettings } from "./index.ts";

const settings = JSON.parse(process.env.SETTINGS!) as DatabaseSettings;
const count = Number(process.env.COUNT ?? 100);
const concurrency = Number(process.env.CONCURRENCY ?? 8);
const tenantId = process.env.TENANT ?? "acme";
const name = process.env.WRITER ?? "writer";

const db = openDatabase(settings);
const uploads = new UploadRepository(db);
const audit = new AuditLog(db);
await db("audit_chain_head").first(); // connection open and warm
process.stdout.write("ready\n");
await new Promise((go) => process.stdin.once("data", go));

let next = 0;
let written = 0;
async function lane(): Promise<void> {
  while (next < count) {
    const i = next++;
    const id = randomUUID().replace(/-/g, "");
    await uploads.create({ id, tenantId, filename: `${name}-${i}.pdf`, declaredType: "application/pdf", declaredSize: 100 + i, metadata: {}, objectKey: `pending/${tenantId}/${id}`, multipart: null, urlExpiresAt: new Date(Date.now() + 600_000) });
    for (const e of ["arrived", "inspect"] as const) {
      const r = await uploads.transition(id, e, e === "arrived" ? "ingest" : "inspect");
      if (!r.applied) throw new Error(`${e} on ${id} was not applied`);
    }
    await audit.record({ actor: "cli", action: "race.recorded", uploadId: id, tenantId, detail: { writer: name, i }, actorId: name, justification: `writer ${name} row ${i}` });
    written += 4;
  }
}
await Promise.all(Array.from({ length: concurrency }, lane));
process.stdout.write(JSON.stringify({ written }));
await db.destroy();
