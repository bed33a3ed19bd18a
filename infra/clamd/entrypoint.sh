#!/bin/sh
# The intake-clamd image's entrypoint: writes Intake's container signatures into clamd's
# database directory, then hands over to the clamav/clamav image's own unprivileged
# entrypoint with the same arguments (none: freshclam and clamd; a command: that command).
#
# At every start, not at build time: compose, Kubernetes and ECS mount or fill
# /var/lib/clamav from elsewhere (a volume, an emptyDir), which hides what the image held,
# and the workers' limits probe refuses a clamd without Intake.Unscannable.* loaded.
# A failure to write them stops the container (set -e): clamd never starts without them.
# Then the operators' custom rules (CLAMD_CUSTOM_RULES_DIR, default /rules, a read-only mount;
# none mounted: none loaded) through the same validation as `intake-rules reload`: a refused
# rule file stops the container too, so a bad rules change never starts a clamd silently
# without them (the replicas already running keep theirs; RUNBOOK "Custom rules").
set -eu

DATABASE_DIR=/var/lib/clamav
NEXT=/init-unprivileged

/usr/local/share/intake-clamd/container-signatures.sh "$DATABASE_DIR"
CLAMD_DATABASE_DIR="$DATABASE_DIR" /usr/local/bin/intake-rules sync
exec "$NEXT" "$@"
