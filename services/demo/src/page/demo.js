// The demo page's script, bundled by esbuild from node_modules (src/bundle.ts): Uppy's
// Dashboard with the AWS S3 plugin pointed at Intake's Companion-style routes. Nothing here
// is Intake-specific but the endpoint and the verdict polling.
import Uppy from "@uppy/core";
import Dashboard from "@uppy/dashboard";
import AwsS3 from "@uppy/aws-s3";

const root = document.getElementById("demo");
const verdicts = document.getElementById("verdicts");
// The API's multipart threshold (Uppy's default is 100 MiB, the API's default too; the dev
// stack's is lower). Parts: Uppy's default size, which the Uppy routes plan with.
const multipartThreshold = Number(root.dataset.multipartThreshold);

async function start() {
  const res = await fetch("/demo/session", { method: "POST" });
  if (!res.ok) throw new Error(`could not get an upload session: ${res.status} ${res.statusText}`);
  const session = await res.json();
  const uppy = new Uppy({ autoProceed: false });
  uppy.use(Dashboard, { inline: true, target: "#dashboard", showProgressDetails: true, proudlyDisplayPoweredByUppy: false, height: 360 });
  // The one Intake-specific option: the session's base URL (the token is in the path).
  uppy.use(AwsS3, {
    companionEndpoint: session.uppyEndpoint,
    shouldUseMultipart: (file) => (file.size ?? 0) > multipartThreshold,
  });
  // Intake binds every upload to its size, which Uppy does not send by itself.
  uppy.on("file-added", (file) => uppy.setFileMeta(file.id, { size: String(file.size) }));
  uppy.on("upload-success", (file, response) => watch(file, response.body.key, session));
  uppy.on("upload-error", (file, err) => show(file.name, "refused", err.message));
  window.demoUppy = uppy;
}

/** The key Intake chose ends in the upload id (pending/<tenant>/<id>). */
async function watch(file, key, session) {
  const id = key.split("/").pop();
  show(file.name, "checking", "", id);
  for (;;) {
    const res = await fetch(`/v1/uploads/${encodeURIComponent(id)}`, { headers: { authorization: `Bearer ${session.token}` } });
    if (res.ok) {
      const { upload } = await res.json();
      if (upload.status === "verified" || upload.status === "quarantined" || upload.status === "rejected") {
        show(file.name, upload.status, upload.reason ?? "", id);
        return;
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function show(name, status, detail, id) {
  let row = [...verdicts.children].find((li) => li.dataset.name === name);
  if (!row) {
    row = document.createElement("li");
    row.dataset.name = name;
    verdicts.append(row);
  }
  if (id) row.dataset.uploadId = id;
  row.dataset.status = status;
  row.textContent = `${name}: ${status}${detail ? ` (${detail})` : ""}`;
}

start().catch((err) => show("session", "error", err.message));
