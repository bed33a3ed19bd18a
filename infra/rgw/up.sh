#!/usr/bin/env bash
# A real S3 for tests: single-node Ceph (one monitor, one memstore OSD) with radosgw.
# Unlike fauxqs, RGW verifies SigV4 on PUT and on POST policies, so tests can prove that a
# presigned URL really binds content type and size. All state lives under $RGW_DATA_DIR;
# it runs as the calling user (root) without systemd.
#
# Idempotent: if something already answers on 127.0.0.1:$RGW_PORT, it only prints the env.
# Prints:  RGW_ENDPOINT=...  RGW_ACCESS_KEY=...  RGW_SECRET_KEY=...  RGW_REGION=...
# Usage:   eval "$(infra/rgw/up.sh)"    (progress goes to stderr, env lines to stdout)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RGW_PORT="${RGW_PORT:-7480}"
RGW_MON_PORT="${RGW_MON_PORT:-3300}"
RGW_DATA_DIR="${RGW_DATA_DIR:-$ROOT/.data/rgw}"
# Fixed test credentials: this cluster only ever listens on 127.0.0.1.
RGW_ACCESS_KEY="${RGW_ACCESS_KEY:-INTAKERGWTESTACCESS1}"
RGW_SECRET_KEY="${RGW_SECRET_KEY:-intakeRgwTestSecretKey0000000000000000000}"
RGW_REGION="${RGW_REGION:-us-east-1}"
RGW_MEMSTORE_BYTES="${RGW_MEMSTORE_BYTES:-4294967296}"
RGW_START_TIMEOUT="${RGW_START_TIMEOUT:-120}"

log() { echo "[rgw] $*" >&2; }
die() { echo "[rgw] ERROR: $*" >&2; exit 1; }

print_env() {
  echo "RGW_ENDPOINT=http://127.0.0.1:$RGW_PORT"
  echo "RGW_ACCESS_KEY=$RGW_ACCESS_KEY"
  echo "RGW_SECRET_KEY=$RGW_SECRET_KEY"
  echo "RGW_REGION=$RGW_REGION"
}

# HTTP status of an unauthenticated GET /, without needing curl (bash /dev/tcp).
http_status() {
  local status
  status="$(timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3 && head -n1 <&3" 2>/dev/null || true)"
  echo "$status" | awk '{print $2}' | tr -d '\r'
}

port_in_use() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# Serialise concurrent callers (parallel test runs): the second one waits, then finds RGW up.
mkdir -p "$(dirname "$RGW_DATA_DIR")"
exec 9>"$RGW_DATA_DIR.lock"
flock -w "$RGW_START_TIMEOUT" 9 || die "another infra/rgw/up.sh holds $RGW_DATA_DIR.lock"

if [ -n "$(http_status "$RGW_PORT")" ]; then
  log "already answering on 127.0.0.1:$RGW_PORT"
  print_env
  exit 0
fi

# --- packages -----------------------------------------------------------------------------
missing=()
for pair in radosgw:radosgw ceph-mon:ceph-mon ceph-osd:ceph-osd ceph:ceph-common radosgw-admin:radosgw monmaptool:ceph-base; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${missing[*]} and not root; install radosgw ceph-mon ceph-osd ceph-common"
  log "installing radosgw ceph-mon ceph-osd ceph-common (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends radosgw ceph-mon ceph-osd ceph-common >&2
fi

# --- fresh cluster ------------------------------------------------------------------------
# Memstore keeps objects in RAM, so a cluster that is not running has nothing worth keeping:
# stop leftovers of a previous run and start from an empty directory, which is also what
# makes reruns after a crash or a reboot reliable.
RGW_DATA_DIR="$RGW_DATA_DIR" "$ROOT/infra/rgw/down.sh" >&2 || true
port_in_use "$RGW_PORT" && die "port $RGW_PORT is taken by something that is not an S3 endpoint (set RGW_PORT)"
port_in_use "$RGW_MON_PORT" && die "monitor port $RGW_MON_PORT is taken (set RGW_MON_PORT)"

D="$RGW_DATA_DIR"
rm -rf "$D"
mkdir -p "$D"/{run,log,mon,osd/ceph-0,rgw}
FSID="$(cat /proc/sys/kernel/random/uuid)"
OSD_UUID="$(cat /proc/sys/kernel/random/uuid)"
export CEPH_CONF="$D/ceph.conf"

cat >"$CEPH_CONF" <<EOF
[global]
fsid = $FSID
mon_host = [v2:127.0.0.1:$RGW_MON_PORT]
mon_initial_members = a
public_addr = 127.0.0.1
public_network = 127.0.0.0/8
ms_bind_msgr1 = false
ms_bind_ipv6 = false
# cephx off: a throwaway local cluster, and it spares every client a keyring.
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# radosgw asks the monitor for a "secure" connection by default (the ceph CLI does not);
# secure mode needs a cephx session key, so with auth none its only mode list is empty and
# every attempt fails with "get_initial_auth_request returned -13". crc works without keys.
ms_client_mode = crc
ms_mon_client_mode = crc
keyring = $D/keyring
# One OSD: pools of size 1, and a CRUSH rule that replicates across OSDs, not hosts,
# or PGs would wait forever for a second host and RGW would hang creating its pools.
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_chooseleaf_type = 0
# No ceph-mgr here, so no autoscaler: fixed, small PG counts keep every RGW pool active.
osd_pool_default_pg_autoscale_mode = off
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
mon_max_pg_per_osd = 1000
run_dir = $D/run
pid_file = $D/run/\$name.pid
admin_socket = $D/run/\$name.asok
log_file = $D/log/\$name.log
mon_cluster_log_file = $D/log/cluster.log
crash_dir = $D/crash
log_to_stderr = false
err_to_stderr = false
[mon]
mon_data = $D/mon/\$cluster-\$id
mon_data_avail_warn = 1
mon_data_avail_crit = 0
[osd]
osd_data = $D/osd/\$cluster-\$id
osd_objectstore = memstore
memstore_device_bytes = $RGW_MEMSTORE_BYTES
osd_max_object_name_len = 460
osd_max_object_namespace_len = 64
[client.rgw.intake]
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw_data = $D/rgw
EOF

log "bootstrapping monitor (fsid $FSID) in $D"
ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "$D/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$RGW_MON_PORT]" "$D/monmap" >/dev/null
ceph-mon -c "$CEPH_CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
ceph-mon -c "$CEPH_CONF" -i a 9>&-

deadline=$((SECONDS + RGW_START_TIMEOUT))
wait_for() { # description, command...
  local what="$1"; shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for $what; logs in $D/log"
    sleep 0.5
  done
}
wait_for "the monitor" timeout 5 ceph mon stat

log "creating osd.0 (memstore)"
# `ceph osd new` must get the same UUID as `ceph-osd --mkfs --osd-uuid`, or the OSD boots
# with an identity the monitor does not know and is never marked up.
OSD_ID="$(ceph osd new "$OSD_UUID")"
[ "$OSD_ID" = 0 ] || die "expected osd id 0, got $OSD_ID"
ceph-osd -c "$CEPH_CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" >/dev/null 2>&1 || die "ceph-osd --mkfs failed; see $D/log/osd.0.log"
ceph-osd -c "$CEPH_CONF" -i 0 9>&-
osd_up() { ceph osd dump 2>/dev/null | grep -q '^osd\.0 up'; }
wait_for "osd.0 to come up" osd_up

log "starting radosgw on 127.0.0.1:$RGW_PORT"
radosgw -c "$CEPH_CONF" -n client.rgw.intake 9>&-
rgw_answers() { [ -n "$(http_status "$RGW_PORT")" ]; }
wait_for "radosgw to answer on port $RGW_PORT" rgw_answers

radosgw-admin -n client.rgw.intake user create --uid intake --display-name "Intake tests" \
  --access-key "$RGW_ACCESS_KEY" --secret "$RGW_SECRET_KEY" >/dev/null 2>"$D/log/user-create.err" ||
  die "radosgw-admin user create failed: $(cat "$D/log/user-create.err")"

status="$(http_status "$RGW_PORT")"
log "ready: GET / -> $status ($SECONDS s)"
print_env
