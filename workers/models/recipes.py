"""How each model artifact is made from the one before it (checkpoint -> ONNX fp32 -> int8 / fp16).

Shared by every transformers-based backend (Whisper, Marian, NLLB/M2M-100, MMS-TTS): a backend
names its checkpoint (a packaged model, a local directory or a hub id) and asks for a precision;
what is missing is built once into the model store and reused by every later run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from workers.errors import ConfigError, ModelLoadError
from workers.models.quantize import Int8Recipe
from workers.models.store import Artifact, Manifest, ModelStore

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "int8", "fp16")


def precision_for(requested: str, device: str) -> str:
    """'auto' is int8 on a CPU and fp16 on a GPU (dynamic int8 runs on CPU kernels only)."""
    if requested == "auto":
        return "fp16" if device == "cuda" else "int8"
    if requested not in PRECISIONS:
        raise ConfigError(f"unknown precision {requested!r}; use auto, {', '.join(PRECISIONS)}")
    if requested == "int8" and device == "cuda":
        raise ConfigError("int8 (dynamic quantisation) runs on CPU kernels only; use fp16 on cuda")
    return requested


def store_name(model: str) -> str:
    """A directory name for a model id: 'Helsinki-NLP/opus-mt-en-es' -> 'Helsinki-NLP--opus-mt-en-es'."""
    name = model.strip().rstrip("/").replace("/", "--")
    if not re.fullmatch(r"[\w.\-]+", name):
        raise ConfigError(f"model id {model!r} has characters a model name cannot have")
    return name


def hub_checkpoint(store: ModelStore, repo_id: str) -> Artifact:
    """A hub model pulled earlier (`livedub models pull`), or a clear error saying how to get it."""
    art = store.get(store_name(repo_id), "transformers")
    if art is not None:
        return art
    try:  # already in the huggingface_hub cache (a user who ran transformers before)
        from huggingface_hub import snapshot_download

        path = Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:
        raise ModelLoadError(
            f"model {repo_id!r} is not here: run `livedub models pull {repo_id}` on a machine with hub access "
            f"(or give a local checkpoint directory)") from None
    return adopt(store, repo_id, path)


def adopt(store: ModelStore, model_id: str, path: Path) -> Artifact:
    """Copy a local transformers checkpoint into the store, so later steps have one layout."""
    from workers.models.export import copy_tree, model_type

    mtype = model_type(path)

    def build(tmp: Path) -> Manifest:
        copy_tree(path, tmp)
        return Manifest(store_name(model_id), "transformers", "transformers", "fp32", str(path),
                        extra={"model_type": mtype})

    return store.ensure(store_name(model_id), "transformers", build)


def pull(store: ModelStore, repo_id: str, *, progress: bool = True) -> Artifact:
    """Download a hub checkpoint into the store (huggingface_hub; a clear error when offline)."""
    from workers.models.export import copy_tree, model_type

    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    except ImportError as e:
        raise ModelLoadError("pulling models needs huggingface_hub (pip install 'livedub[models]')") from e
    (enable_progress_bars if progress else disable_progress_bars)()

    def build(tmp: Path) -> Manifest:
        try:
            path = Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.bin", "*.txt",
                                                                   "*.model", "*.spm", "*.yaml", "*.ckpt"]))
        except Exception as e:
            raise ModelLoadError(f"cannot download {repo_id!r} from the Hugging Face hub ({type(e).__name__}: {e}); "
                                 "this machine may be offline: copy the checkpoint here and give its directory") from e
        copy_tree(path, tmp)
        mtype = model_type(tmp) if (tmp / "config.json").is_file() else "unknown"
        return Manifest(store_name(repo_id), "transformers", "transformers", "fp32", f"hub:{repo_id}",
                        extra={"model_type": mtype})

    return store.ensure(store_name(repo_id), "transformers", build)


def onnx_variant(store: ModelStore, name: str, checkpoint: Callable[[], Artifact], precision: str, *,
                 recipe: Int8Recipe, device: str = "cpu") -> Artifact:
    """The ONNX model `name/onnx-<precision>`, built from the checkpoint (fp32, fp16) or fp32 (int8)."""
    from workers.models.export import export_onnx
    from workers.models.quantize import copy_companions, quantize_file

    if precision in ("fp32", "fp16"):
        def export(tmp: Path) -> Manifest:
            ckpt = checkpoint()
            if precision == "fp16" and device != "cuda":
                raise ModelLoadError("an fp16 export needs a CUDA device (LIVEDUB_DEVICE=cuda on a GPU machine)")
            export_onnx(ckpt.path, tmp, device="cuda" if precision == "fp16" else "cpu", dtype=precision)
            return Manifest(name, f"onnx-{precision}", "onnx", precision, ckpt.key,
                            extra={"model_type": ckpt.manifest.extra.get("model_type")})

        return store.ensure(name, f"onnx-{precision}", export)

    fp32 = onnx_variant(store, name, checkpoint, "fp32", recipe=recipe, device="cpu")
    built = store.get(name, "onnx-int8")
    if built is not None and built.manifest.extra.get("recipe") != recipe.as_json():
        log.info("%s/onnx-int8 was made with another recipe: rebuilding", name)
        store.remove(name, "onnx-int8")

    def quantize(tmp: Path) -> Manifest:
        for f in sorted(fp32.path.glob("*.onnx")):
            quantize_file(f, tmp, recipe)
        copy_companions(fp32.path, tmp)
        return Manifest(name, "onnx-int8", "onnx", "int8", fp32.key,
                        extra={"recipe": recipe.as_json(), "model_type": fp32.manifest.extra.get("model_type")})

    return store.ensure(name, "onnx-int8", quantize)
