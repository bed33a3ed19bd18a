#!/bin/sh
# Usage: intake-rules check | sync | reload
# The intake-clamd image's custom rules (RUNBOOK "Custom rules"): what `npm run signatures --
# reload` (packages/scanner/src/custom-rules.ts) does on a clamd host, for the container,
# which has clamscan and clamd's database directory but no Node. POSIX sh (busybox).
#
#   check   validate every rule file of CLAMD_CUSTOM_RULES_DIR (default /rules); change nothing
#   sync    validate, then copy them into the database directory as custom-<name> (copies of
#           files no longer there removed) and write signature-set.ndb; the entrypoint runs
#           this before clamd starts
#   reload  sync, then RELOAD clamd over TCP and wait until the signature-set probe names the
#           new set (clamd answers RELOADING even when the load fails and keeps the old one)
#
# Each .yar/.yara/.hdb/.hsb/.ndb file is loaded alone by clamscan, which scans the
# signature-set probe: an error, a YARA parse warning, or a match on the probe refuses it,
# and one refused file refuses all: nothing in the database directory changes, exit 1.
# The signature-set file is the format the workers' signature watch reads
# (Intake.SignatureSet.<16 hex>, matching the probe at offset 0; ruleSetOfSignature), named
# per sync (rules' digest, time, random part), so every reload is seen as a new set.
# Exit codes: 0 done, 1 refused or clamd did not load, 2 usage.
set -eu

RULES_DIR=${CLAMD_CUSTOM_RULES_DIR:-/rules}
DATABASE_DIR=${CLAMD_DATABASE_DIR:-/var/lib/clamav}
CLAMD_HOST=${CLAMD_HOST:-127.0.0.1}
CLAMD_PORT=${CLAMD_PORT:-3310}
RELOAD_TIMEOUT=${CLAMD_RELOAD_TIMEOUT_SECONDS:-120}
# SIGNATURE_SET_PROBE of custom-rules.ts (44 bytes; test/deploy checks they agree).
PROBE_TEXT='INTAKE-SIGNATURE-SET-PROBE:3f9c1e7a5b2d4c60'
PROBE_HEX=494e54414b452d5349474e41545552452d5345542d50524f42453a336639633165376135623264346336300a
# CUSTOM_RULE_FILE of custom-rules.ts.
RULE_FILE='^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.([Yy][Aa][Rr][Aa]?|[Hh][Dd][Bb]|[Hh][Ss][Bb]|[Nn][Dd][Bb])$'

say() { echo "[intake-rules] $*"; }
err() { echo "[intake-rules] $*" >&2; }

probe() { printf '%s\n' "$PROBE_TEXT"; }

is_rule_file() { printf '%s\n' "$1" | grep -Eq "$RULE_FILE"; }

# The rule files, one name a line, sorted (ConfigMap files are symlinks: -f follows them;
# its ..data entries start with a dot and are not listed by the glob).
rule_files() {
  [ -d "$RULES_DIR" ] || return 0
  for f in "$RULES_DIR"/*; do
    [ -f "$f" ] || continue
    n=${f##*/}
    if is_rule_file "$n"; then printf '%s\n' "$n"; else err "ignored $n (not a .yar/.yara/.hdb/.hsb/.ndb file)"; fi
  done
}

# Empty output when the file loads whole and misses the probe, else what is wrong.
validate() {
  out=$(mktemp) errs=$(mktemp)
  code=0
  probe | clamscan --no-summary "--database=$1" - >"$out" 2>"$errs" || code=$?
  problems=$(grep -Ei 'LibClamAV Error|^ERROR:|failed to parse or load|empty database file' "$errs" | head -n 4 | tr '\n' ' ' | cut -c 1-500 || true)
  match=$(sed -n 's/^stdin: \(.*\) FOUND$/\1/p' "$out" | head -n 1 | cut -c 1-200)
  rm -f "$out" "$errs"
  if [ "$code" -eq 1 ] && [ -n "$match" ] && [ -z "$problems" ]; then
    echo "the rule $match matches Intake's signature-set probe ($PROBE_TEXT), which only the signature-set signature may match: narrow the rule"
  elif [ "$code" -ne 0 ] || [ -n "$problems" ]; then
    echo "${problems:-clamscan exited with $code}"
  fi
}

# Validates every file; prints the refusals on stderr; returns 1 when one was refused.
validate_all() {
  bad=0
  for n in $(rule_files); do
    problem=$(validate "$RULES_DIR/$n")
    if [ -n "$problem" ]; then err "REFUSED $n: $problem"; bad=$((bad + 1)); else say "ok      $n"; fi
  done
  [ "$bad" -eq 0 ]
}

# A file whole or not at all (clamd's SelfCheck may read the directory at any moment).
replace() { # SOURCE DEST
  cp "$1" "$2.$$.tmp" && mv -f "$2.$$.tmp" "$2"
}

sync_rules() {
  [ -d "$DATABASE_DIR" ] && [ -w "$DATABASE_DIR" ] || { err "cannot write the database directory $DATABASE_DIR"; return 1; }
  if ! validate_all; then
    err "nothing changed in $DATABASE_DIR: fix or remove the refused file(s); clamd keeps its current rules"
    return 1
  fi
  names=$(rule_files 2>/dev/null)
  # Read each file once: what is copied is what the digest covers.
  set_digest=$(for n in $names; do printf '%s\0%s\n' "$n" "$(sha256sum <"$RULES_DIR/$n" | cut -c 1-64)"; done | sha256sum | cut -c 1-64)
  nonce=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
  DIGEST=$(printf '%s:%s:%s' "$set_digest" "$(date +%s)" "$nonce" | sha256sum | cut -c 1-16)
  for n in $names; do replace "$RULES_DIR/$n" "$DATABASE_DIR/custom-$n"; done
  removed=""
  for f in "$DATABASE_DIR"/custom-*; do
    [ -e "$f" ] || continue
    c=${f##*/custom-}
    case "$c" in *.tmp) continue ;; esac
    keep=no
    for n in $names; do [ "$n" = "$c" ] && keep=yes; done
    [ "$keep" = yes ] || { rm -f "$f"; removed="$removed custom-$c"; }
  done
  printf 'Intake.SignatureSet.%s:0:0:%s\n' "$DIGEST" "$PROBE_HEX" >"$DATABASE_DIR/signature-set.ndb.$$.tmp"
  mv -f "$DATABASE_DIR/signature-set.ndb.$$.tmp" "$DATABASE_DIR/signature-set.ndb"
  list=$(echo $names)
  say "rules: ${list:-none}${removed:+; removed$removed} (set $DIGEST)"
}

# clamd's reply to a z-command over TCP, NULs dropped (clamd closes after one reply).
clamd_command() { # WHAT (printf format of the request)
  printf "$1" | nc -w 5 "$CLAMD_HOST" "$CLAMD_PORT" | tr -d '\000'
}

# The rule set clamd has loaded: the digest its probe answer names, or nothing.
loaded_set() {
  { printf 'zINSTREAM\000\000\000\000\054'; probe; printf '\000\000\000\000'; } | nc -w 10 "$CLAMD_HOST" "$CLAMD_PORT" | tr -d '\000' \
    | sed -n 's/^stream: Intake\.SignatureSet\.\([0-9a-f]\{16\}\)\(\.UNOFFICIAL\)\{0,1\} FOUND$/\1/p'
}

reload_clamd() {
  reply=$(clamd_command 'zRELOAD\000' || true)
  [ "$reply" = RELOADING ] || { err "clamd $CLAMD_HOST:$CLAMD_PORT answered RELOAD with '$reply'"; return 1; }
  waited=0
  while :; do
    seen=$(loaded_set || true)
    [ "$seen" = "$DIGEST" ] && { say "clamd reloaded: rule set $DIGEST"; return 0; }
    if [ "$waited" -ge "$RELOAD_TIMEOUT" ]; then
      err "clamd did not load rule set $DIGEST (it answers ${seen:-none}): look at clamd's log, a database it cannot parse keeps the previous one loaded"
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

case "${1:-}" in
  check) validate_all ;;
  sync) sync_rules ;;
  reload) sync_rules && reload_clamd ;;
  *) echo "usage: intake-rules check | sync | reload" >&2; exit 2 ;;
esac
