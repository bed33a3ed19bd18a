import { readFileSync } from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdminUserRepository } from "@intake/db";
import type { AdminRole, Upload } from "@intake/domain";
import { queueName } from "@intake/pipeline";
import { projectSignatures } from "@intake/test";
import { launchBrowser } from "../support/browser.ts";
import { readCsvObjects } from "../api/csv-reader.ts";
import { eicar } from "../pipeline/fixtures.ts";
import { quarantinedForScanError } from "../pipeline/support/review.ts";
import { startPipelineStack, type PipelineStack } from "../pipeline/support/stack.ts";

const EICAR_SIGNATURE = projectSignatures().nameFor(eicar()) ?? "no loaded signature matches EICAR";
const PASSWORD = "correct horse battery staple";

/**
 * The admin pages as their users meet them: in a real browser (Debian's chromium), on the
 * whole stack (API, fauxqs, the real workers, clamd), signed in through the sign-in form.
 * A compliance reviewer finds a quarantined upload, releases it with a justification and
 * downloads the report; two admins request and approve a malware override; an operator
 * opens the queue dashboard and finds the upload's job. Each person has their own browser
 * context (their own cookies), as two people at two desks would.
 */
describe("the admin pages in a real browser", () => {
  let s: PipelineStack;
  let browser: Browser;
  let transient: Upload;
  let malware: Upload;

  beforeAll(async () => {
    // One ingest worker throughout; the checking workers come and go. Few, quick retries:
    // the first quarantine needs every attempt to fail.
    s = await startPipelineStack({ storage: "fauxqs", database: "sqlite", workerRoles: "ingest", env: { JOB_ATTEMPTS: "3", JOB_BACKOFF_MS: "100" } });
    // A quarantine a release can clear: clamd was away for every attempt (scan_error).
    transient = await quarantinedForScanError(s, Buffer.from("quarterly figures, nothing else\n"), "text/plain", "figures.txt");
    await s.startWorker("inspect,scan,finalize,reaper,recheck");
    const { id } = await s.upload(eicar(), { contentType: "text/plain", filename: "@SUM(1+1) invoice.txt" });
    malware = await s.waitFor(id, ["quarantined", "verified"]);
    expect(malware.reason).toBe("malware");
    const users = new AdminUserRepository(s.database.db);
    const people: [string, string, AdminRole][] = [
      ["carla@example.test", "Carla Compliance", "compliance"],
      ["ada@example.test", "Ada Admin", "admin"],
      ["bob@example.test", "Bob Admin", "admin"],
      ["olga@example.test", "Olga Operator", "operator"],
    ];
    for (const [email, name, role] of people) await users.create({ email, name, role, password: PASSWORD });
    browser = await launchBrowser();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  /** A person's own browser context, signed in through the sign-in form. */
  async function signIn(email: string, next: string): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    await page.goto(`${s.apiUrl}${next}`);
    // An anonymous visit is sent to the sign-in page, which brings the person back after.
    expect(new URL(page.url()).pathname).toBe("/admin/login");
    await page.fill("#email", email);
    await page.fill("#password", PASSWORD);
    await Promise.all([page.waitForURL((u) => u.pathname === next.split("?")[0]), page.click("button[type=submit]")]);
    return { context, page };
  }

  async function statusOf(id: string, wanted: string[], timeoutMs = 60_000): Promise<Upload> {
    return s.waitFor(id, wanted as Upload["status"][], timeoutMs);
  }

  it("a compliance reviewer filters the quarantine, opens a detail, releases it with a justification and downloads the CSV", async () => {
    const { context, page } = await signIn("carla@example.test", "/admin/quarantine");
    try {
      await page.selectOption("#f-reason", "scan_error");
      await Promise.all([page.waitForURL(/reason=scan_error/), page.click("form.filters button[type=submit]")]);
      const rows = page.locator(`[data-id="${transient.id}"]`);
      await expect.poll(() => rows.count()).toBe(1);
      await expect.poll(() => page.locator(`[data-id="${malware.id}"]`).count()).toBe(0);

      await Promise.all([page.waitForURL(new RegExp(`/admin/quarantine/${transient.id}$`)), page.click(`a[href="/admin/quarantine/${transient.id}"]`)]);
      expect(await page.textContent("#reason")).toContain("scan_error");
      expect(await page.textContent("#filename")).toBe("figures.txt");

      // The browser enforces the form's `required`: an empty justification is not even sent.
      await page.click("#release button[type=submit]");
      expect(new URL(page.url()).pathname).toBe(`/admin/quarantine/${transient.id}`);
      expect((await statusOf(transient.id, ["quarantined"])).status).toBe("quarantined");

      await page.fill("#release textarea[name=justification]", "clamd was down during the original scan (INC-2291)");
      await Promise.all([page.waitForURL(/done=released/), page.click("#release button[type=submit]")]);
      expect(await page.textContent("#action-notice")).toContain("Released");
      expect((await statusOf(transient.id, ["verified"])).status).toBe("verified");
      await page.reload();
      expect(await page.textContent("#timeline")).toContain("clamd was down during the original scan (INC-2291)");

      await page.goto(`${s.apiUrl}/admin/quarantine`);
      const [download] = await Promise.all([page.waitForEvent("download"), page.click("a:text-is('CSV')")]);
      expect(download.suggestedFilename()).toMatch(/^quarantine-.*\.csv$/);
      const csv = readFileSync((await download.path())!, "utf8");
      const exported = readCsvObjects(csv);
      const eicarRow = exported.find((r) => r.upload_id === malware.id);
      expect(eicarRow).toMatchObject({ reason: "malware", signature: EICAR_SIGNATURE, tenant_id: s.tenant });
      // The filename would run as a formula in a spreadsheet: the export neutralised it.
      expect(eicarRow!.filename).toBe("'@SUM(1+1) invoice.txt");
      expect(eicarRow!.quarantined_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const released = exported.find((r) => r.upload_id === transient.id);
      expect(released?.actions).toContain("INC-2291");
    } finally {
      await context.close();
    }
  });

  it("a malware override needs two different admins: Ada requests it, cannot approve it herself, Bob approves", async () => {
    const detail = `/admin/quarantine/${malware.id}`;
    const ada = await signIn("ada@example.test", detail);
    const bob = await signIn("bob@example.test", detail);
    try {
      // No single-person release for a malware finding: only the override request is offered.
      expect(await ada.page.locator("#release").count()).toBe(0);
      await ada.page.fill("#request-override textarea[name=justification]", "vendor test file, confirmed by the security team (SEC-77)");
      await Promise.all([ada.page.waitForURL(/done=override_requested/), ada.page.click("#request-override button[type=submit]")]);
      expect(await ada.page.textContent("#pending-override")).toContain("SEC-77");
      // The requester is offered no approval.
      expect(await ada.page.locator("#approve-override").count()).toBe(0);
      expect((await statusOf(malware.id, ["quarantined"])).status).toBe("quarantined");

      await bob.page.reload();
      expect(await bob.page.textContent("#pending-override")).toContain("Ada Admin");
      await bob.page.fill("#approve-override textarea[name=justification]", "agreed: the file is the EICAR test string (SEC-77)");
      await Promise.all([bob.page.waitForURL(/done=override_approved/), bob.page.click("#approve-override button[type=submit]")]);
      expect((await statusOf(malware.id, ["verified"])).status).toBe("verified");

      await bob.page.reload();
      const overrides = await bob.page.textContent("#overrides");
      expect(overrides).toContain("Ada Admin");
      expect(overrides).toContain("Bob Admin");
      const timeline = await bob.page.textContent("#timeline");
      expect(timeline).toContain("vendor test file, confirmed by the security team (SEC-77)");
      expect(timeline).toContain("agreed: the file is the EICAR test string (SEC-77)");
    } finally {
      await ada.context.close();
      await bob.context.close();
    }
  });

  it("an operator opens the queue dashboard and sees the upload's job", async () => {
    const { context, page } = await signIn("olga@example.test", `/admin/queues/queue/${queueName("scan")}?status=completed`);
    try {
      await page.waitForFunction((id) => (globalThis as { document?: { body: { innerText: string } } }).document!.body.innerText.includes(id), malware.id, { timeout: 20_000 });
      // A compliance-only page is refused to the operator.
      const refused = await page.goto(`${s.apiUrl}/admin/quarantine`);
      expect(refused?.status()).toBe(403);
    } finally {
      await context.close();
    }
  });
});
