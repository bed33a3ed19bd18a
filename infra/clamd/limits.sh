# Sourced (POSIX sh) by up.sh and render-conf.sh: clamd's size and depth limits, derived from
# MAX_UPLOAD_BYTES (default 1000 MiB, at most 1024 MiB) and checked, or the CLAMD_* overrides
# (bytes / ms / counts). Sets STREAM_MAX_LENGTH MAX_FILE_SIZE MAX_SCAN_SIZE MAX_SCAN_TIME_MS
# MAX_RECURSION MAX_FILES MAX_THREADS MAX_QUEUE; exits with the reason when a value breaks
# the rules (the same rules as packages/runtime/src/config.ts, so a bad value fails here too).
#
# Measured on ClamAV 1.4.6 with AlertExceedsMax yes (infra/clamd/README.md has the table):
# every SIZE option is capped at 4 GiB, no single file of 2 GiB or more is ever scanned,
# and a PDF FlateDecode stream inflating past MaxFileSize raises
# Heuristics.Limits.Exceeded.MaxFileSize only while MaxFileSize is at most 1024 MiB: at
# 1100 MiB and above clamd cuts the stream and answers "stream: OK". gzip, bzip2, xz, tar,
# 7z (LZMA), ARJ and SWF alert at 1000 MiB too. So:
#   MaxFileSize     = MAX_UPLOAD_BYTES, at most 1024 MiB (default 1000 MiB: 24 MiB margin)
#   StreamMaxLength = MAX_UPLOAD_BYTES (INSTREAM counts the object's raw bytes)
# and an object larger than the largest upload is refused by the API before it exists.
# clamd scans an object of exactly MaxFileSize bytes whole and alerts at one byte more.

limits_die() { echo "[clamd] ERROR: $*" >&2; exit 1; }
limits_number() { # name value
  case "$2" in
    '' | *[!0-9]*) limits_die "$1 must be a non-negative integer, got '$2'" ;;
  esac
}
limits_min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }

MAX_UPLOAD_BYTES="${MAX_UPLOAD_BYTES:-1048576000}"
limits_number MAX_UPLOAD_BYTES "$MAX_UPLOAD_BYTES"
[ "$MAX_UPLOAD_BYTES" -gt 0 ] || limits_die "MAX_UPLOAD_BYTES must be a positive integer (bytes), got '$MAX_UPLOAD_BYTES'"

SIZE_CAP=$((4095 * 1024 * 1024))       # 4293918720, highest whole-MiB value below the 4 GiB cap
FILE_CAP=$((1024 * 1024 * 1024))       # largest MaxFileSize measured to alert for every format
[ "$MAX_UPLOAD_BYTES" -le "$FILE_CAP" ] \
  || limits_die "MAX_UPLOAD_BYTES=$MAX_UPLOAD_BYTES is above $FILE_CAP: clamd would cut such content without alerting (see infra/clamd/README.md)"
STREAM_MAX_LENGTH="${CLAMD_STREAM_MAX_LENGTH:-$MAX_UPLOAD_BYTES}"
MAX_FILE_SIZE="${CLAMD_MAX_FILE_SIZE:-$MAX_UPLOAD_BYTES}"
# Archive bytes plus everything extracted from it count toward MaxScanSize (man page:
# a 1M archive holding a 1M file counts 2M), so allow 4x the upload for expansion;
# beyond that it is Heuristics.Limits.Exceeded.MaxScanSize (unscannable), not OK.
MAX_SCAN_SIZE="${CLAMD_MAX_SCAN_SIZE:-$(limits_min $((MAX_UPLOAD_BYTES * 4)) "$SIZE_CAP")}"
limits_number CLAMD_STREAM_MAX_LENGTH "$STREAM_MAX_LENGTH"
limits_number CLAMD_MAX_FILE_SIZE "$MAX_FILE_SIZE"
limits_number CLAMD_MAX_SCAN_SIZE "$MAX_SCAN_SIZE"
[ "$MAX_FILE_SIZE" -le "$FILE_CAP" ] || limits_die "CLAMD_MAX_FILE_SIZE=$MAX_FILE_SIZE is above $FILE_CAP (see above)"
[ "$MAX_FILE_SIZE" -ge "$MAX_UPLOAD_BYTES" ] || limits_die "CLAMD_MAX_FILE_SIZE=$MAX_FILE_SIZE is below MAX_UPLOAD_BYTES=$MAX_UPLOAD_BYTES"
[ "$STREAM_MAX_LENGTH" -ge "$MAX_UPLOAD_BYTES" ] && [ "$STREAM_MAX_LENGTH" -le "$SIZE_CAP" ] \
  || limits_die "CLAMD_STREAM_MAX_LENGTH=$STREAM_MAX_LENGTH must lie between MAX_UPLOAD_BYTES=$MAX_UPLOAD_BYTES and $SIZE_CAP"
[ "$MAX_SCAN_SIZE" -ge "$MAX_FILE_SIZE" ] && [ "$MAX_SCAN_SIZE" -le "$SIZE_CAP" ] \
  || limits_die "CLAMD_MAX_SCAN_SIZE=$MAX_SCAN_SIZE must lie between MaxFileSize=$MAX_FILE_SIZE and $SIZE_CAP"
# 5 minutes: a 1000 MiB file scans in well under that here (~60 MB/s); longer means a
# pathological file, reported as Heuristics.Limits.Exceeded.MaxScanTime.
MAX_SCAN_TIME_MS="${CLAMD_MAX_SCAN_TIME_MS:-300000}"
MAX_RECURSION="${CLAMD_MAX_RECURSION:-17}"     # clamd default; deeper nesting -> Limits.Exceeded
MAX_FILES="${CLAMD_MAX_FILES:-10000}"          # clamd default; more members -> Limits.Exceeded
MAX_THREADS="${CLAMD_MAX_THREADS:-10}"
limits_number CLAMD_MAX_SCAN_TIME_MS "$MAX_SCAN_TIME_MS"
limits_number CLAMD_MAX_RECURSION "$MAX_RECURSION"
limits_number CLAMD_MAX_FILES "$MAX_FILES"
limits_number CLAMD_MAX_THREADS "$MAX_THREADS"
MAX_QUEUE=$((MAX_THREADS * 4))
