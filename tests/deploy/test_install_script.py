"""scripts/install_ops_tools.sh: valid bash, idempotent by construction."""

from __future__ import annotations

from .conftest import ROOT, run

SCRIPT = ROOT / "scripts" / "install_ops_tools.sh"


def test_bash_syntax() -> None:
    proc = run(["bash", "-n", str(SCRIPT)])
    assert proc.returncode == 0, proc.stderr


def test_installs_only_what_is_missing() -> None:
    text = SCRIPT.read_text()
    assert "command -v promtool" in text
    assert 'go install -trimpath -ldflags "$ldflags"' in text
    assert "helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" in text
    assert '. "$ROOT/scripts/go_env.sh"' in text and 'GOFLAGS="-mod=mod"' in (SCRIPT.parent / "go_env.sh").read_text()
    assert "kubernetes_validate" in text
