import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectSignatures } from "@intake/test";
import { eicar } from "../pipeline/fixtures.ts";
import { startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";
import { signInAs, type AdminClient } from "./admin-session.ts";
import { readCsvObjects } from "./csv-reader.ts";

const EICAR_SIGNATURE = projectSignatures().nameFor(eicar()) ?? "no loaded signature matches EICAR";

/**
 * The "done when" for the reviewer, on the whole stack: an EICAR upload goes through
 * the API, storage, SQS, the real workers and clamd into quarantine; a compliance reviewer
 * then finds it by its signature, reads why it was caught, sees it on today's summary and
 * exports it. Its filename is one a spreadsheet would run, had the export not neutralised it.
 */
describe("an EICAR upload through the real pipeline, in the compliance review", () => {
  let s: PipelineStack;
  let reviewer: AdminClient;
  let id: string;
  const filename = "=1+2 eicar.txt";

  beforeAll(async () => {
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite" });
    reviewer = await signInAs({ url: s.apiUrl, database: s.database, config: s.config }, "compliance", { name: "Eve Examiner" });
    ({ id } = await s.upload(eicar(), { contentType: "text/plain", filename }));
    const done = await s.waitFor(id, ["verified", "quarantined"]);
    expect(done.status).toBe("quarantined");
  }, 90_000);
  afterAll(async () => s?.close());

  it("is found by its signature, explained in detail, counted on today's summary and exported", async () => {
    const list = await reviewer.request("GET", `/admin/quarantine?signature=${encodeURIComponent(EICAR_SIGNATURE.slice(0, 5).toLowerCase())}`);
    const html = await list.text();
    expect(list.status).toBe(200);
    expect(html).toContain(`data-id="${id}"`);
    expect(html).toContain(EICAR_SIGNATURE);

    const detail = await (await reviewer.request("GET", `/admin/quarantine/${id}`)).text();
    expect(detail).toContain(`clamd found ${EICAR_SIGNATURE}`);
    expect(detail).toMatch(/<td class="mono">ClamAV \d+\.\d+[^<]*<\/td>/);
    expect(detail).toContain("upload.quarantined");
    expect(detail).toContain("=1+2 eicar.txt");

    const today = new Date().toISOString().slice(0, 10);
    const summary = (await (await reviewer.request("GET", `/v1/admin/quarantine/summary?format=json&from=${today}&to=${today}`)).json()) as any;
    expect(summary.byReason).toEqual([{ key: "malware", count: 1 }]);
    expect(summary.byDay).toEqual([{ key: today, count: 1 }]);
    const page = await (await reviewer.request("GET", `/admin/quarantine/summary?from=${today}&to=${today}`)).text();
    expect(page).toMatch(/<svg [^>]*aria-label="Quarantined uploads by reason"[\s\S]*?>malware<\/text>/);

    const rows = readCsvObjects(await (await reviewer.request("GET", "/v1/admin/quarantine?format=csv")).text());
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ upload_id: id, tenant_id: s.tenant, filename: `'${filename}`, reason: "malware", signature: EICAR_SIGNATURE, state: "held", stored_size: "68" });
    expect(rows[0]!.scanner_version).toMatch(/^ClamAV /);
  });
});
