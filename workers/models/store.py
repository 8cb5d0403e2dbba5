"""The local model store: every model artifact LiveDub builds or pulls, under `<cache_dir>/models`.

An artifact is a directory `<cache_dir>/models/<name>/<variant>` (e.g. `whisper-base/onnx-int8`)
with a manifest, `livedub-model.json`: what it is (format, precision, where it came from), the
files and their sizes, and figures measured when it was made (parity). It is built into a
temporary directory and renamed into place with its manifest written last, so a crash never
leaves a half-built model that looks complete, and two builders racing both end with one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from workers.errors import ModelLoadError

log = logging.getLogger(__name__)
MANIFEST = "livedub-model.json"


@dataclass
class Manifest:
    name: str  # e.g. "whisper-base"
    variant: str  # e.g. "onnx-int8"
    format: str  # "transformers", "onnx", "ct2", "torch"
    precision: str  # "fp32", "fp16", "int8"
    source: str  # what it was made from (a path, package, hub id or another artifact)
    files: dict[str, int] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)  # parity figures, recipe, provider hints

    @property
    def size_bytes(self) -> int:
        return sum(self.files.values())


@dataclass(frozen=True)
class Artifact:
    path: Path
    manifest: Manifest

    @property
    def key(self) -> str:
        return f"{self.manifest.name}/{self.manifest.variant}"


class ModelStore:
    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / "models"

    def path(self, name: str, variant: str) -> Path:
        return self.root / name / variant

    def get(self, name: str, variant: str) -> Artifact | None:
        """The artifact if it is complete (its manifest is there and every file has its size)."""
        d = self.path(name, variant)
        try:
            m = Manifest(**json.loads((d / MANIFEST).read_text()))
        except (OSError, ValueError, TypeError):
            return None
        for rel, size in m.files.items():
            f = d / rel
            if not f.is_file() or f.stat().st_size != size:
                log.warning("model %s/%s: %s is missing or changed size: rebuilding", name, variant, rel)
                return None
        return Artifact(d, m)

    def ensure(self, name: str, variant: str, build: Callable[[Path], Manifest]) -> Artifact:
        """The artifact, built by `build(tmp_dir) -> Manifest` first if it is not complete here."""
        found = self.get(name, variant)
        if found is not None:
            return found
        dest = self.path(name, variant)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{variant}.", dir=dest.parent))
        try:
            manifest = build(tmp)
            manifest.files = {str(p.relative_to(tmp)): p.stat().st_size
                              for p in sorted(tmp.rglob("*")) if p.is_file() and p.name != MANIFEST}
            (tmp / MANIFEST).write_text(json.dumps(asdict(manifest), indent=1) + "\n")
            os.chmod(tmp, 0o755)
            if dest.exists():  # an incomplete earlier build, or one that lost a race just now
                if self.get(name, variant) is not None:
                    return self.get(name, variant)  # type: ignore[return-value]
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        except OSError as e:
            raise ModelLoadError(f"cannot write model {name}/{variant} under {self.root}: {e}") from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        art = self.get(name, variant)
        if art is None:
            raise ModelLoadError(f"model {name}/{variant} was built but does not verify")
        return art

    def all(self) -> list[Artifact]:
        out = []
        if not self.root.is_dir():
            return out
        for manifest in sorted(self.root.glob(f"*/*/{MANIFEST}")):
            art = self.get(manifest.parent.parent.name, manifest.parent.name)
            if art is not None:
                out.append(art)
        return out

    def remove(self, name: str, variant: str) -> None:
        shutil.rmtree(self.path(name, variant), ignore_errors=True)
