import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { PutObjectCommand } from "@aws-sdk/client-s3";
import { beforeAllOrFailEach } from "@intake/test";
import { objectKey } from "@intake/domain";
import { Reaper, stagingKey } from "@intake/pipeline";
import { createLogger } from "@intake/runtime";
import { waitFor } from "@intake/testkit";
import { eicar, png } from "./fixtures.ts";
import { startPipelineStack, type PipelineStack } from "./support/stack.ts";

/**
 * The reaper's sweep of staging copies (packages/pipeline/src/staging-sweep.ts) on real
 * storage and a real database: copies planted as a killed finalize, scan or recheck leaves
 * them, beside look-alike keys, for final uploads (verified, quarantined), one whose final
 * object is gone, one still in progress, and none. Ages are real: the old copies are written
 * a few seconds before the young ones and the pass's safe age falls between them.
 */
const DAY = 86_400_000;

async function plant(s: PipelineStack, key: string): Promise<string> {
  await s.storage.s3.send(new PutObjectCommand({ Bucket: s.storage.bucket, Key: key, Body: Buffer.from(`planted ${key}`), ContentType: "application/octet-stream" }));
  return key;
}

async function keysUnder(s: PipelineStack, prefix: string): Promise<Map<string, Date>> {
  const out = new Map<string, Date>();
  let next: string | null = null;
  do {
    const page = await s.storage.store.listObjects(prefix, next ? { continuationToken: next } : {});
    for (const o of page.objects) out.set(o.key, o.lastModified!);
    next = page.next;
  } while (next);
  return out;
}

async function pendingUpload(s: PipelineStack): Promise<string> {
  const res = await fetch(`${s.apiUrl}/v1/uploads`, { method: "POST", headers: { authorization: `Bearer ${s.apiKey}`, "content-type": "application/json" }, body: JSON.stringify({ filename: "never.png", contentType: "image/png", size: 100 }) });
  expect(res.status).toBe(201);
  return ((await res.json()) as { upload: { id: string } }).upload.id;
}

async function finished(s: PipelineStack, bytes: Buffer, contentType: string, status: "verified" | "quarantined"): Promise<string> {
  const { id } = await s.upload(bytes, { contentType, complete: true });
  expect((await s.waitFor(id, ["verified", "quarantined"])).status).toBe(status);
  return id;
}

for (const storage of ["fauxqs", "rgw"] as const) {
  describe(`the reaper's staging sweep on ${storage}`, () => {
    let s: PipelineStack;
    beforeAllOrFailEach(async () => {
      s = await startPipelineStack({ storage, database: storage === "fauxqs" ? "pg" : "sqlite" });
    });
    afterAll(async () => s?.close());

    it("deletes exactly the old staging copies of final uploads whose final object is in place, and of no upload; never a final object or a look-alike", async () => {
      const t = s.tenant;
      const verified = await finished(s, png(5, 5, 1), "image/png", "verified");
      const quarantined = await finished(s, eicar(), "text/plain", "quarantined");
      const finalGone = await finished(s, png(5, 5, 2), "image/png", "verified");
      await s.storage.store.delete(objectKey("verified", t, finalGone));
      const inProgress = await pendingUpload(s);
      // Released for a recheck: not final, and its final object (quarantine/) is in place, as
      // while a recheck's streamed scan writes its staging copy.
      const rechecking = await finished(s, eicar(), "text/plain", "quarantined");
      expect((await s.uploads.transition(rechecking, "release", "admin")).applied).toBe(true);
      const ghost = `${Date.now().toString(16).padStart(12, "0")}${randomBytes(16).toString("hex")}`;
      const run = randomUUID();

      // Written first: old by the time of the pass.
      const sweptOld = [
        await plant(s, stagingKey({ tenantId: t, id: verified }, randomUUID())),
        await plant(s, stagingKey({ tenantId: t, id: quarantined }, randomUUID())),
        await plant(s, stagingKey({ tenantId: t, id: ghost }, randomUUID())), // no row
        // The key names another tenant than the row's: not that upload's copy. Sorted last,
        // so a pass of ten keys does not reach it.
        await plant(s, stagingKey({ tenantId: "zzz-other", id: verified }, randomUUID())),
      ];
      const keptOld = [
        await plant(s, stagingKey({ tenantId: t, id: finalGone }, randomUUID())), // final object missing
        await plant(s, stagingKey({ tenantId: t, id: inProgress }, randomUUID())), // not final
        await plant(s, stagingKey({ tenantId: t, id: rechecking }, randomUUID())), // not final, final key present
      ];
      const lookAlikes = [
        await plant(s, `quarantine/${t}/${verified}.promoting-not-a-uuid`),
        await plant(s, `quarantine/${t}/${verified}.promoting-${run}.bak`),
        await plant(s, `quarantine/${t}/${verified}.promoting-${run.toUpperCase()}`),
        await plant(s, `quarantine/${t}/${verified}-promoting-${run}`),
        await plant(s, `quarantine/${t}/x/${verified}.promoting-${run}`),
        await plant(s, `verified/${t}/${verified}.promoting-${run}`),
      ];
      const finals = [objectKey("verified", t, verified), objectKey("quarantine", t, quarantined), objectKey("quarantine", t, rechecking)];
      const oldest = await keysUnder(s, "");
      const oldMax = Math.max(...[...sweptOld, ...keptOld].map((k) => oldest.get(k)!.getTime()));
      await waitFor(async () => Date.now() > oldMax + 3500, { timeoutMs: 10_000, intervalMs: 100, message: "three seconds past the old copies" });
      // Written last: young at the pass.
      const young = [await plant(s, stagingKey({ tenantId: t, id: verified }, randomUUID())), await plant(s, stagingKey({ tenantId: t, id: ghost }, randomUUID()))];
      const listed = await keysUnder(s, "");
      const youngMin = Math.min(...young.map((k) => listed.get(k)!.getTime()));
      expect(youngMin - oldMax).toBeGreaterThanOrEqual(2000);
      const now = new Date(youngMin + 1000);
      const minAge = Math.floor((now.getTime() - oldMax) / 1000); // >= 2 s: old ones are at least this old, young ones 1 s at most

      const logs: string[] = [];
      const logger = createLogger({ level: "info", name: "reaper", destination: { write: (l: string) => void logs.push(l) } });
      // Two keys a page, five pages a pass: the walk takes more than one pass and goes on from where it stopped.
      const reaper = new Reaper({ repository: s.uploads, audit: s.audit, store: s.storage.store, queues: s.queues, logger, settings: { ...s.config.reaper, stagingSweepAfterSeconds: minAge, stagingPageSize: 2 } });
      const quarantineKeys = [...listed.keys()].filter((k) => k.startsWith("quarantine/"));
      expect(quarantineKeys.length).toBeGreaterThan(10);
      const first = await reaper.reap(now);
      expect(first.stagingSwept).toBeLessThan(sweptOld.length);
      expect((await keysUnder(s, "quarantine/zzz-other/")).size).toBe(1);
      let swept = first.stagingSwept;
      for (let pass = 0; pass < 4; pass++) swept += (await reaper.reap(now)).stagingSwept;
      expect(swept).toBe(sweptOld.length);

      const after = await keysUnder(s, "");
      for (const k of sweptOld) expect([k, after.has(k)]).toEqual([k, false]);
      for (const k of [...keptOld, ...lookAlikes, ...young, ...finals]) expect([k, after.has(k)]).toEqual([k, true]);
      // Nothing else was touched: the bucket is what it was less the swept copies.
      expect([...after.keys()].sort()).toEqual([...listed.keys()].filter((k) => !sweptOld.includes(k)).sort());
      const sweptLines = logs.map((l) => JSON.parse(l) as { msg: string; key?: string; why?: string }).filter((l) => l.msg === "staging copy swept");
      expect(sweptLines.map((l) => [l.key, l.why]).sort()).toEqual(
        [
          [sweptOld[0], "final"],
          [sweptOld[1], "final"],
          [sweptOld[2], "no_upload"],
          [sweptOld[3], "no_upload"],
        ].sort(),
      );
      expect(logs.some((l) => l.includes(keptOld[0]!) && l.includes("final object is not in place"))).toBe(true);
      // The rows are untouched: nothing but the bytes of copies went.
      expect((await s.uploads.getById(inProgress))?.status).toBe("pending");
      expect((await s.uploads.getById(verified))?.status).toBe("verified");
      expect((await s.uploads.getById(rechecking))?.status).toBe("rechecking");

      // Past the backstop every staging copy goes, whatever its upload; look-alikes and finals stay.
      const late = new Reaper({ repository: s.uploads, audit: s.audit, store: s.storage.store, queues: s.queues, logger, settings: { ...s.config.reaper, stagingSweepAfterSeconds: minAge } });
      const backstop = await late.reap(new Date(now.getTime() + 7 * DAY));
      expect(backstop.stagingSwept).toBe(keptOld.length + young.length);
      const last = await keysUnder(s, "");
      for (const k of [...keptOld, ...young]) expect([k, last.has(k)]).toEqual([k, false]);
      for (const k of [...lookAlikes, ...finals]) expect([k, last.has(k)]).toEqual([k, true]);
    });
  });
}
