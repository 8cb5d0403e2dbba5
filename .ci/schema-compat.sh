#!/usr/bin/env bash
# Schema evolution gate: every schemas/*.avsc in the working tree must be BACKWARD compatible
# (readers with the new schema can read data written with the old one) with its version at a
# base git ref, as judged by the real schema registry (started locally if not running).
#   .ci/schema-compat.sh [BASE_REF]
# BASE_REF: argument, else $SCHEMA_BASE_REF, else HEAD when schemas/ has uncommitted changes
# (checks your edit) and HEAD~1 otherwise (checks the last commit). In CI on a pull request pass
# the target branch, e.g. `.ci/schema-compat.sh origin/main`. A shallow clone is deepened by one
# commit when the base is missing; with no base at all (first commit) there is nothing to check.
# New schema files pass; a removed schema file fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-.venv/bin/python}"
ref="${1:-${SCHEMA_BASE_REF:-}}"

probe="${ref:-HEAD~1}"
if ! git rev-parse --verify --quiet "$probe^{commit}" >/dev/null \
   && [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = "true" ]; then
  echo "schema-compat: $probe missing in a shallow clone; fetching one more commit" >&2
  git fetch --quiet --deepen=1 2>/dev/null || true
fi

deploy/local/registry.sh start
url="http://127.0.0.1:${LOCAL_LIVEDUB_REGISTRY_PORT:-8081}/apis/ccompat/v7"
args=(check-compat --url "$url")
[ -n "$ref" ] && args+=(--base-ref "$ref")
exec "$PY" -m streams.registry "${args[@]}"
