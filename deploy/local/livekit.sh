#!/usr/bin/env bash
# A real LiveKit server (the WebRTC SFU meetings run on) on 127.0.0.1, in dev mode.
#   deploy/local/livekit.sh start|stop|status|restart|crash
# `restart` stops the server (SIGTERM: it closes its rooms) and starts it again with the same key
# and secret (what a server upgrade looks like to the clients, who rejoin with the tokens they
# hold); `crash` does the same after a SIGKILL (no goodbye: the clients' SDKs try to resume).
# Media stays on loopback: the node IP is 127.0.0.1, no external IP discovery, no STUN/TURN; RTC
# over UDP (a small port range) and TCP. The API key `livedub` signs tokens with a secret made at
# start (32 random bytes, $L_STATE/api.secret; `livedub-local.sh env` prints it).
# The binary is built once by scripts/install_livekit.sh (version: deploy/local/versions.env).
# Env: see common.sh; LOCAL_LIVEDUB_LIVEKIT_PORT (7880), LOCAL_LIVEDUB_LIVEKIT_RTC_TCP_PORT (7881),
# LOCAL_LIVEDUB_LIVEKIT_UDP_PORTS (50100-50200).
set -euo pipefail
# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

L_STATE="$LD_STATE/livekit"
MATCH="livekit-server"
L_PID="$L_STATE/livekit.pid"
L_LOG="$L_STATE/livekit.log"
L_CONF="$L_STATE/livekit.yaml"
L_URL="http://$LD_HOST:$LIVEKIT_PORT"

livekit_ready() { curl -sf -m 2 "$L_URL/" >/dev/null; }

write_config() {
  mkdir -p "$L_STATE"
  (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$L_STATE/api.secret")
  cat >"$L_CONF" <<YAML
keys:
  livedub: $(cat "$L_STATE/api.secret")
port: $LIVEKIT_PORT
bind_addresses: ["$LD_HOST"]
rtc:
  tcp_port: $LIVEKIT_RTC_TCP_PORT
  port_range_start: ${LIVEKIT_UDP_PORTS%-*}
  port_range_end: ${LIVEKIT_UDP_PORTS#*-}
  use_external_ip: false
  node_ip: $LD_HOST
  stun_servers: []
logging:
  level: info
YAML
}

start() {
  local bin="$LD_ROOT/.tools/bin/livekit-server" pid t0
  [ -x "$bin" ] || bash "$LD_ROOT/scripts/install_livekit.sh"
  if pid="$(live_pid "$L_PID" "$MATCH")"; then
    wait_until 60 "$L_PID" "$L_LOG" livekit livekit_ready
    ld_log "livekit already running (pid $pid) on ws://$LD_HOST:$LIVEKIT_PORT"
    return 0
  fi
  require_free_ports "$LIVEKIT_PORT:LOCAL_LIVEDUB_LIVEKIT_PORT" "$LIVEKIT_RTC_TCP_PORT:LOCAL_LIVEDUB_LIVEKIT_RTC_TCP_PORT"
  t0="$(now_ms)"
  rm -rf "$L_STATE"
  write_config
  start_daemon "$L_PID" "$L_LOG" "$bin" --dev --config "$L_CONF" --bind "$LD_HOST" --node-ip "$LD_HOST"
  wait_until 60 "$L_PID" "$L_LOG" livekit livekit_ready
  ld_log "livekit $LIVEKIT_VERSION started (pid $(cat "$L_PID")) on ws://$LD_HOST:$LIVEKIT_PORT in $(( $(now_ms) - t0 )) ms"
}

stop() { service_stop livekit "$L_PID" "$MATCH" "$L_STATE"; }

restart() {
  local bin="$LD_ROOT/.tools/bin/livekit-server" how="${1:-restart}" pid
  [ -f "$L_CONF" ] || { start; return; }
  if pid="$(live_pid "$L_PID" "$MATCH")"; then
    if [ "$how" = crash ]; then kill -KILL "$pid"; fi
    stop_pid "$L_PID" 20 "$MATCH"
  fi
  start_daemon "$L_PID" "$L_LOG" "$bin" --dev --config "$L_CONF" --bind "$LD_HOST" --node-ip "$LD_HOST"
  wait_until 60 "$L_PID" "$L_LOG" livekit livekit_ready
  ld_log "livekit ${how}ed and started again (pid $(cat "$L_PID")) with the same keys"
}
status() { service_status livekit "$L_PID" "$MATCH" "url=ws://$LD_HOST:$LIVEKIT_PORT" livekit_ready; }

cmd="${1:-}"; shift || true
case "$cmd" in
  start) with_lock; start ;;
  stop) with_lock; stop ;;
  status) status ;;
  restart) with_lock; restart ;;
  crash) with_lock; restart crash ;;
  *) sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
