#!/usr/bin/env bash
# Apicurio Registry (in-memory storage) on 127.0.0.1, serving the Confluent-compatible API at
#   http://127.0.0.1:$LOCAL_LIVEDUB_REGISTRY_PORT/apis/ccompat/v7
#   deploy/local/registry.sh start|stop|status
# start: no-op when already running; waits for the readiness health check. stop: kills it and
# removes its state (schemas live in memory, so they go with it). Env: see common.sh;
# LOCAL_LIVEDUB_REGISTRY_HEAP (default -Xmx384m), LOCAL_LIVEDUB_REGISTRY_JAVA_OPTS.
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

R_STATE="$LD_STATE/registry"
MATCH="apicurio"  # how our process shows in /proc/<pid>/cmdline
R_PID="$R_STATE/registry.pid"
R_LOG="$R_STATE/registry.log"

# Apicurio < 3.1 serves health on the HTTP port; newer ones on the management port.
registry_ready() {
  curl -sf -m 2 "http://$LD_HOST:$REGISTRY_PORT/health/ready" >/dev/null \
    || curl -sf -m 2 "http://$LD_HOST:$REGISTRY_MGMT_PORT/health/ready" >/dev/null \
    || return 1
  curl -sf -m 2 "http://$LD_HOST:$REGISTRY_PORT/apis/ccompat/v7/subjects" >/dev/null
}

# The app jar: Quarkus fast-jar layout (quarkus-run.jar) or the legacy uber runner jar.
registry_jar() {
  if [ -f "$APICURIO_HOME/quarkus-run.jar" ]; then
    echo "$APICURIO_HOME/quarkus-run.jar"
  else
    compgen -G "$APICURIO_HOME/*-runner.jar" | head -n1
  fi
}

start() {
  local pid t0 jar
  if pid="$(live_pid "$R_PID" "$MATCH")"; then
    wait_until 120 "$R_PID" "$R_LOG" registry registry_ready
    ld_log "registry already running (pid $pid) on http://$LD_HOST:$REGISTRY_PORT"
    return 0
  fi
  require_free_ports "$REGISTRY_PORT:LOCAL_LIVEDUB_REGISTRY_PORT"
  [ -n "$(registry_jar)" ] || bash "$LD_ROOT/scripts/install_kafka.sh" --registry
  jar="$(registry_jar)"
  [ -n "$jar" ] || ld_die "no Apicurio jar under $APICURIO_HOME"
  command -v java >/dev/null || ld_die "java not found (Java 17+ is needed)"

  t0="$(now_ms)"
  rm -rf "$R_STATE"
  mkdir -p "$R_STATE"
  # shellcheck disable=SC2206
  local -a heap=(${LOCAL_LIVEDUB_REGISTRY_HEAP:--Xmx384m})
  # shellcheck disable=SC2206
  local -a extra=(${LOCAL_LIVEDUB_REGISTRY_JAVA_OPTS:-})
  # C1 only and the serial GC: quicker start and less CPU on a shared box; traffic here is tiny.
  start_daemon "$R_PID" "$R_LOG" java "${heap[@]}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dquarkus.http.host="$LD_HOST" -Dquarkus.http.port="$REGISTRY_PORT" \
      -Dquarkus.management.host="$LD_HOST" -Dquarkus.management.port="$REGISTRY_MGMT_PORT" \
      -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
      -Dapicurio.datasource.jdbc.initial-size=2 -Dapicurio.datasource.jdbc.min-size=2 \
      -Dapicurio.datasource.jdbc.max-size=10 \
      -Dquarkus.log.level=INFO \
      "${extra[@]}" -jar "$jar"
  wait_until 120 "$R_PID" "$R_LOG" registry registry_ready
  ld_log "registry (Apicurio $APICURIO_VERSION) started (pid $(cat "$R_PID")) on http://$LD_HOST:$REGISTRY_PORT in $(( $(now_ms) - t0 )) ms"
}

stop() {
  if live_pid "$R_PID" "$MATCH" >/dev/null; then
    stop_pid "$R_PID" 20 "$MATCH"
    ld_log "registry stopped"
  fi
  rm -rf "$R_STATE"
}

status() {
  local pid
  if pid="$(live_pid "$R_PID" "$MATCH")" && registry_ready; then
    echo "registry: running (pid $pid) url=http://$LD_HOST:$REGISTRY_PORT/apis/ccompat/v7"
  elif [ -n "${pid:-}" ]; then
    echo "registry: starting (pid $pid)"; return 1
  else
    echo "registry: stopped"; return 1
  fi
}

case "${1:-}" in
  start) with_lock; start ;;
  stop) with_lock; stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
