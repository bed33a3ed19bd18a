#!/usr/bin/env bash
# Start the project's own clamd (idempotent): render $DATA_DIR/clamd/clamd.conf from
# clamd.conf.template, pick the signature database, start clamd unless something already
# answers PING on the port, wait for PONG and print the VERSION line.
#
# Environment (all optional):
#   DATA_DIR                 data root (default: <repo>/.data); clamd lives in $DATA_DIR/clamd
#   CLAMD_PORT               TCP port (default 3310)
#   CLAMD_ADDR               listen address (default 127.0.0.1)
#   MAX_UPLOAD_BYTES         largest upload the platform accepts (default 1000 MiB, at most
#                            1024 MiB); the size limits below are derived from it
#   CLAMD_DATABASE           auto (default) | official | test
#   CLAMD_OFFICIAL_DB_DIR    where freshclam keeps official databases (default /var/lib/clamav)
#   CLAMD_STREAM_MAX_LENGTH, CLAMD_MAX_FILE_SIZE, CLAMD_MAX_SCAN_SIZE, CLAMD_MAX_SCAN_TIME_MS,
#   CLAMD_MAX_RECURSION, CLAMD_MAX_FILES, CLAMD_MAX_THREADS   explicit overrides (bytes / ms / counts)
#   CLAMD_START_TIMEOUT      seconds to wait for PONG (default 60; official DBs load slowly)
#
# Contract: $DATA_DIR/clamd/TEST_SIGNATURES_ONLY exists iff clamd was configured with the
# generated test database (no official signatures): the stack reports it, and nobody
# should mistake such a deployment for real malware protection.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
DATA_DIR="${DATA_DIR:-$REPO_ROOT/.data}"
CLAMD_DIR="$DATA_DIR/clamd"
PORT="${CLAMD_PORT:-3310}"
ADDR="${CLAMD_ADDR:-127.0.0.1}"
DATABASE_MODE="${CLAMD_DATABASE:-auto}"
OFFICIAL_DB_DIR="${CLAMD_OFFICIAL_DB_DIR:-/var/lib/clamav}"
START_TIMEOUT="${CLAMD_START_TIMEOUT:-60}"
MAX_UPLOAD_BYTES="${MAX_UPLOAD_BYTES:-1048576000}"

log() { echo "[clamd] $*" >&2; }
die() { echo "[clamd] ERROR: $*" >&2; exit 1; }

[[ "$PORT" =~ ^[0-9]+$ ]] || die "CLAMD_PORT must be a number, got '$PORT'"
[[ "$MAX_UPLOAD_BYTES" =~ ^[0-9]+$ && "$MAX_UPLOAD_BYTES" -gt 0 ]] \
  || die "MAX_UPLOAD_BYTES must be a positive integer (bytes), got '$MAX_UPLOAD_BYTES'"

# --- 1. clamd binary ---------------------------------------------------------------
find_clamd() { command -v clamd 2>/dev/null || { [ -x /usr/sbin/clamd ] && echo /usr/sbin/clamd; } || true; }
CLAMD_BIN="$(find_clamd)"
if [ -z "$CLAMD_BIN" ]; then
  [ "$(id -u)" -eq 0 ] || die "clamd is not installed; run as root or: sudo apt-get install -y clamav-daemon clamav"
  log "clamd not found: installing clamav-daemon and clamav with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || log "apt-get update failed; trying the install anyway"
  # The package's postinst may try to start the distribution's own clamd service (unix
  # socket, no databases yet) and fail without systemd: harmless, we run our own instance.
  apt-get install -y -qq --no-install-recommends clamav-daemon clamav >&2 \
    || die "apt-get install clamav-daemon clamav failed"
  CLAMD_BIN="$(find_clamd)"
  [ -n "$CLAMD_BIN" ] || die "clamd still missing after apt-get install"
fi

mkdir -p "$CLAMD_DIR/tmp" "$CLAMD_DIR/db"
# One up.sh/down.sh at a time per data dir: two concurrent callers must not both start
# a daemon on the same port.
exec 9>"$CLAMD_DIR/.lock"
flock -w 120 9 || die "could not take the lock $CLAMD_DIR/.lock"

# --- 2. size limits -------------------------------------------------------------------
# From MAX_UPLOAD_BYTES and the CLAMD_* overrides, checked (limits.sh says why each is where
# it is); the intake-clamd image derives its clamd.conf from the same file.
. "$SCRIPT_DIR/limits.sh"

# --- 3. signature database ---------------------------------------------------------------
has_official_db() {
  local f
  for f in main.cvd main.cld daily.cvd daily.cld; do
    [ -s "$OFFICIAL_DB_DIR/$f" ] && return 0
  done
  return 1
}

write_test_db() {
  local db="$CLAMD_DIR/db"
  # EICAR standard anti-virus test file (68 bytes), as hex in two halves so that this
  # repository never holds the test string itself (it would trip scanners on checkout).
  local eicar_a="58354f2150254041505b345c505a58353428505e2937434329377d24"
  local eicar_b="45494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a"
  # "INTAKE-TEST-MALWARE-MARKER", harmless ASCII the tests embed anywhere in a file.
  local marker_hex="494e54414b452d544553542d4d414c574152452d4d41524b4552"
  # A hash signature (whole-file MD5) for one harmless fixture, exercising the .hdb path.
  local hash_fixture="Intake hash-signature test fixture: harmless."
  local md5 len
  md5="$(printf '%s' "$hash_fixture" | md5sum | cut -d' ' -f1)"
  len="$(printf '%s' "$hash_fixture" | wc -c | tr -d ' ')"

  # .ndb body signatures: Name:TargetType(0=any):Offset(*=anywhere):HexSignature.
  # clamd appends ".UNOFFICIAL" to names from non-official databases.
  printf 'Intake.Test.EICAR:0:*:%s%s\nIntake.Test.Marker:0:*:%s\n' \
    "$eicar_a" "$eicar_b" "$marker_hex" >"$db/intake-test.ndb.new"
  # .hdb: MD5:Size:Name
  printf '%s:%s:Intake.Test.HashFixture\n' "$md5" "$len" >"$db/intake-test.hdb.new"
  mv -f "$db/intake-test.ndb.new" "$db/intake-test.ndb"
  mv -f "$db/intake-test.hdb.new" "$db/intake-test.hdb"
}

# Intake's container signatures (Intake.Unscannable.*, container-signatures.sh says which
# and why), next to whichever database clamd loads; the intake-clamd image writes the same.
write_limits_db() { # dir
  sh "$SCRIPT_DIR/container-signatures.sh" "$1"
}

case "$DATABASE_MODE" in
  auto) if has_official_db; then DATABASE_MODE=official; else DATABASE_MODE=test; fi ;;
  official) has_official_db || die "CLAMD_DATABASE=official but $OFFICIAL_DB_DIR holds no main/daily database (run freshclam)" ;;
  test) ;;
  *) die "CLAMD_DATABASE must be auto, official or test (got '$DATABASE_MODE')" ;;
esac
if [ "$DATABASE_MODE" = official ]; then
  # clamd reads one DatabaseDirectory, so the project's container signatures go next to the
  # official files (freshclam leaves files it does not know alone, and swaps main/daily
  # between .cvd and .cld, which links to them would not follow).
  DATABASE_DIR="$OFFICIAL_DB_DIR"
  [ -w "$DATABASE_DIR" ] || die "cannot write $DATABASE_DIR: the Intake.Unscannable signatures must sit next to the official databases (run as root or as the clamav user)"
  write_limits_db "$DATABASE_DIR"
  rm -f "$CLAMD_DIR/TEST_SIGNATURES_ONLY"
else
  DATABASE_DIR="$CLAMD_DIR/db"
  write_test_db
  write_limits_db "$DATABASE_DIR"
  cat >"$CLAMD_DIR/TEST_SIGNATURES_ONLY" <<EOF
test signatures only
clamd at $ADDR:$PORT loads $DATABASE_DIR: EICAR and Intake test markers, no official ClamAV
signatures (none found in $OFFICIAL_DB_DIR). It detects test files, not real malware.
Install official databases (freshclam) and re-run infra/clamd/up.sh for real protection.
EOF
fi

# --- 4. render the config -----------------------------------------------------------------
CONF="$CLAMD_DIR/clamd.conf"
CLAMD_DIR="$CLAMD_DIR" DATABASE_DIR="$DATABASE_DIR" CLAMD_PORT="$PORT" CLAMD_ADDR="$ADDR" \
  sh "$SCRIPT_DIR/render-conf.sh" local >"$CONF.new" || die "could not render $CONF"
mv -f "$CONF.new" "$CONF"
# For the stack: the scanner mirrors StreamMaxLength (createClamdScanner maxStreamBytes) so
# an over-limit object gets a deterministic "unscannable" instead of a reset race.
cat >"$CLAMD_DIR/limits.env" <<EOF
CLAMD_HOST=$ADDR
CLAMD_PORT=$PORT
CLAMD_STREAM_MAX_BYTES=$STREAM_MAX_LENGTH
CLAMD_MAX_FILE_SIZE=$MAX_FILE_SIZE
CLAMD_MAX_SCAN_SIZE=$MAX_SCAN_SIZE
MAX_UPLOAD_BYTES=$MAX_UPLOAD_BYTES
CLAMD_MAX_RECURSION=$MAX_RECURSION
CLAMD_MAX_SCAN_TIME_MS=$MAX_SCAN_TIME_MS
EOF

# --- 5. start (or reuse) -------------------------------------------------------------------
# Send one z-command (NUL-terminated, per `man clamd`) and print the NUL-terminated reply.
clamd_cmd() {
  timeout 5 bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "z%s\0" "$2" >&3
    IFS= read -r -d "" reply <&3 || [ -n "$reply" ] || exit 1
    printf "%s" "$reply"' "$ADDR" "$PORT" "$1" 2>/dev/null
}
pong() { [ "$(clamd_cmd PING || true)" = "PONG" ]; }
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$ADDR" "$PORT" 2>/dev/null; }

PIDFILE="$CLAMD_DIR/clamd.pid"
our_pid() {
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  # Our daemon: alive and started with our config file (not a recycled pid).
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "--config-file=$CONF" || return 1
  echo "$pid"
}
# Alive = exists and is not a zombie (a daemonized clamd may linger unreaped as a zombie
# when its parent is not an init that reaps; it no longer holds the port).
alive() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
stop_ours() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do alive "$pid" || break; sleep 0.2; done
  if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PIDFILE"
}

STARTED_CONF="$CLAMD_DIR/clamd.conf.running"
# What the daemon must be running with: the config and the project's own signature files.
# clamd reads its databases at start (and at SelfCheck, up to 10 minutes later), so new
# Intake.* signatures restart it too rather than wait for that.
STATE="$CLAMD_DIR/clamd.state"
{ cat "$CONF"; md5sum "$DATABASE_DIR"/intake-* 2>/dev/null || true; } >"$STATE"
FOREIGN=no
if pid="$(our_pid)"; then
  if cmp -s "$STATE" "$STARTED_CONF" && pong; then
    log "clamd already running (pid $pid) with the current config"
    START=no
  else
    log "config or Intake signatures changed, or clamd (pid $pid) not answering: restarting it"
    stop_ours "$pid"
    START=yes
  fi
elif pong; then
  # Something we did not start (another checkout, the distribution's service...) owns the
  # port. Use it, but say so: its limits/alerts are not necessarily ours.
  log "WARNING: a clamd not started by this script already answers on $ADDR:$PORT; using it as is"
  log "WARNING: its configuration may differ from $CONF (limits, Alert* options, database)"
  START=no
  FOREIGN=yes
else
  rm -f "$PIDFILE"
  # Something listens but does not speak clamd: clamd could not bind; say so plainly.
  port_open && die "port $ADDR:$PORT is in use by something that does not answer clamd PING; choose another CLAMD_PORT"
  START=yes
fi

if [ "$START" = yes ]; then
  log "starting $CLAMD_BIN on $ADDR:$PORT (database: $DATABASE_MODE, $DATABASE_DIR)"
  cp -f "$STATE" "$STARTED_CONF"
  # clamd loads the database before it daemonizes, so config and database errors show up
  # here and in the exit status. `9>&-`: the daemon must not inherit our lock fd, or it
  # would hold the lock for its whole life and block every later up.sh/down.sh.
  if ! "$CLAMD_BIN" --config-file="$CONF" >"$CLAMD_DIR/start.out" 2>&1 9>&-; then
    cat "$CLAMD_DIR/start.out" >&2
    tail -n 20 "$CLAMD_DIR/clamd.log" 2>/dev/null >&2 || true
    die "clamd failed to start (config: $CONF)"
  fi
  deadline=$((SECONDS + START_TIMEOUT))
  until pong; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$CLAMD_DIR/clamd.log" 2>/dev/null >&2 || true
      die "clamd did not answer PING on $ADDR:$PORT within ${START_TIMEOUT}s (log: $CLAMD_DIR/clamd.log)"
    fi
    if ! { pid="$(our_pid)" && alive "$pid"; } && [ $((SECONDS + START_TIMEOUT - deadline)) -gt 5 ]; then
      tail -n 20 "$CLAMD_DIR/clamd.log" 2>/dev/null >&2 || true
      die "clamd exited during startup (log: $CLAMD_DIR/clamd.log)"
    fi
    sleep 0.5
  done
fi

VERSION_LINE="$(clamd_cmd VERSION || true)"
[ -n "$VERSION_LINE" ] || die "clamd answered PING but not VERSION on $ADDR:$PORT"
if [ "$FOREIGN" = yes ]; then
  # We do not know that daemon's database directory; its VERSION tells: "ClamAV x/NNNNN/date"
  # with official databases loaded, plain "ClamAV x" with custom databases only.
  if [[ "$VERSION_LINE" == */* ]]; then
    rm -f "$CLAMD_DIR/TEST_SIGNATURES_ONLY"
  else
    printf 'test signatures only\nclamd at %s:%s (not started by up.sh) reports no official database version: %s\n' \
      "$ADDR" "$PORT" "$VERSION_LINE" >"$CLAMD_DIR/TEST_SIGNATURES_ONLY"
  fi
fi
log "ready on $ADDR:$PORT; limits: StreamMaxLength=$STREAM_MAX_LENGTH MaxFileSize=$MAX_FILE_SIZE MaxScanSize=$MAX_SCAN_SIZE MaxScanTime=${MAX_SCAN_TIME_MS}ms"
[ -f "$CLAMD_DIR/TEST_SIGNATURES_ONLY" ] && log "WARNING: TEST SIGNATURES ONLY (no official ClamAV database): detects EICAR/test markers, not real malware"
echo "$VERSION_LINE"
