import { bytesSource } from "@intake/client/node";
import exifr from "exifr";
import sharp from "sharp";
import { say, see } from "../evidence.ts";
import { download, sha256, short, type TourContext, type TourStep } from "../step.ts";

/**
 * A tenant whose policy strips image metadata gets a photo served without its GPS position
 * and camera serial (issue 12 §2), and both sha256s recorded: what was uploaded, what is
 * served.
 */
const SERIAL = "TOUR-SN-4417";

/** A real JPEG (libvips through sharp) carrying a GPS position and a camera body serial. */
async function photoWithGps(nonce: string): Promise<Buffer> {
  const px = Buffer.alloc(48 * 32 * 3);
  for (let i = 0; i < px.length; i += 3) px.set([200, 40 + (i % 90), 30], i);
  return sharp(px, { raw: { width: 48, height: 32, channels: 3 } })
    .withExif({
      IFD0: { Make: "Acme", Model: "Tour Cam", ImageDescription: `intake tour ${nonce}` },
      IFD2: { BodySerialNumber: SERIAL },
      IFD3: { GPSLatitudeRef: "N", GPSLatitude: "48/1 51/1 2970/100", GPSLongitudeRef: "E", GPSLongitude: "2/1 17/1 4000/100" },
    })
    .jpeg({ quality: 90 })
    .toBuffer();
}

async function metadataOf(bytes: Buffer): Promise<{ gps: { latitude: number; longitude: number } | undefined; serial: unknown }> {
  const gps = (await exifr.gps(bytes).catch(() => undefined)) as { latitude: number; longitude: number } | undefined;
  const tags = (await exifr.parse(bytes, { exif: true, tiff: true }).catch(() => undefined)) as Record<string, unknown> | undefined;
  return { gps: gps && Number.isFinite(gps.latitude) ? gps : undefined, serial: tags?.BodySerialNumber ?? tags?.SerialNumber };
}

export const strippedPhoto: TourStep = {
  name: "photo",
  title: "A stripped photo: a tenant policy that strips image metadata, a JPEG with GPS and a camera serial",
  async run(ctx: TourContext) {
    const admin = await ctx.stack.admin();
    const tenant = await ctx.stack.tenantOfKey();
    say.line(`signed in as ${ctx.stack.settings.admin.email} (admin API); the dev key's tenant is "${tenant}"`);

    const before = await admin.tenantPolicy(tenant);
    const change = ctx.undo.record({ kind: "tenant-policy", tenantId: tenant, policy: before.policy });
    try {
      const after = await admin.setTenantPolicy(tenant, { ...before.policy, stripImageMetadata: true }, { version: before.version });
      see(after.inForce.stripImageMetadata === true, `the policy of ${tenant} does not strip image metadata after the change: ${JSON.stringify(after.inForce)}`);
      say.seen(`PUT /v1/admin/tenants/${tenant}/policy: stripImageMetadata ${String(before.inForce.stripImageMetadata)} -> true (policy version ${before.version} -> ${after.version})`);

      const photo = await photoWithGps(ctx.nonce);
      const original = await metadataOf(photo);
      see(original.gps && original.serial === SERIAL, "the tour's own photo carries no GPS or serial (sharp's withExif)");
      say.line(`the photo as uploaded: GPS ${original.gps!.latitude.toFixed(4)}, ${original.gps!.longitude.toFixed(4)}; camera serial ${String(original.serial)}; sha256 ${short(sha256(photo))}`);

      const { upload } = await ctx.stack.client.upload(bytesSource(photo), { filename: "tour-photo.jpg", contentType: "image/jpeg", signal: ctx.signal });
      const verdict = await ctx.stack.client.waitForVerdict(upload.id, { timeoutMs: 90_000, signal: ctx.signal });
      see(verdict.status === "verified", `the photo ${upload.id} was ${verdict.status} (${verdict.reason ?? ""}), not verified`);
      const r = verdict.upload.result;
      see(r.metadataStripped === true, `upload ${upload.id} is verified but result.metadataStripped is ${String(r.metadataStripped)}`);
      see(r.sha256 === sha256(photo), `result.sha256 ${short(r.sha256)} is not the uploaded photo's ${short(sha256(photo))}`);
      see(r.servedSha256 && r.servedSha256 !== r.sha256, `result.servedSha256 ${short(r.servedSha256)} names no stripped copy`);
      say.seen(`upload ${upload.id} verified, metadataStripped: true; sha256 as uploaded ${short(r.sha256)}, as served ${short(r.servedSha256)} (${r.servedSize} bytes)`);

      const served = await download(ctx, upload.id);
      see(sha256(served) === r.servedSha256, `the download's sha256 ${short(sha256(served))} is not result.servedSha256 ${short(r.servedSha256)}`);
      const left = await metadataOf(served);
      see(!left.gps, `the served copy still has GPS: ${JSON.stringify(left.gps)}`);
      see(left.serial === undefined && !served.includes(Buffer.from(SERIAL)), "the served copy still carries the camera serial");
      say.seen(`downloaded ${served.length} bytes, sha256 ${short(sha256(served))} = servedSha256; exifr finds no GPS and no serial in it`);
    } finally {
      const done = await ctx.undo.undo(change);
      if (done) say.cleanup(done);
    }
  },
};
