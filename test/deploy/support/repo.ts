import { existsSync, readFileSync } from "node:fs";
import { join, matchesGlob } from "node:path";

/** The repository root, for deployment files that name paths in it. */
export const ROOT = new URL("../../../", import.meta.url).pathname;

export const readRepoFile = (path: string) => readFileSync(join(ROOT, path), "utf8");
export const repoPathExists = (path: string) => existsSync(join(ROOT, path));

/** The workspaces the lockfile knows (what `npm ci` wants present to stay in sync). */
export function lockfileWorkspaces(): string[] {
  const lock = JSON.parse(readRepoFile("package-lock.json")) as { packages: Record<string, unknown> };
  return Object.keys(lock.packages).filter((k) => k !== "" && !k.includes("node_modules"));
}

/**
 * Whether .dockerignore keeps `path` out of the build context: Docker's rules, the last
 * matching pattern wins, a pattern matches a path or any of its parent directories, and `!`
 * re-includes.
 */
export function dockerIgnores(path: string, dockerignore = readRepoFile(".dockerignore")): boolean {
  const patterns = dockerignore
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  const clean = path.replace(/^\.\//, "").replace(/\/$/, "");
  const parts = clean.split("/");
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
  let ignored = false;
  for (const raw of patterns) {
    const negate = raw.startsWith("!");
    const pattern = (negate ? raw.slice(1) : raw).replace(/^\//, "").replace(/\/$/, "");
    if (candidates.some((c) => matchesGlob(c, pattern))) ignored = !negate;
  }
  return ignored;
}
