#!/usr/bin/env bash
# Sourced by infra/bin/dev and infra/bin/test: brings a fresh Debian 12 machine to the point
# where the stack can run, installing only what is missing. Every step is idempotent, so the
# second run costs a few seconds.
#   1. Node 24 (from the npm registry when the system Node is older)
#   2. the workspace's npm dependencies (npm ci when node_modules is missing or stale)
#   3. Redis at REDIS_URL (started from Debian's redis-server when nothing answers)
#   4. clamd with the project's config (infra/clamd/up.sh; installs clamav-daemon)
#   5. for infra/bin/test: a three-node Redis Cluster on 127.0.0.1:7000-7002 (infra/bin/redis-cluster)
#   6. the tools tests use (zip and container formats, chromium, prometheus), for infra/bin/test
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
say() { echo "[intake] $*" >&2; }

# shellcheck source=ensure-node.sh
source "$_root/infra/bin/ensure-node.sh"

intake_install_deps() {
  local stamp="$_root/node_modules/.intake-lock-stamp"
  # The lock file's hash decides: a pull that changed dependencies reinstalls them.
  local want
  want="$(sha256sum "$_root/package-lock.json" | cut -d' ' -f1)-$(node -v)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing npm dependencies (npm ci)"
    (cd "$_root" && npm ci --no-audit --no-fund --loglevel=error >&2) || { say "npm ci failed"; return 1; }
    echo "$want" >"$stamp"
  fi
  intake_install_uppy5
}

# Uppy's previous major for test/browser/uppy5.test.ts: @uppy/core 5 cannot share the root's
# node_modules with 6, so test/uppy5 is a package of its own (not a workspace), with its lock.
intake_install_uppy5() {
  local dir="$_root/test/uppy5" stamp="$_root/test/uppy5/node_modules/.intake-lock-stamp" want
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)-$(node -v)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  say "installing test/uppy5 (Uppy 5.x, npm ci)"
  npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2 || { say "npm ci in test/uppy5 failed"; return 1; }
  echo "$want" >"$stamp"
}

intake_apt_install() { # packages...
  [ "$(id -u)" = 0 ] || { say "missing $*; run as root or install them: apt-get install -y $*"; return 1; }
  say "installing $* from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || say "apt-get update failed; trying the install anyway"
  apt-get install -y -qq --no-install-recommends "$@" >&2
}

intake_ensure_redis() {
  local url="${REDIS_URL:-redis://127.0.0.1:6379}"
  local hostport="${url#*://}"; hostport="${hostport##*@}"; hostport="${hostport%%/*}"
  local host="${hostport%%:*}" port="${hostport##*:}"
  [ "$port" = "$hostport" ] && port=6379
  redis_ping() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && head -c 5 <&3' "$host" "$port" 2>/dev/null | grep -q PONG; }
  if redis_ping; then return 0; fi
  case "$host" in 127.0.0.1|localhost) ;; *) say "Redis at $host:$port does not answer (REDIS_URL)"; return 1 ;; esac
  command -v redis-server >/dev/null || intake_apt_install redis-server || return 1
  mkdir -p "$_root/.data/redis"
  say "starting redis-server on 127.0.0.1:$port (data in .data/redis)"
  # noeviction: BullMQ loses jobs silently under any evicting policy.
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --dir "$_root/.data/redis" \
    --maxmemory-policy noeviction --logfile "$_root/.data/redis/redis.log" >&2
  local i
  for i in $(seq 1 50); do redis_ping && return 0; sleep 0.2; done
  say "redis-server did not answer on port $port"; return 1
}

intake_ensure_postgres() {
  pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && return 0
  command -v pg_ctlcluster >/dev/null || intake_apt_install postgresql || return 1
  local v
  v="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
  [ -n "$v" ] || { say "no PostgreSQL cluster in /etc/postgresql"; return 1; }
  say "starting PostgreSQL $v"
  pg_ctlcluster --skip-systemctl-redirect "$v" main start >&2 || true
  local i
  for i in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 0.2; done
  say "PostgreSQL did not come up on 127.0.0.1:5432"; return 1
}

# Tools the tests build their fixtures with (encrypted and stored ZIPs from Info-ZIP's zip):
# installed here, by the setup, never by a test.
intake_ensure_test_tools() {
  command -v zip >/dev/null || intake_apt_install zip
  # Every container format test/pipeline/containers.test.ts builds: 7z, CAB, ARJ, bzip2, xz.
  local missing=() pair
  # chromium: the admin pages' browser tests (playwright-core drives Debian's build);
  # prometheus + promtool: the metrics test scrapes with a real Prometheus and checks the alert rules.
  # busybox: the clamd image's rule reload speaks to clamd with busybox nc (test/deploy/clamd-rules).
  for pair in 7z:p7zip-full gcab:gcab arj:arj bzip2:bzip2 xz:xz-utils chromium:chromium prometheus:prometheus promtool:prometheus busybox:busybox; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  [ "${#missing[@]}" -eq 0 ] || intake_apt_install $(printf '%s\n' "${missing[@]}" | sort -u)
}

intake_ensure_clamd() {
  bash "$_root/infra/clamd/up.sh" >/dev/null
}

# The tests' Redis Cluster (three masters on loopback, their data under .data/redis-cluster):
# test/cluster always uses it, and infra/bin/test runs a set of whole-stack tests on it.
intake_ensure_redis_cluster() {
  command -v redis-cli >/dev/null || intake_apt_install redis-server || return 1
  bash "$_root/infra/bin/redis-cluster" up >/dev/null
}
