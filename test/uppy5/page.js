// Uppy 5.x (the previous major) as a page would use it against Intake, bundled by
// test/browser/uppy5.test.ts with the root's esbuild from this folder's own node_modules.
// The one Intake-specific option is 5.x's `endpoint` (6.x renamed it companionEndpoint):
// the session's base URL, token in the path. shouldUseMultipart is the page's own choice
// (Uppy's default: above 100 MiB), which Intake takes as it is.
import Uppy from "@uppy/core";
import Dashboard from "@uppy/dashboard";
import AwsS3 from "@uppy/aws-s3";
import corePackage from "@uppy/core/package.json" with { type: "json" };
import s3Package from "@uppy/aws-s3/package.json" with { type: "json" };

window.uppyVersions = { core: corePackage.version, awsS3: s3Package.version };

window.startUppy = (endpoint, multipartAbove) => {
  const uppy = new Uppy({ autoProceed: false });
  uppy.use(Dashboard, { inline: true, target: "#dashboard", proudlyDisplayPoweredByUppy: false });
  uppy.use(AwsS3, { endpoint, shouldUseMultipart: (file) => (file.size ?? 0) > multipartAbove });
  window.uppy = uppy;
};

/** Adds the files (name, type, base64 bytes), uploads them, answers each one's key or error. */
window.uploadFiles = async (files) => {
  const uppy = window.uppy;
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0));
    uppy.addFile({ name: f.name, type: f.type, data: new Blob([bytes], { type: f.type }) });
  }
  const result = await uppy.upload();
  return [
    ...result.successful.map((file) => ({ name: file.name, key: file.response.body.key, uploadURL: file.response.uploadURL })),
    ...result.failed.map((file) => ({ name: file.name, error: String(file.error) })),
  ];
};
