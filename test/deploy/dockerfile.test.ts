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
