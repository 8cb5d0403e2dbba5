"""Shared helpers for the deployment tests (Helm chart, rules, dashboards, images).

External tools: helm at .tools/bin/helm (built by scripts/install_ops_tools.sh),
promtool on PATH, hadolint from the venv. A missing tool fails the test when CI=true
and skips it otherwise.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "livedub"
EXAMPLES = sorted((CHART / "examples").glob("values-*.yaml"))
HELM = ROOT / ".tools" / "bin" / "helm"

# Kubernetes versions the chart is rendered and schema-validated for: the oldest the
# chart supports (Chart.yaml kubeVersion) and the newest kubernetes-validate knows.
KUBE_VERSIONS = ("1.27.0", "1.37.0")
# CRD APIs the target cluster has (KEDA, Prometheus Operator).
API_VERSIONS = (
    "keda.sh/v1alpha1/ScaledObject",
    "keda.sh/v1alpha1/TriggerAuthentication",
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
)
# Values every render needs (the chart has no default for them).
REQUIRED_SET = ("kafka.bootstrapServers=kafka:9092", "schemaRegistry.url=http://schema-registry:8081")
INSTALL_HINT = "run scripts/install_ops_tools.sh"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def missing(what: str) -> None:
    """Fail under CI, skip on a developer machine."""
    msg = f"{what} not available ({INSTALL_HINT})"
    if in_ci():
        pytest.fail(msg)
    pytest.skip(msg)


def tool(name: str) -> str:
    """Path of an executable: .tools/bin, the venv's bin, then PATH."""
    for cand in (ROOT / ".tools" / "bin" / name, Path(sys.executable).parent / name):
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which(name)
    if not found:
        missing(name)
    return found  # type: ignore[return-value]


def module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"python module {name}")


def helm() -> str:
    if not (HELM.is_file() and os.access(HELM, os.X_OK)):
        missing(f"helm at {HELM.relative_to(ROOT)}")
    return str(HELM)


def run(cmd: list[str], timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def template_cmd(
    values: tuple[str, ...] = (),
    sets: tuple[str, ...] = REQUIRED_SET,
    kube_version: str = KUBE_VERSIONS[-1],
    api_versions: tuple[str, ...] = API_VERSIONS,
    namespace: str = "livedub",
    release: str = "livedub",
) -> list[str]:
    cmd = [helm(), "template", release, str(CHART), "--namespace", namespace, "--kube-version", kube_version]
    for v in values:
        cmd += ["-f", str(v)]
    for s in sets:
        cmd += ["--set", s]
    for a in api_versions:
        cmd += ["--api-versions", a]
    return cmd


@functools.lru_cache(maxsize=64)
def _render(cmd: tuple[str, ...]) -> tuple[int, str, str]:
    proc = run(list(cmd))
    return proc.returncode, proc.stdout, proc.stderr


def render_raw(**kwargs: Any) -> tuple[int, str, str]:
    """(returncode, stdout, stderr) of `helm template` (memoised)."""
    return _render(tuple(template_cmd(**kwargs)))


def render(**kwargs: Any) -> list[dict[str, Any]]:
    """Rendered manifests of a render that must succeed."""
    yaml = module("yaml")
    rc, out, err = render_raw(**kwargs)
    assert rc == 0, f"helm template failed:\n{err}"
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def stage_of(doc: dict[str, Any]) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def default_values() -> dict[str, Any]:
    return module("yaml").safe_load((CHART / "values.yaml").read_text())


def values_file(data: dict[str, Any]) -> str:
    """Write `data` as a values file (content-addressed, so renders stay memoised)."""
    text = json.dumps(data, sort_keys=True)
    path = (
        Path(tempfile.gettempdir()) / f"livedub-values-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    )
    if not path.exists():
        path.write_text(text)
    return str(path)


def with_stage(name: str, **overrides: Any) -> str:
    """Values file: the default stages list with `overrides` merged into stage `name`
    (a list set with --set would replace the whole list)."""
    stages = copy.deepcopy(default_values()["stages"])
    for st in stages:
        if st["name"] == name:
            for k, v in overrides.items():
                if isinstance(v, dict) and isinstance(st.get(k), dict):
                    st[k] = {**st[k], **v}
                elif v is None:
                    st.pop(k, None)
                else:
                    st[k] = v
    return values_file({"stages": stages})
