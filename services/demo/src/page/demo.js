// The demo page's script, bundled by esbuild from node_modules (src/bundle.ts): Uppy's
// Dashboard with the AWS S3 plugin pointed at Intake's Companion-style routes. Nothing here
// is Intake-specific but the endpoint and the verdict read: Uppy sends no size and picks form
// POST or multipart by its own rule, and Intake learns each file's size when it arrives.
import Uppy from "@uppy/core";
import Dashboard from "@uppy/dashboard";
import AwsS3 from "@uppy/aws-s3";

const verdicts = document.getElementById("verdicts");
// Statuses after which nothing more happens to an upload (@intake/domain TERMINAL_STATUSES).
const FINAL = new Set(["verified", "quarantined", "expired", "aborted"]);
// The API holds GET /v1/uploads/:id?wait=N until the verdict or N seconds (20 at most).
const WAIT_SECONDS = 20;

async function start() {
  const res = await fetch("/demo/session", { method: "POST" });
  if (!res.ok) throw new Error(`could not get an upload session: ${res.status} ${res.statusText}`);
  const session = await res.json();
  const uppy = new Uppy({ autoProceed: false });
  uppy.use(Dashboard, { inline: true, target: "#dashboard", showProgressDetails: true, proudlyDisplayPoweredByUppy: false, height: 360 });
  // The one Intake-specific option: the session's base URL (the token is in the path).
  uppy.use(AwsS3, { companionEndpoint: session.uppyEndpoint });
  uppy.on("upload-success", (file, response) => watch(file, response.body.key, session));
  uppy.on("upload-error", (file, err) => show(file.name, "refused", err.message));
  window.demoUppy = uppy;
}

/**
 * The verdict without polling: one long-poll after another (each answers at the verdict or
 * after WAIT_SECONDS), the upload's status shown as it goes. The key Intake chose ends in the
 * upload id (pending/<tenant>/<id>).
 */
async function watch(file, key, session) {
  const id = key.split("/").pop();
  show(file.name, "checking", "", id);
  let failures = 0;
  for (;;) {
    let res;
    try {
      res = await fetch(`/v1/uploads/${encodeURIComponent(id)}?wait=${WAIT_SECONDS}`, { headers: { authorization: `Bearer ${session.token}` } });
    } catch {
      res = null;
    }
    if (res?.ok) {
      failures = 0;
      const { upload } = await res.json();
      if (FINAL.has(upload.status)) return show(file.name, upload.status, upload.result?.reason ?? "", id);
      show(file.name, "checking", upload.status, id);
    } else {
      // The API away or refusing: back off (1 s, 2 s, ... 30 s) rather than spin.
      failures += 1;
      if (res && res.status < 500 && res.status !== 429) return show(file.name, "error", `${res.status} ${res.statusText}`, id);
      await new Promise((r) => setTimeout(r, Math.min(30_000, 1000 * 2 ** (failures - 1))));
    }
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
