# Sourced by the scripts that build Go tools (helm, livekit-server): where the tools and Go's
# caches live. Outside the checkout, so a fresh clone (CI) reuses them. Needs ROOT set.
# shellcheck shell=bash disable=SC2034
TOOLS_BIN="$ROOT/.tools/bin"
SHARED="${LOCAL_LIVEDUB_TOOL_CACHE:-$HOME/.cache/livedub-tools}"
export GOPATH="${GOPATH:-$SHARED/go}"
export GOMODCACHE="${GOMODCACHE:-$GOPATH/pkg/mod}"
export GOCACHE="${GOCACHE:-$SHARED/go-build}"
export GOFLAGS="-mod=mod"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
