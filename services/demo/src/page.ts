/** The demo page's HTML: the Dashboard's mount point and the verdict list the script fills. */
export function demoPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Intake upload demo</title>
<link rel="stylesheet" href="/demo/assets/uppy.css">
<style>body{font-family:system-ui,sans-serif;max-width:760px;margin:2rem auto}#verdicts li[data-status=verified]{color:#176c2f}#verdicts li[data-status=quarantined],#verdicts li[data-status=refused]{color:#a4161a}</style>
</head>
<body>
<h1>Intake upload demo</h1>
<p>Development only. Files go straight to storage with a short-lived upload session; each one is then checked and its verdict shown below.</p>
<div id="demo"><div id="dashboard"></div></div>
<h2>Verdicts</h2>
<ul id="verdicts" aria-live="polite"></ul>
<script type="module" src="/demo/assets/demo.js"></script>
</body>
</html>
`;
}
