#!/usr/bin/env bash
# Builds the LiveKit server (a Go module) from the Go module proxy once and caches the binary
# outside the checkout, like helm (scripts/install_ops_tools.sh): -> .tools/bin/livekit-server.
# Version: LIVEKIT_VERSION in deploy/local/versions.env. Env: GOPATH, LOCAL_LIVEDUB_TOOL_CACHE.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../deploy/local/versions.env
. "$ROOT/deploy/local/versions.env"
# shellcheck source=go_env.sh
. "$ROOT/scripts/go_env.sh"
CACHED="$SHARED/bin/livekit-server-$LIVEKIT_VERSION"

log() { printf '[install_livekit] %s\n' "$*"; }

if [[ -x "$TOOLS_BIN/livekit-server" ]] && "$TOOLS_BIN/livekit-server" --version 2>/dev/null | grep -q "${LIVEKIT_VERSION#v}"; then
  log "livekit-server present: $("$TOOLS_BIN/livekit-server" --version)"
  exit 0
fi
mkdir -p "$TOOLS_BIN"
if [[ ! -x "$CACHED" ]]; then
  command -v go >/dev/null 2>&1 || { echo "go toolchain required to build livekit-server" >&2; exit 1; }
  log "building livekit-server $LIVEKIT_VERSION with $(go version) (module cache: $GOMODCACHE)"
  tmp="$(mktemp -d)"
  GOBIN="$tmp" CGO_ENABLED=0 nice -n 10 go install -trimpath -ldflags "-s -w" \
    "github.com/livekit/livekit-server/cmd/server@$LIVEKIT_VERSION"
  mkdir -p "$SHARED/bin"
  mv "$tmp/server" "$CACHED"
  rmdir "$tmp"
fi
cp "$CACHED" "$TOOLS_BIN/livekit-server"
log "livekit-server: $("$TOOLS_BIN/livekit-server" --version)"
