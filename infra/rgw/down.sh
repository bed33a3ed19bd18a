#!/usr/bin/env bash
# Stops the single-node Ceph started by infra/rgw/up.sh (radosgw, OSD, monitor) and removes
# its state: the OSD is memstore, so nothing in it survives a stop anyway.
# Only our own daemons are touched: those listed in our pid files or started with our
# ceph.conf on their command line, never other Ceph processes on the machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
D="${RGW_DATA_DIR:-$ROOT/.data/rgw}"
CONF="$D/ceph.conf"
KEEP_DATA="${RGW_KEEP_DATA:-}"

pids_of() { # daemon name: pid file first, then processes started with our ceph.conf
  local name="$1" pid
  if [ -f "$D/run/$name.pid" ]; then
    pid="$(cat "$D/run/$name.pid" 2>/dev/null || true)"
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && echo "$pid"
  fi
  for p in /proc/[0-9]*; do
    [ -r "$p/cmdline" ] || continue
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "-c $CONF" &&
      tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "^\\(/usr/bin/\\)\\?$2 "; then
      echo "${p#/proc/}"
    fi
  done
}

stopped=0
# Gateway first, then the OSD, then the monitor, so none of them hangs looking for another.
for spec in client.rgw.intake:radosgw osd.0:ceph-osd mon.a:ceph-mon; do
  pids="$(pids_of "${spec%%:*}" "${spec#*:}" | sort -u | tr '\n' ' ')"
  [ -n "${pids// /}" ] || continue
  echo "[rgw] stopping ${spec#*:} ($pids)" >&2
  # shellcheck disable=SC2086
  kill $pids 2>/dev/null || true
  for _ in $(seq 1 50); do
    alive=""
    for pid in $pids; do [ -d "/proc/$pid" ] && alive="$alive $pid"; done
    [ -z "$alive" ] && break
    sleep 0.2
  done
  # shellcheck disable=SC2086
  [ -n "${alive:-}" ] && kill -9 $alive 2>/dev/null || true
  stopped=1
done
[ "$stopped" = 1 ] || echo "[rgw] nothing running for $D" >&2
if [ -z "$KEEP_DATA" ] && [ -d "$D" ]; then rm -rf "$D"; fi
