#!/usr/bin/env bash
# Stop the clamd started by infra/clamd/up.sh for this DATA_DIR (idempotent). Only the
# pid recorded in $DATA_DIR/clamd/clamd.pid is signalled, and only if that process really
# is clamd running our config: never a broad pkill, never someone else's daemon.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
DATA_DIR="${DATA_DIR:-$REPO_ROOT/.data}"
CLAMD_DIR="$DATA_DIR/clamd"
CONF="$CLAMD_DIR/clamd.conf"
PIDFILE="$CLAMD_DIR/clamd.pid"

log() { echo "[clamd] $*" >&2; }

[ -d "$CLAMD_DIR" ] || { log "nothing to stop ($CLAMD_DIR does not exist)"; exit 0; }
exec 9>"$CLAMD_DIR/.lock"
flock -w 120 9 || { log "ERROR: could not take the lock $CLAMD_DIR/.lock"; exit 1; }

pid="$(cat "$PIDFILE" 2>/dev/null || true)"
if ! [[ "$pid" =~ ^[0-9]+$ ]]; then
  log "not running (no pid file)"
  exit 0
fi
if ! tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "--config-file=$CONF"; then
  log "not running (stale pid file, pid $pid is not our clamd)"
  rm -f "$PIDFILE"
  exit 0
fi

# Alive = exists and is not a zombie (the daemonized clamd may stay an unreaped zombie when
# its parent is not a reaping init; a zombie holds no port and no files).
alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 100); do
  alive "$pid" || break
  sleep 0.2
done
if alive "$pid"; then
  log "clamd (pid $pid) ignored SIGTERM for 20s: sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$PIDFILE" "$CLAMD_DIR/clamd.conf.running"
log "stopped clamd (pid $pid)"
