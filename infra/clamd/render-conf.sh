#!/bin/sh
# Usage: render-conf.sh local|container
# Prints clamd.conf rendered from clamd.conf.template, with the limits of limits.sh (from
# MAX_UPLOAD_BYTES and the CLAMD_* overrides). The one render of that template:
#   local      infra/clamd/up.sh, with CLAMD_PORT, CLAMD_ADDR, CLAMD_DIR, DATABASE_DIR set
#   container  the intake-clamd image (infra/clamd/Dockerfile, at build time): TCP 3310 on
#              every interface, databases in /var/lib/clamav, temporary files in /tmp
# Exits non-zero (nothing printed) when a limit breaks the rules or a placeholder is left.
# POSIX sh: the image builds it with Alpine's busybox.
set -eu

SCRIPT_DIR="$(cd "$(dirname "$0")" && pwd)"
TARGET="${1:-}"
case "$TARGET" in
  local)
    : "${CLAMD_DIR:?CLAMD_DIR must be set for the local target}"
    : "${DATABASE_DIR:?DATABASE_DIR must be set for the local target}"
    PORT="${CLAMD_PORT:-3310}"
    ADDR="${CLAMD_ADDR:-127.0.0.1}"
    TEMP_DIR="$CLAMD_DIR/tmp"
    OTHER=container
    ;;
  container)
    # The image's paths (clamav/clamav: cmake DATABASE_DIRECTORY=/var/lib/clamav; its
    # entrypoint and freshclam expect them). Workers connect on 3310 (CLAMD_PORT's default).
    PORT=3310
    ADDR=0.0.0.0
    # Named by local lines only, which this target drops: left as a placeholder, one that
    # slipped into a shared line fails the check below.
    CLAMD_DIR=@CLAMD_DIR@
    DATABASE_DIR=/var/lib/clamav
    TEMP_DIR=/tmp
    OTHER=local
    ;;
  *) echo "usage: $0 local|container" >&2; exit 2 ;;
esac

. "$SCRIPT_DIR/limits.sh"

# Into a variable first: a failed render prints nothing, so `> clamd.conf` never leaves half a file.
rendered="$(sed -e '/^##/d' \
    -e "/^$OTHER: /d" \
    -e "s|^$TARGET: ||" \
    -e "s|@PORT@|$PORT|g" \
    -e "s|@ADDR@|$ADDR|g" \
    -e "s|@CLAMD_DIR@|$CLAMD_DIR|g" \
    -e "s|@TEMP_DIR@|$TEMP_DIR|g" \
    -e "s|@DATABASE_DIR@|$DATABASE_DIR|g" \
    -e "s|@STREAM_MAX_LENGTH@|$STREAM_MAX_LENGTH|g" \
    -e "s|@MAX_FILE_SIZE@|$MAX_FILE_SIZE|g" \
    -e "s|@MAX_SCAN_SIZE@|$MAX_SCAN_SIZE|g" \
    -e "s|@MAX_SCAN_TIME_MS@|$MAX_SCAN_TIME_MS|g" \
    -e "s|@MAX_RECURSION@|$MAX_RECURSION|g" \
    -e "s|@MAX_FILES@|$MAX_FILES|g" \
    -e "s|@MAX_THREADS@|$MAX_THREADS|g" \
    -e "s|@MAX_QUEUE@|$MAX_QUEUE|g" \
    "$SCRIPT_DIR/clamd.conf.template")"
left="$(printf '%s\n' "$rendered" | grep -o '@[A-Z_]*@' | head -n 1 || true)"
[ -z "$left" ] || { echo "[clamd] ERROR: unrendered placeholder $left in clamd.conf.template" >&2; exit 1; }
printf '%s\n' "$rendered"
