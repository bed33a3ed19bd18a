/**
 * The JSON Patch (RFC 6902) operations kustomize applies from a `patches` entry, enough to
 * build an overlay here without kustomize (not installed on these machines): add, remove,
 * replace, test, on JSON Pointers (RFC 6901: "~1" is "/", "~0" is "~"). A path that does not
 * exist, or a failed test, throws, as kustomize fails the build.
 */
type Json = any;
export interface PatchOp {
  op: "add" | "remove" | "replace" | "test";
  path: string;
  value?: Json;
}

const tokens = (path: string): string[] => {
  if (!path.startsWith("/")) throw new Error(`JSON pointer ${path}: must start with /`);
  return path.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
};

export function applyPatch(doc: Json, ops: PatchOp[]): Json {
  const out = structuredClone(doc);
  for (const o of ops) {
    const ts = tokens(o.path);
    const last = ts.pop()!;
    let parent = out;
    for (const t of ts) {
      if (parent === null || typeof parent !== "object" || !(t in parent)) throw new Error(`${o.op} ${o.path}: ${t} does not exist`);
      parent = parent[t];
    }
    const isArray = Array.isArray(parent);
    const index = isArray ? (last === "-" ? parent.length : Number(last)) : -1;
    const exists = isArray ? Number.isInteger(index) && index >= 0 && index < parent.length : parent !== null && typeof parent === "object" && last in parent;
    if (o.op === "add") {
      if (isArray) parent.splice(index, 0, o.value);
      else if (parent !== null && typeof parent === "object") parent[last] = o.value;
      else throw new Error(`add ${o.path}: no object to add to`);
      continue;
    }
    if (!exists) throw new Error(`${o.op} ${o.path}: does not exist`);
    const current = isArray ? parent[index] : parent[last];
    if (o.op === "test") {
      if (JSON.stringify(current) !== JSON.stringify(o.value)) throw new Error(`test ${o.path}: ${JSON.stringify(current)} is not ${JSON.stringify(o.value)}`);
    } else if (o.op === "remove") {
      if (isArray) parent.splice(index, 1);
      else delete parent[last];
    } else if (o.op === "replace") {
      if (isArray) parent[index] = o.value;
      else parent[last] = o.value;
    } else throw new Error(`${(o as PatchOp).op}: not an operation this helper knows`);
  }
  return out;
}
