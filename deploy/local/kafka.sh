#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft) on 127.0.0.1, from the jars cached by scripts/install_kafka.sh.
#   deploy/local/kafka.sh start|stop|status
# start: no-op when already running; formats the storage on first start. stop: kills it and
# removes its state (data, logs). Env: see deploy/local/common.sh; LOCAL_LIVEDUB_KAFKA_HEAP
# (default -Xms128m -Xmx512m), LOCAL_LIVEDUB_KAFKA_JAVA_OPTS (extra JVM flags); LOCAL_LIVEDUB_SECURE=1:
# SASL_SSL (SCRAM-SHA-512) with ACLs instead of PLAINTEXT (secure.properties.in; CA and admin
# password under the state dir: tls/ca.pem, admin.password).
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

K_STATE="$LD_STATE/kafka"
MATCH="kafka.Kafka"  # how our process shows in /proc/<pid>/cmdline
K_PID="$K_STATE/kafka.pid"
K_LOG="$K_STATE/kafka.log"
K_CONF="$K_STATE/server.properties"
K_DATA="$K_STATE/data"

kafka_ready() {
  port_in_use "$KAFKA_PORT" && grep -q 'Kafka Server started' "$K_LOG"
}

start() {
  local pid t0
  if pid="$(live_pid "$K_PID" "$MATCH")"; then
    wait_until 120 "$K_PID" "$K_LOG" kafka kafka_ready
    ld_log "kafka already running (pid $pid) on $LD_HOST:$KAFKA_PORT"
    return 0
  fi
  require_free_ports "$KAFKA_PORT:LOCAL_LIVEDUB_KAFKA_PORT" "$CONTROLLER_PORT:LOCAL_LIVEDUB_CONTROLLER_PORT"
  [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] || bash "$LD_ROOT/scripts/install_kafka.sh" --kafka
  command -v java >/dev/null || ld_die "java not found (Java 17+ is needed)"

  t0="$(now_ms)"
  rm -rf "$K_STATE"
  mkdir -p "$K_DATA"
  local template="$LD_DEPLOY/kafka/server.properties.in" admin_pw="" tls="$K_STATE/tls"
  local -a scram=()
  if [ "${LOCAL_LIVEDUB_SECURE:-0}" = 1 ]; then
    # SASL_SSL + StandardAuthorizer: a fresh CA, broker certificate and admin password per start.
    template="$LD_DEPLOY/kafka/secure.properties.in"
    bash "$LD_DEPLOY/tls.sh" "$tls"
    admin_pw="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    (umask 077; echo "$admin_pw" >"$K_STATE/admin.password")
    scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=$admin_pw]")
    touch "$K_STATE/secure"
  fi
  (umask 077; sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" -e "s|@CONTROLLER_PORT@|$CONTROLLER_PORT|g" \
      -e "s|@DATA_DIR@|$K_DATA|g" -e "s|@TLS_DIR@|$tls|g" -e "s|@ADMIN_PASSWORD@|$admin_pw|g" \
      "$template" >"$K_CONF")

  # A KRaft cluster id is 16 random bytes, URL-safe base64 without padding.
  local cluster_id
  cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
  local -a java=(java -cp "$KAFKA_LIBS/*" -Djava.awt.headless=true
                 -Dorg.slf4j.simpleLogger.showDateTime=true
                 -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS
                 -Dorg.slf4j.simpleLogger.log.state.change.logger=warn
                 -Dorg.slf4j.simpleLogger.log.kafka.coordinator=warn)
  "${java[@]}" -Xmx128m -XX:TieredStopAtLevel=1 kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$K_CONF" --standalone "${scram[@]}" >"$K_STATE/format.log" 2>&1 \
    || { cat "$K_STATE/format.log" >&2; ld_die "kafka storage format failed"; }

  # shellcheck disable=SC2206
  local -a heap=(${LOCAL_LIVEDUB_KAFKA_HEAP:--Xms128m -Xmx512m})
  # shellcheck disable=SC2206
  local -a extra=(${LOCAL_LIVEDUB_KAFKA_JAVA_OPTS:-})
  start_daemon "$K_PID" "$K_LOG" "${java[@]}" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:+ExitOnOutOfMemoryError "${extra[@]}" kafka.Kafka "$K_CONF"
  wait_until 120 "$K_PID" "$K_LOG" kafka kafka_ready
  ld_log "kafka $KAFKA_VERSION started (pid $(cat "$K_PID")) on $LD_HOST:$KAFKA_PORT in $(( $(now_ms) - t0 )) ms"
}

stop() {
  if live_pid "$K_PID" "$MATCH" >/dev/null; then
    stop_pid "$K_PID" 30 "$MATCH"
    ld_log "kafka stopped"
  fi
  rm -rf "$K_STATE"
}

status() {
  local pid
  if pid="$(live_pid "$K_PID" "$MATCH")" && kafka_ready; then
    echo "kafka: running (pid $pid) bootstrap=$LD_HOST:$KAFKA_PORT"
  elif [ -n "${pid:-}" ]; then
    echo "kafka: starting (pid $pid)"; return 1
  else
    echo "kafka: stopped"; return 1
  fi
}

cmd="${1:-}"
case "$cmd" in
  start) with_lock; start ;;
  stop) with_lock; stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
