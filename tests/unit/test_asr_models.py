"""Model resolution and the join-once cache of the packaged Whisper base."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from workers.asr.faster_whisper import compute_type_for
from workers.asr.models import (
    base_unavailable,
    cached_artifact,
    concatenate,
    join_base,
    model_unavailable,
    resolve,
    sha256_file,
    sidecar_path,
)
from workers.errors import ConfigError, ModelLoadError


class CountingBuild:
    """A build step that joins sources and counts how often it ran."""

    def __init__(self, sources: list[Path]) -> None:
        self.sources, self.runs = sources, 0

    def __call__(self, tmp: Path) -> None:
        self.runs += 1
        concatenate(self.sources)(tmp)


@pytest.fixture
def parts(tmp_path):
    a, b = tmp_path / "a.part1", tmp_path / "b.part2"
    a.write_bytes(b"x" * 1000)
    b.write_bytes(b"y" * 500)
    return [a, b]


def flip_byte(path: Path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_built_once_then_reused(tmp_path, parts):
    dest = tmp_path / "out" / "model.bin"
    build = CountingBuild(parts)
    assert cached_artifact(dest, parts, build, expect_size=1500) == dest
    assert dest.read_bytes() == b"x" * 1000 + b"y" * 500
    assert json.loads(sidecar_path(dest).read_text())["sha256"] == sha256_file(dest)
    cached_artifact(dest, parts, build, expect_size=1500)
    assert build.runs == 1


def test_corrupted_file_is_rebuilt(tmp_path, parts):
    dest = tmp_path / "model.bin"
    build = CountingBuild(parts)
    cached_artifact(dest, parts, build)
    flip_byte(dest, 700)  # same size, different content
    cached_artifact(dest, parts, build)
    assert build.runs == 2
    assert dest.read_bytes() == b"x" * 1000 + b"y" * 500


def test_changed_source_or_missing_sidecar_rebuilds(tmp_path, parts):
    dest = tmp_path / "model.bin"
    build = CountingBuild(parts)
    cached_artifact(dest, parts, build)
    parts[1].write_bytes(b"z" * 600)  # a package upgrade
    cached_artifact(dest, parts, build)
    assert build.runs == 2 and dest.stat().st_size == 1600
    sidecar_path(dest).unlink()  # e.g. a crash between the rename and the sidecar
    cached_artifact(dest, parts, build)
    assert build.runs == 3


def test_failed_check_leaves_no_file_behind(tmp_path, parts):
    dest = tmp_path / "model.bin"
    with pytest.raises(ModelLoadError, match="1500 bytes, expected 9999"):
        cached_artifact(dest, parts, concatenate(parts), expect_size=9999)
    with pytest.raises(ModelLoadError, match="expected 00ff"):
        cached_artifact(dest, parts, concatenate(parts), expect_sha256="00ff")
    assert sorted(tmp_path.iterdir()) == sorted(parts)


def test_crash_during_build_keeps_the_previous_good_file(tmp_path, parts):
    dest = tmp_path / "model.bin"
    cached_artifact(dest, parts, concatenate(parts))
    parts[0].write_bytes(b"q" * 10)

    def crash(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(ModelLoadError, match="disk full"):
        cached_artifact(dest, parts, crash)
    assert dest.read_bytes() == b"x" * 1000 + b"y" * 500
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_packaged_base_is_joined_once_and_rejoined_when_corrupt(tmp_path):
    assert base_unavailable() is None and model_unavailable("base") is None
    model_dir = join_base(tmp_path)
    model = model_dir / "model.bin"
    assert model_dir == tmp_path / "models" / "whisper-base" / "ct2"
    assert {"config.json", "tokenizer.json", "vocabulary.json"} <= {p.name for p in model_dir.iterdir()}
    meta = json.loads(sidecar_path(model).read_text())
    assert model.stat().st_size == meta["size"] == sum(meta["sources"].values())
    first = model.stat()
    resolved = resolve("base", tmp_path)
    assert resolved.source == str(model_dir) and resolved.local and not resolved.english_only
    second = model.stat()
    assert (second.st_ino, second.st_mtime_ns) == (first.st_ino, first.st_mtime_ns), "must not rewrite"
    flip_byte(model, 12345)
    join_base(tmp_path)
    assert model.stat().st_ino != first.st_ino
    assert sha256_file(model) == meta["sha256"]


def test_resolve_other_models(tmp_path):
    if model_unavailable("tiny.en") is None:
        tiny = resolve("tiny.en", tmp_path)
        assert tiny.local and tiny.english_only and (Path(tiny.source) / "model.bin").is_file()
    hub = resolve("Systran/faster-whisper-small", tmp_path)
    assert hub.source == "Systran/faster-whisper-small" and not hub.local and not hub.english_only
    assert resolve("distil-medium.en", tmp_path).english_only
    local = tmp_path / "my-model"
    local.mkdir()
    with pytest.raises(ModelLoadError, match="not a CTranslate2 Whisper model directory"):
        resolve(str(local), tmp_path)
    (local / "model.bin").write_bytes(b"")
    assert resolve(str(local), tmp_path).source == str(local)
    with pytest.raises(ModelLoadError, match="no such model directory"):
        resolve(os.fspath(tmp_path / "missing"), tmp_path)
    with pytest.raises(ConfigError):
        resolve(" ", tmp_path)


def test_compute_type():
    assert compute_type_for("cuda", "auto") == "float16"
    assert compute_type_for("cpu", "auto") == "int8"
    assert compute_type_for("cuda", "int8") == "int8"
