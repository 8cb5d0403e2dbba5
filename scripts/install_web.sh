#!/usr/bin/env bash
# The call page's JavaScript (the LiveKit JS client, pinned in workers/live/web/package-lock.json)
# and, with --browser, Debian's Chromium for the browser tests. Idempotent.
#   scripts/install_web.sh [--browser]
set -euo pipefail
cd "$(dirname "$0")/.."

BROWSER=0
for a in "$@"; do
  case "$a" in
    --browser) BROWSER=1 ;;
    *) echo "usage: $0 [--browser]" >&2; exit 2 ;;
  esac
done

WEB=workers/live/web
stamp=$WEB/node_modules/.livedub-installed
want=$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  command -v npm >/dev/null || { echo "install_web: npm (Node.js) is needed for the call page" >&2; exit 1; }
  echo "installing the call page's JavaScript (npm ci in $WEB)"
  npm ci --prefix "$WEB" --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

if [ "$BROWSER" = 1 ] && ! command -v chromium >/dev/null; then
  echo "installing Debian's chromium (browser tests)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
