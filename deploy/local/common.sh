# Shared helpers for deploy/local/*.sh (sourced, not executed).
# Everything listens on 127.0.0.1 only. Ports, cache and state directories are overridable by env:
#   LOCAL_LIVEDUB_KAFKA_PORT (9092)      LOCAL_LIVEDUB_CONTROLLER_PORT (9093)
#   LOCAL_LIVEDUB_REGISTRY_PORT (8081)   LOCAL_LIVEDUB_REGISTRY_MGMT_PORT (8082, Apicurio >= 3.1 health)
#   LOCAL_LIVEDUB_PROMETHEUS_PORT (9090)
#   LOCAL_LIVEDUB_LIVEKIT_PORT (7880)   LOCAL_LIVEDUB_LIVEKIT_RTC_TCP_PORT (7881)   LOCAL_LIVEDUB_LIVEKIT_UDP_PORTS (50100-50200)
#   LOCAL_LIVEDUB_CACHE (<repo>/.cache/livedub-local: jars, unpacked registry)
#   LOCAL_LIVEDUB_STATE (<cache>/state: data dirs, logs, pid files; removed by `down`)
# shellcheck shell=bash disable=SC2034

LD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LD_DEPLOY="$LD_ROOT/deploy/local"
# shellcheck source=versions.env
. "$LD_DEPLOY/versions.env"

LD_HOST=127.0.0.1
KAFKA_PORT="${LOCAL_LIVEDUB_KAFKA_PORT:-9092}"
CONTROLLER_PORT="${LOCAL_LIVEDUB_CONTROLLER_PORT:-9093}"
REGISTRY_PORT="${LOCAL_LIVEDUB_REGISTRY_PORT:-8081}"
REGISTRY_MGMT_PORT="${LOCAL_LIVEDUB_REGISTRY_MGMT_PORT:-8082}"
PROMETHEUS_PORT="${LOCAL_LIVEDUB_PROMETHEUS_PORT:-9090}"
LIVEKIT_PORT="${LOCAL_LIVEDUB_LIVEKIT_PORT:-7880}"
LIVEKIT_RTC_TCP_PORT="${LOCAL_LIVEDUB_LIVEKIT_RTC_TCP_PORT:-7881}"
LIVEKIT_UDP_PORTS="${LOCAL_LIVEDUB_LIVEKIT_UDP_PORTS:-50100-50200}"

LD_CACHE="${LOCAL_LIVEDUB_CACHE:-$LD_ROOT/.cache/livedub-local}"
LD_STATE="${LOCAL_LIVEDUB_STATE:-$LD_CACHE/state}"
KAFKA_LIBS="$LD_CACHE/kafka-$KAFKA_VERSION/libs"
APICURIO_HOME="$LD_CACHE/apicurio-$APICURIO_VERSION"

ld_log() { printf '[livedub-local] %s\n' "$*" >&2; }
ld_die() { printf '[livedub-local] error: %s\n' "$*" >&2; exit 1; }

# True when something listens on 127.0.0.1:$1 (or on a wildcard address).
port_in_use() {
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Hltn "( sport = :$1 )" 2>/dev/null)" ]
  else
    (exec 3<>"/dev/tcp/$LD_HOST/$1") 2>/dev/null
  fi
}

# "pid/command" of whoever listens on port $1, for error messages.
port_owner() {
  ss -Hltnp "( sport = :$1 )" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1 || true
}

# pid from pid file $1 when that process is alive (and its command line contains $2, so a
# recycled pid is not mistaken for ours), else nothing and status 1.
live_pid() {
  local pid
  [ -f "$1" ] || return 1
  pid="$(cat "$1" 2>/dev/null)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  if [ -n "${2:-}" ] && [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$2" || return 1
  fi
  echo "$pid"
}

# Fail unless every port is free; names the port, its owner and the variable to change.
require_free_ports() {
  local spec port var
  for spec in "$@"; do
    port="${spec%%:*}"; var="${spec#*:}"
    if port_in_use "$port"; then
      ld_die "port $port is already in use by $(port_owner "$port") (not started by this script); stop it or set $var"
    fi
  done
}

# Start a detached daemon: start_daemon PIDFILE LOGFILE CMD... (own session, no inherited fds).
start_daemon() {
  local pidfile="$1" logfile="$2"; shift 2
  setsid "$@" >"$logfile" 2>&1 </dev/null 9>&- &
  echo $! >"$pidfile"
}

# Stop the process in pid file $1 (TERM, then KILL after $2 seconds; $3: command-line pattern).
stop_pid() {
  local pidfile="$1" grace="${2:-30}" pattern="${3:-}" pid i
  pid="$(live_pid "$pidfile" "$pattern")" || { rm -f "$pidfile"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    ld_log "pid $pid did not stop in ${grace}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$pidfile"
}

# wait_until SECONDS PIDFILE LOGFILE WHAT CHECK...: poll CHECK every 0.2 s until it succeeds;
# fail early (showing the log) if the process dies, or on timeout.
wait_until() {
  local timeout="$1" pidfile="$2" logfile="$3" what="$4"; shift 4
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! live_pid "$pidfile" >/dev/null; then
      tail -n 40 "$logfile" >&2 || true
      ld_die "$what exited during startup (log: $logfile)"
    fi
    sleep 0.2
  done
  tail -n 40 "$logfile" >&2 || true
  ld_die "$what not ready after ${timeout}s (log: $logfile)"
}

now_ms() { date +%s%3N; }

# service_stop NAME PIDFILE MATCH STATEDIR: stop a daemon started by start_daemon and remove its state.
service_stop() {
  if live_pid "$2" "$3" >/dev/null; then
    stop_pid "$2" 20 "$3"
    ld_log "$1 stopped"
  fi
  rm -rf "$4"
}

# service_status NAME PIDFILE MATCH ADDRESS READY...: one line; exit 1 unless it runs and READY succeeds.
service_status() {
  local name="$1" pidfile="$2" match="$3" addr="$4" pid
  shift 4
  if pid="$(live_pid "$pidfile" "$match")" && "$@" >/dev/null 2>&1; then
    echo "$name: running (pid $pid) $addr"
  elif [ -n "${pid:-}" ]; then
    echo "$name: starting (pid $pid)"; return 1
  else
    echo "$name: stopped"; return 1
  fi
}

# Serialise start/stop across shells (several engineers and test sessions share one machine).
# The lock file lives in the cache (not the state dir, which `down` removes); nested calls
# (livedub-local.sh -> kafka.sh) inherit the lock through LD_LOCKED.
with_lock() {
  [ -n "${LD_LOCKED:-}" ] && return 0
  mkdir -p "$LD_CACHE"
  exec 9>"$LD_CACHE/.lock"
  flock -w 300 9 || ld_die "could not lock $LD_CACHE/.lock"
  export LD_LOCKED=1
}
