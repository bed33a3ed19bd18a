import { readdirSync, readFileSync, statSync } from "node:fs";
import { builtinModules } from "node:module";
import { join } from "node:path";
import { DockerfileParser, type Instruction } from "dockerfile-ast";
import { describe, expect, it } from "vitest";
import { dockerIgnores, lockfileWorkspaces, readRepoFile, repoPathExists, ROOT } from "./support/repo.ts";

/**
 * The image (Dockerfile at the root) checked structurally: these machines have no Docker
 * engine to build it. Each rule below is also shown to catch the mistake it is about, on a
 * Dockerfile changed to make it.
 */
interface Stage {
  name: string | null;
  image: string | null;
  tag: string | null;
  instructions: Instruction[];
}

function stages(text: string): Stage[] {
  const out: Stage[] = [];
  for (const ins of DockerfileParser.parse(text).getInstructions()) {
    if (ins.getKeyword() === "FROM") {
      const from = ins as unknown as { getImageName(): string | null; getImageTag(): string | null; getBuildStage(): string | null };
      out.push({ name: from.getBuildStage(), image: from.getImageName(), tag: from.getImageTag(), instructions: [] });
    } else out.at(-1)?.instructions.push(ins);
  }
  return out;
}

const args = (ins: Instruction) => ins.getArguments().map((a) => a.getValue());
const flags = (ins: Instruction) => (ins as unknown as { getFlags(): { getName(): string; getValue(): string | null }[] }).getFlags();
const fromFlag = (ins: Instruction) => flags(ins).find((f) => f.getName() === "from")?.getValue() ?? null;
/** JSON-form arguments (["node", "x.ts"]) as plain words. */
const words = (ins: Instruction) => (ins.getRawArgumentsContent() ?? "").replace(/[[\]",]/g, " ").split(/\s+/).filter(Boolean);

const NPM_INSTALL = /\bnpm\s+(install|i|ci|add)\b/;

function dockerfileProblems(text: string, dockerignore = readRepoFile(".dockerignore")): string[] {
  const problems: string[] = [];
  const all = stages(text);
  if (all.length < 2) problems.push("not multi-stage: one FROM");
  const stageNames = new Set(all.map((s) => s.name).filter(Boolean));
  for (const s of all) {
    if (s.image && stageNames.has(s.image)) continue;
    if (s.image !== "node") problems.push(`FROM ${s.image}: the base must be the official node image`);
    else if (!/^24\.\d+\.\d+-/.test(s.tag ?? "")) problems.push(`FROM node:${s.tag ?? "(no tag)"}: must be Node 24 pinned to a full version tag`);
  }
  const final = all.at(-1);
  if (!final) return problems;

  // The process runs unprivileged, and it is the last USER (nothing switches back).
  const users = final.instructions.filter((i) => i.getKeyword() === "USER");
  const user = users.at(-1) ? args(users.at(-1)!)[0]?.split(":")[0] : undefined;
  if (!user) problems.push("final stage: no USER (the process would run as root)");
  else if (user === "root" || user === "0") problems.push(`final stage: USER ${user} is root`);

  // No dev dependencies: neither installed in the final stage nor copied from a stage that installed them.
  const installsDev = (s: Stage) =>
    s.instructions.some((i) => i.getKeyword() === "RUN" && (i.getRawArgumentsContent() ?? "").split(/&&|;|\|\|/).some((cmd) => NPM_INSTALL.test(cmd) && !/--omit[= ]dev\b/.test(cmd)));
  if (installsDev(final)) problems.push("final stage: npm install/ci without --omit=dev");
  for (const copy of final.instructions.filter((i) => i.getKeyword() === "COPY" && fromFlag(i))) {
    const source = all.find((s) => s.name === fromFlag(copy));
    if (source && installsDev(source)) problems.push(`final stage copies from ${source.name}, which installs dev dependencies`);
  }
  if (/NODE_ENV=(development|test)\b/.test(final.instructions.map((i) => i.getRawArgumentsContent()).join("\n"))) problems.push("final stage: NODE_ENV is not production");

  // A healthcheck that runs a file the image holds.
  const health = final.instructions.filter((i) => i.getKeyword() === "HEALTHCHECK");
  if (health.length === 0) problems.push("final stage: no HEALTHCHECK");
  for (const h of health) {
    const w = words(h);
    if (w.includes("NONE")) problems.push("HEALTHCHECK NONE");
    for (const file of w.filter((x) => /\.(ts|js|mjs)$/.test(x))) if (!repoPathExists(file) || dockerIgnores(file, dockerignore)) problems.push(`HEALTHCHECK runs ${file}, which the image does not hold`);
  }
  for (const cmd of final.instructions.filter((i) => i.getKeyword() === "CMD" || i.getKeyword() === "ENTRYPOINT")) {
    for (const file of words(cmd).filter((x) => /\.(ts|js|mjs)$/.test(x))) if (!repoPathExists(file) || dockerIgnores(file, dockerignore)) problems.push(`${cmd.getKeyword()} runs ${file}, which the image does not hold`);
  }

  // Every COPY from the build context names something that exists and is not .dockerignored.
  for (const s of all) {
    for (const copy of s.instructions.filter((i) => (i.getKeyword() === "COPY" || i.getKeyword() === "ADD") && !fromFlag(i))) {
      const sources = args(copy).slice(0, -1);
      for (const src of sources) {
        if (/[*?[]/.test(src)) problems.push(`COPY ${src}: no globs (the test cannot see what they match)`);
        else if (!repoPathExists(src)) problems.push(`COPY ${src}: not in the repository`);
        else if (dockerIgnores(src, dockerignore)) problems.push(`COPY ${src}: excluded by .dockerignore`);
      }
    }
  }

  // npm ci stays in sync with the lockfile only with every workspace's manifest in place.
  const installStage = all.find((s) => s.instructions.some((i) => i.getKeyword() === "RUN" && NPM_INSTALL.test(i.getRawArgumentsContent() ?? "")));
  if (installStage) {
    const copied = new Set(installStage.instructions.filter((i) => i.getKeyword() === "COPY" && !fromFlag(i)).flatMap((i) => args(i).slice(0, -1)));
    for (const w of ["package.json", "package-lock.json", ...lockfileWorkspaces().map((w) => `${w}/package.json`)]) if (!copied.has(w)) problems.push(`the install stage does not copy ${w}`);
  }
  return problems;
}

const DOCKERFILE = readRepoFile("Dockerfile");

describe("the Dockerfile", () => {
  it("is multi-stage on a pinned Node 24, runs unprivileged with a healthcheck, holds no dev dependencies, and copies only what exists", () => {
    expect(dockerfileProblems(DOCKERFILE)).toEqual([]);
  });

  it("runs the API by default, and a worker, a migration or a healthcheck by command: each file it names exists in the image", () => {
    const final = stages(DOCKERFILE).at(-1)!;
    expect(words(final.instructions.find((i) => i.getKeyword() === "CMD")!)).toEqual(["node", "services/api/src/main.ts"]);
    for (const program of ["services/api/src/main.ts", "services/worker/src/main.ts", "services/api/src/migrate-cli.ts", "infra/container/healthcheck.ts"]) {
      expect(repoPathExists(program), program).toBe(true);
      expect(dockerIgnores(program), program).toBe(false);
    }
  });

  const mutations: [string, (t: string) => string, RegExp][] = [
    ["one stage", (t) => t.replace(/^FROM node:\S+ AS deps[\s\S]*?(?=^FROM )/m, ""), /not multi-stage/],
    ["another Node", (t) => t.replaceAll("node:24.21.0-bookworm-slim", "node:22.12.0-bookworm-slim"), /must be Node 24/],
    ["an unpinned tag", (t) => t.replaceAll("node:24.21.0-bookworm-slim", "node:24-bookworm-slim"), /pinned to a full version/],
    ["another base", (t) => t.replace(/^FROM node:\S+ AS runtime/m, "FROM debian:bookworm-slim AS runtime"), /official node image/],
    ["no USER", (t) => t.replace(/^USER .*$/m, ""), /no USER/],
    ["USER root", (t) => t.replace(/^USER .*$/m, "USER root"), /USER root is root/],
    ["USER 0:0", (t) => t.replace(/^USER .*$/m, "USER 0:0"), /USER 0 is root/],
    ["back to root after", (t) => t.replace(/^(CMD .*)$/m, "USER 0\n$1"), /USER 0 is root/],
    ["npm ci in the final stage", (t) => t.replace(/^(USER .*)$/m, "RUN npm ci --no-audit\n$1"), /final stage: npm install\/ci without --omit=dev/],
    ["npm install later in a chain", (t) => t.replace(/^(USER .*)$/m, "RUN true && npm install\n$1"), /without --omit=dev/],
    ["dev dependencies copied in", (t) => t.replace("npm ci --omit=dev", "npm ci"), /copies from deps, which installs dev dependencies/],
    ["no HEALTHCHECK", (t) => t.replace(/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, ""), /no HEALTHCHECK/],
    ["a healthcheck script that is not there", (t) => t.replace('CMD ["node", "infra/container/healthcheck.ts"]', 'CMD ["node", "infra/container/health.ts"]'), /HEALTHCHECK runs infra\/container\/health\.ts/],
    ["a COPY of a missing path", (t) => t.replace("COPY infra/container/ infra/container/", "COPY infra/containers/ infra/containers/"), /COPY infra\/containers\/: not in the repository/],
    ["a COPY of an ignored path", (t) => t.replace("COPY infra/container/ infra/container/", "COPY infra/clamd/ infra/clamd/"), /COPY infra\/clamd\/: excluded by \.dockerignore/],
    ["a workspace manifest left out", (t) => t.replace("COPY test/package.json test/\n", ""), /does not copy test\/package\.json/],
    ["a CMD that names no file of the image", (t) => t.replace('CMD ["node", "services/api/src/main.ts"]', 'CMD ["node", "services/api/src/server-main.ts"]'), /CMD runs services\/api\/src\/server-main\.ts/],
  ];
  for (const [what, mutate, problem] of mutations) {
    it(`catches ${what}`, () => {
      const changed = mutate(DOCKERFILE);
      expect(changed, "the mutation changed nothing").not.toBe(DOCKERFILE);
      expect(dockerfileProblems(changed).join("\n")).toMatch(problem);
    });
  }

  it(".dockerignore keeps dependencies, data, git, secrets and tests out of the build context", () => {
    for (const path of ["node_modules", "packages/db/node_modules/x", ".git/HEAD", ".data/intake.sqlite", ".env", ".env.production", "packages/db/src/migrator.test.ts", "test/deploy/dockerfile.test.ts", "infra/aws/src/app.ts"]) expect(dockerIgnores(path), path).toBe(true);
    for (const path of ["packages/db/src/migrator.ts", "services/worker/src/main.ts", "test/package.json", "infra/container/healthcheck.ts", "package-lock.json"]) expect(dockerIgnores(path), path).toBe(false);
  });
});

/**
 * The image installs the dependencies of @intake/api and @intake/worker only (npm ci
 * --workspace): a workspace that imports a package it does not declare works in the checkout
 * (everything is hoisted) and fails in the image. So every package each of their workspaces
 * imports outside tests must be among its declared dependencies.
 */
describe("the image's workspaces declare what they import", () => {
  interface Manifest {
    name: string;
    dependencies?: Record<string, string>;
  }
  const manifests = new Map<string, { dir: string; m: Manifest }>(
    lockfileWorkspaces().map((dir) => {
      const m = JSON.parse(readRepoFile(`${dir}/package.json`)) as Manifest;
      return [m.name, { dir, m }];
    }),
  );
  const closure = (roots: string[]) => {
    const seen = new Set<string>();
    const visit = (name: string) => {
      if (seen.has(name) || !manifests.has(name)) return;
      seen.add(name);
      for (const dep of Object.keys(manifests.get(name)!.m.dependencies ?? {})) visit(dep);
    };
    roots.forEach(visit);
    return [...seen];
  };
  const sources = (dir: string): string[] =>
    readdirSync(join(ROOT, dir)).flatMap((entry) => {
      const path = `${dir}/${entry}`;
      if (statSync(join(ROOT, path)).isDirectory()) return entry === "node_modules" ? [] : sources(path);
      return /\.ts$/.test(entry) && !/\.test\.ts$/.test(entry) && entry !== "testing.ts" ? [path] : [];
    });
  const packageOf = (specifier: string) => (specifier.startsWith("@") ? specifier.split("/").slice(0, 2).join("/") : specifier.split("/")[0]);
  const builtins = new Set(builtinModules);

  it("every bare import in @intake/api's and @intake/worker's workspaces (and theirs) is a declared dependency", () => {
    const undeclared: string[] = [];
    for (const name of closure(["@intake/api", "@intake/worker"])) {
      const { dir, m } = manifests.get(name)!;
      const declared = new Set(Object.keys(m.dependencies ?? {}));
      for (const file of sources(`${dir}/src`)) {
        const text = readFileSync(join(ROOT, file), "utf8");
        // Static imports and exports, and dynamic import("..."); type-only imports are erased.
        for (const match of text.matchAll(/^\s*(?:import|export)\s+(?!type\s)(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm)) {
          const spec = match[1] ?? match[2];
          if (spec.startsWith(".") || spec.startsWith("node:") || builtins.has(spec)) continue;
          if (!declared.has(packageOf(spec))) undeclared.push(`${file} imports ${packageOf(spec)}, not in ${name}'s dependencies`);
        }
      }
    }
    expect(undeclared).toEqual([]);
  });
});

/**
 * infra/clamd/Dockerfile (the intake-clamd image: clamav/clamav with Intake's clamd.conf and
 * container signatures), checked the same way; test/deploy/clamd-image.test.ts runs its
 * scripts and its clamd.conf. Its build context is the repository with its own ignore file.
 */
const CLAMD_DOCKERFILE_PATH = "infra/clamd/Dockerfile";
const CLAMD_DOCKERIGNORE = `${CLAMD_DOCKERFILE_PATH}.dockerignore`;

function clamdDockerfileProblems(text: string, dockerignore = readRepoFile(CLAMD_DOCKERIGNORE)): string[] {
  const problems: string[] = [];
  const all = stages(text);
  const final = all.at(-1);
  if (!final) return ["no FROM"];
  // Pinned to a patch release of the image that carries the databases (the Kubernetes init
  // container seeds each pod's emptyDir from them; <version>_base has none).
  for (const s of all) {
    if (s.image !== "clamav/clamav") problems.push(`FROM ${s.image}: the base must be clamav/clamav`);
    else if (!/^\d+\.\d+\.\d+$/.test(s.tag ?? "")) problems.push(`FROM clamav/clamav:${s.tag ?? "(no tag)"}: must be pinned to a patch release (X.Y.Z, with the databases)`);
  }
  const users = final.instructions.filter((i) => i.getKeyword() === "USER");
  const user = users.at(-1) ? args(users.at(-1)!)[0]?.split(":")[0] : undefined;
  if (!user) problems.push("no USER (clamd and freshclam would run as root)");
  else if (user === "root" || user === "0") problems.push(`USER ${user} is root`);

  const health = final.instructions.filter((i) => i.getKeyword() === "HEALTHCHECK");
  if (health.length === 0) problems.push("no HEALTHCHECK");
  for (const h of health) {
    const w = words(h);
    if (w.includes("NONE")) problems.push("HEALTHCHECK NONE");
    else if (!w.some((x) => x.includes("PING")) || !w.includes("3310")) problems.push("HEALTHCHECK does not ask clamd for PING on 3310");
  }

  // Every COPY from the build context names something that exists and the image's own ignore file lets in.
  const installed = new Map<string, string>(); // destination in the image -> source in the repository
  for (const copy of final.instructions.filter((i) => i.getKeyword() === "COPY" || i.getKeyword() === "ADD")) {
    if (fromFlag(copy)) continue;
    const a = args(copy);
    const [sources, dest] = [a.slice(0, -1), a.at(-1)!];
    for (const src of sources) {
      if (/[*?[]/.test(src)) problems.push(`COPY ${src}: no globs (the test cannot see what they match)`);
      else if (!repoPathExists(src)) problems.push(`COPY ${src}: not in the repository`);
      else if (dockerIgnores(src, dockerignore)) problems.push(`COPY ${src}: excluded by ${CLAMD_DOCKERIGNORE}`);
      installed.set(dest.endsWith("/") ? `${dest}${src.split("/").pop()}` : dest, src);
    }
  }

  // clamd.conf: the render up.sh uses, at build time, into the path clamd reads.
  const runs = final.instructions.filter((i) => i.getKeyword() === "RUN").map((i) => i.getRawArgumentsContent() ?? "");
  const renderedFrom = [...installed].find(([, src]) => src === "infra/clamd/render-conf.sh")?.[0];
  if (!renderedFrom || !runs.some((r) => r.includes(`${renderedFrom} container`) && r.includes("/etc/clamav/clamd.conf"))) problems.push("clamd.conf is not rendered by infra/clamd/render-conf.sh container into /etc/clamav/clamd.conf");
  for (const needed of ["infra/clamd/limits.sh", "infra/clamd/clamd.conf.template"]) if (![...installed.values()].includes(needed)) problems.push(`the render needs ${needed}, which no COPY brings`);
  if (![...installed.keys()].some((dest) => dest.startsWith("/etc/clamav"))) {
    // fine: nothing copied over the rendered config
  } else problems.push("a COPY writes into /etc/clamav (a hand-written config beside the render)");
  if (!final.instructions.some((i) => i.getKeyword() === "ARG" && args(i)[0]?.startsWith("MAX_UPLOAD_BYTES="))) problems.push("no ARG MAX_UPLOAD_BYTES (with a default) for the render");

  // The entrypoint: a file of the image that writes the container signatures, then hands over.
  const entrypoint = final.instructions.filter((i) => i.getKeyword() === "ENTRYPOINT").at(-1);
  const entry = entrypoint ? words(entrypoint)[0] : undefined;
  const entrySource = entry ? installed.get(entry) : undefined;
  if (!entrySource || !repoPathExists(entrySource)) problems.push(`ENTRYPOINT ${entry ?? "(none)"} is not a file this Dockerfile installs (the container signatures would not be written)`);
  else {
    const script = readRepoFile(entrySource);
    const signaturesAt = [...installed].find(([, src]) => src === "infra/clamd/container-signatures.sh")?.[0];
    if (!signaturesAt || !script.includes(signaturesAt)) problems.push(`ENTRYPOINT ${entrySource} does not run the installed container-signatures.sh`);
    // Custom rules: the sync script as /usr/local/bin/intake-rules (what operators exec), run by the entrypoint at start.
    const rulesAt = [...installed].find(([, src]) => src === "infra/clamd/rules-sync.sh")?.[0];
    if (rulesAt !== "/usr/local/bin/intake-rules") problems.push("infra/clamd/rules-sync.sh is not installed as /usr/local/bin/intake-rules (custom rules could not be reloaded in the container)");
    else if (!new RegExp(`^[^#\\n]*${rulesAt} sync$`, "m").test(script)) problems.push(`ENTRYPOINT ${entrySource} does not run ${rulesAt} sync before clamd starts`);
    if (!/^NEXT=\/init-unprivileged$/m.test(script) || !/^exec "\$NEXT" "\$@"$/m.test(script)) problems.push(`ENTRYPOINT ${entrySource} does not hand over to the image's /init-unprivileged`);
  }
  return problems;
}

const CLAMD_DOCKERFILE = readRepoFile(CLAMD_DOCKERFILE_PATH);

describe("infra/clamd/Dockerfile (intake-clamd)", () => {
  it("is clamav/clamav pinned to a release, unprivileged, with a PING healthcheck, the rendered clamd.conf and an entrypoint that writes the container signatures", () => {
    expect(clamdDockerfileProblems(CLAMD_DOCKERFILE)).toEqual([]);
  });

  it("its ignore file lets in what it copies and keeps the rest of the repository out", () => {
    for (const path of ["infra/clamd/render-conf.sh", "infra/clamd/entrypoint.sh", "infra/clamd/container-signatures.sh", "infra/clamd/rules-sync.sh"]) expect(dockerIgnores(path, readRepoFile(CLAMD_DOCKERIGNORE)), path).toBe(false);
    for (const path of ["packages/scanner/src/clamd.ts", ".env", ".git/HEAD", ".data/clamd/clamd.conf", "node_modules/x", "infra/k8s/base/clamd.yaml"]) expect(dockerIgnores(path, readRepoFile(CLAMD_DOCKERIGNORE)), path).toBe(true);
    // The root .dockerignore (the Intake image's) keeps infra/clamd out: the image's own file is what makes it build.
    expect(dockerIgnores("infra/clamd/render-conf.sh")).toBe(true);
  });

  const mutations: [string, (t: string) => string, RegExp][] = [
    ["an unpinned tag", (t) => t.replace("FROM clamav/clamav:1.4.5", "FROM clamav/clamav:1.4"), /must be pinned to a patch release/],
    ["latest", (t) => t.replace("FROM clamav/clamav:1.4.5", "FROM clamav/clamav:latest"), /must be pinned/],
    ["the base image without databases", (t) => t.replace("FROM clamav/clamav:1.4.5", "FROM clamav/clamav:1.4.5_base"), /must be pinned to a patch release/],
    ["another base", (t) => t.replace("FROM clamav/clamav:1.4.5", "FROM alpine:3.21.0"), /the base must be clamav\/clamav/],
    ["no USER", (t) => t.replace(/^USER .*$/m, ""), /no USER/],
    ["USER root", (t) => t.replace(/^USER .*$/m, "USER root"), /USER root is root/],
    ["back to root after", (t) => t.replace(/^(EXPOSE .*)$/m, "USER 0:0\n$1"), /USER 0 is root/],
    ["no HEALTHCHECK", (t) => t.replace(/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, ""), /no HEALTHCHECK/],
    ["a healthcheck that does not PING", (t) => t.replace(/CMD \["sh", "-c", "printf[^\n]*/, 'CMD ["true"]'), /does not ask clamd for PING/],
    ["a COPY of a missing path", (t) => t.replace("COPY --chmod=0755 infra/clamd/entrypoint.sh", "COPY --chmod=0755 infra/clamd/entry.sh"), /COPY infra\/clamd\/entry\.sh: not in the repository/],
    ["a COPY of a path its ignore file keeps out", (t) => t.replace(/^(USER .*)$/m, "COPY packages/scanner/package.json /tmp/x\n$1"), /COPY packages\/scanner\/package\.json: excluded by infra\/clamd\/Dockerfile\.dockerignore/],
    ["a hand-written clamd.conf instead of the render", (t) => t.replace(/^RUN sh \/tmp\/intake-clamd\/render-conf\.sh[^\n]*\\\n[^\n]*\\\n[^\n]*\n/m, "COPY infra/clamd/clamd.conf.template /etc/clamav/clamd.conf\n"), /not rendered by infra\/clamd\/render-conf\.sh[\s\S]*writes into \/etc\/clamav/],
    ["the stock entrypoint (no container signatures)", (t) => t.replace('ENTRYPOINT ["/usr/local/bin/intake-clamd-entrypoint"]', 'ENTRYPOINT ["/init-unprivileged"]'), /ENTRYPOINT \/init-unprivileged is not a file this Dockerfile installs/],
    ["no intake-rules in the image", (t) => t.replace(/^COPY --chmod=0755 infra\/clamd\/rules-sync\.sh .*$/m, ""), /rules-sync\.sh is not installed as \/usr\/local\/bin\/intake-rules/],
    ["intake-rules under another name", (t) => t.replace("infra/clamd/rules-sync.sh /usr/local/bin/intake-rules", "infra/clamd/rules-sync.sh /usr/local/bin/rules"), /rules-sync\.sh is not installed as \/usr\/local\/bin\/intake-rules/],
    ["no MAX_UPLOAD_BYTES build argument", (t) => t.replace(/^ARG MAX_UPLOAD_BYTES=.*$/m, ""), /no ARG MAX_UPLOAD_BYTES/],
  ];
  for (const [what, mutate, problem] of mutations) {
    it(`catches ${what}`, () => {
      const changed = mutate(CLAMD_DOCKERFILE);
      expect(changed, "the mutation changed nothing").not.toBe(CLAMD_DOCKERFILE);
      expect(clamdDockerfileProblems(changed).join("\n")).toMatch(problem);
    });
  }
});
