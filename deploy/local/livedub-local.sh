#!/usr/bin/env bash
# One entry for the local streaming stack (all on 127.0.0.1):
#   deploy/local/livedub-local.sh up [--secure] [--with-livekit] [--with-prometheus [TARGET]...]
#                                    Kafka + schema registry [+ a LiveKit meeting server] [+ Prometheus]
#                                    (--secure: SASL_SSL + ACLs; then `livedub acls --apply` for the stages' principals)
#   deploy/local/livedub-local.sh down                                 # stop everything, remove state
#   deploy/local/livedub-local.sh status                               # exit 0 only if Kafka + registry run
#   deploy/local/livedub-local.sh env                                  # LIVEDUB_* exports for the workers
# `up` is idempotent (running services are left alone) and installs missing jars on first use.
# Versions: deploy/local/versions.env; ports and directories: deploy/local/common.sh.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"

print_env() {
  echo "export LIVEDUB_KAFKA__BOOTSTRAP_SERVERS=$LD_HOST:$KAFKA_PORT"
  echo "export LIVEDUB_SCHEMA_REGISTRY__URL=http://$LD_HOST:$REGISTRY_PORT/apis/ccompat/v7"
  if [ -f "$LD_STATE/kafka/secure" ]; then  # the operator's (admin) credentials; `livedub acls --apply` makes the stages'
    echo "export LIVEDUB_KAFKA__SECURITY_PROTOCOL=SASL_SSL"
    echo "export LIVEDUB_KAFKA__SASL_MECHANISM=SCRAM-SHA-512"
    echo "export LIVEDUB_KAFKA__SSL_CAFILE=$LD_STATE/kafka/tls/ca.pem"
    echo "export LIVEDUB_KAFKA__SASL_USERNAME=admin"
    echo "export LIVEDUB_KAFKA__SASL_PASSWORD=$(cat "$LD_STATE/kafka/admin.password")"
  fi
  if [ -f "$LD_STATE/livekit/api.secret" ]; then
    echo "export LIVEDUB_LIVEKIT__URL=ws://$LD_HOST:$LIVEKIT_PORT"
    echo "export LIVEDUB_LIVEKIT__API_KEY=livedub"
    echo "export LIVEDUB_LIVEKIT__API_SECRET=$(cat "$LD_STATE/livekit/api.secret")"
  fi
}

cmd="${1:-}"; shift || true
case "$cmd" in
  up)
    with_prom=0
    with_livekit=0
    if [ "${1:-}" = "--secure" ]; then export LOCAL_LIVEDUB_SECURE=1; shift; fi
    if [ "${1:-}" = "--with-livekit" ]; then with_livekit=1; shift; fi
    if [ "${1:-}" = "--with-prometheus" ]; then with_prom=1; shift; fi
    [ $# -eq 0 ] || [ "$with_prom" = 1 ] || ld_die "unexpected arguments: $* (targets go after --with-prometheus)"
    with_lock
    t0="$(now_ms)"
    # Kafka and the registry do not depend on each other: start both at once.
    "$HERE/kafka.sh" start & kafka_job=$!
    "$HERE/registry.sh" start & registry_job=$!
    rc=0
    wait "$kafka_job" || rc=1
    wait "$registry_job" || rc=1
    [ "$rc" = 0 ] || ld_die "stack did not come up (logs under $LD_STATE)"
    if [ "$with_livekit" = 1 ]; then "$HERE/livekit.sh" start; fi
    if [ "$with_prom" = 1 ]; then "$HERE/prometheus.sh" start "$@"; fi
    ld_log "stack up in $(( $(now_ms) - t0 )) ms"
    print_env
    ;;
  down)
    with_lock
    "$HERE/prometheus.sh" stop
    "$HERE/livekit.sh" stop
    "$HERE/registry.sh" stop
    "$HERE/kafka.sh" stop
    rmdir "$LD_STATE" 2>/dev/null || true
    ;;
  status)
    rc=0
    "$HERE/kafka.sh" status || rc=1
    "$HERE/registry.sh" status || rc=1
    "$HERE/prometheus.sh" status || true
    "$HERE/livekit.sh" status || true
    exit "$rc"
    ;;
  env) print_env ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
