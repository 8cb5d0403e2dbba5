"""Worker images (deploy/docker): hadolint, plus the properties the chart relies on.

The images cannot be built here (no Docker engine), so this checks the Dockerfiles
statically: pinned multi-stage builds, a non-root numeric USER (runAsNonRoot can
verify it), tini as PID 1, the `livedub` CLI, no HEALTHCHECK (Kubernetes probes).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import ROOT, run, tool

DOCKER = ROOT / "deploy" / "docker"
DOCKERFILES = sorted(DOCKER.glob("Dockerfile.*[!e]"))  # not the .dockerignore files
PINNED = re.compile(
    r"^[\w./-]+:(\d+\.\d+\.\d+[\w.-]*)(@sha256:[a-f0-9]{64})?$|^[\w./-]+@sha256:[a-f0-9]{64}$"
)


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def args(path: Path) -> dict[str, str]:
    return {
        k: v.strip('"')
        for op, rest in instructions(path)
        if op == "ARG" and "=" in rest
        for k, _, v in [rest.partition("=")]
    }


def test_both_images_exist() -> None:
    assert {p.name for p in DOCKERFILES} == {"Dockerfile.cpu", "Dockerfile.cuda"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(path: Path) -> None:
    proc = run([tool("hadolint"), "--config", str(DOCKER / ".hadolint.yaml"), str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_pinned_multi_stage_base_images(path: Path) -> None:
    a = args(path)
    froms = [rest for op, rest in instructions(path) if op == "FROM"]
    assert len(froms) >= 2, "multi-stage build expected"
    for rest in froms:
        image = rest.split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: a[m.group(1)], image)
        assert PINNED.match(image), f"base image not pinned to an exact version or digest: {image}"
        assert ":latest" not in image
    assert froms[-1].split()[-1] == "runtime"
    assert any(rest.startswith("--from=build") for op, rest in instructions(path) if op == "COPY")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_runtime_is_non_root_without_healthcheck(path: Path) -> None:
    ins = instructions(path)
    ops = [op for op, _ in ins]
    assert "HEALTHCHECK" not in ops
    users = [rest for op, rest in ins if op == "USER"]
    assert users, "no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid (runAsNonRoot checks it)"
    # Nothing runs as root after the last USER.
    last_user = max(i for i, (op, _) in enumerate(ins) if op == "USER")
    assert "RUN" not in ops[last_user:]
    # The chart's podSecurityContext uses the same uid.
    values = (ROOT / "deploy" / "helm" / "livedub" / "values.yaml").read_text()
    assert f"runAsUser: {uid}" in values


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_runs_livedub_worker_under_tini(path: Path) -> None:
    ins = dict(instructions(path))
    assert ins["ENTRYPOINT"] == '["/usr/bin/tini", "-g", "--"]'
    assert ins["CMD"].startswith('["livedub"')
    assert "livedub --help" in path.read_text()
    assert "EXPOSE" in ins and ins["EXPOSE"] == "9464"
    device = "cuda" if path.name.endswith("cuda") else "cpu"
    assert f"LIVEDUB_DEVICE={device}" in path.read_text()


def test_cuda_image_uses_onnxruntime_gpu() -> None:
    text = (DOCKER / "Dockerfile.cuda").read_text()
    assert "pip uninstall -y onnxruntime" in text
    assert re.search(r"--no-deps \"onnxruntime-gpu==\$\{ONNXRUNTIME_GPU_VERSION\}\"", text)
    assert 'pip install ".[models]"' in text  # the model layer (torch, transformers, Optimum) on GPU pools
    assert re.fullmatch(r"\d+\.\d+\.\d+", args(DOCKER / "Dockerfile.cuda")["ONNXRUNTIME_GPU_VERSION"])
    assert "CUDAExecutionProvider" in text


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_build_context_is_filtered(path: Path) -> None:
    ignore = path.with_name(path.name + ".dockerignore").read_text().splitlines()
    assert ignore[1] == "**", "allowlist: exclude everything, then add back the sources"
    assert "!pyproject.toml" in ignore


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_images_install_the_apertium_pairs_install_sh_installs(path: Path) -> None:
    """One list of language pairs (workers/translate/apertium.py): the images and install.sh agree on it."""
    from workers.translate.apertium import PAIR_PACKAGES

    script = (ROOT / "scripts" / "install.sh").read_text()
    apt = re.search(r"^APT_PACKAGES=\(([^)]*)\)", script, re.M)
    assert apt, "install.sh has no APT_PACKAGES=(...)"
    for where, packages in (("scripts/install.sh", apt.group(1).split()),
                            (path.name, args(path)["RUNTIME_PACKAGES"].split())):
        assert "apertium" in packages, where
        pairs = [p for p in packages if p.startswith("apertium-")]
        assert sorted(pairs) == sorted(PAIR_PACKAGES), where
