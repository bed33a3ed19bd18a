#!/usr/bin/env bash
# Sourced by every entry script: puts a Node >= 22.12 (Node 24 LTS) first on PATH.
# Debian 12 ships Node 20 (end of life, too old for fauxqs, vitest and file-type), so when
# the system Node is older we install the `node` package from the npm registry, which
# ships the official binary, into .tools/node of this checkout.
_intake_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
_intake_tools="$_intake_root/.tools/node"
_node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=12)?0:1)'
}
if [ -x "$_intake_tools/node_modules/.bin/node" ]; then
  export PATH="$_intake_tools/node_modules/.bin:$PATH"
fi
if ! _node_ok; then
  echo "[intake] system Node $(node -v 2>/dev/null || echo none) is too old; installing Node 24 from the npm registry into .tools/node" >&2
  mkdir -p "$_intake_tools"
  (cd "$_intake_tools" && [ -f package.json ] || echo '{"private":true}' > "$_intake_tools/package.json")
  npm install --prefix "$_intake_tools" --no-audit --no-fund --loglevel=error node@24 >&2
  export PATH="$_intake_tools/node_modules/.bin:$PATH"
  _node_ok || { echo "[intake] could not provision Node 24" >&2; exit 1; }
fi
# npm must run under the same Node: the npm shipped with the system may be older, but it
# runs on whichever `node` is first on PATH, which is now the right one.
unset -f _node_ok
