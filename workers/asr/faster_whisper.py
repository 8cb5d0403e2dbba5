"""Whisper ASR through faster-whisper (CTranslate2): int8 on CPU, float16 on CUDA.

Segments arrive already cut at pauses (<= max_segment_s, well under Whisper's
30 s window), so Whisper's own VAD and cross-window conditioning are off: each
segment is decoded on its own, which also stops one hallucination from seeding
the next.

Confidence is the geometric-mean token probability of the decoded text
(exp of the token-weighted mean `avg_logprob` over Whisper's segments), times
the language probability when the language was detected rather than given: the
chance that both the words and the language are right. The detected language's
own probability is returned apart in `WhisperResult.language_probability`.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from workers.asr.models import ResolvedModel, english_only_name, model_unavailable, resolve
from workers.asr.stage import AsrBackend, AsrResult
from workers.errors import BadInputError, ConfigError, ModelLoadError, UnsupportedLanguageError
from workers.settings import Settings, load_settings
from workers.stage import Capabilities

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
ENGLISH_ONLY = Capabilities(
    languages=frozenset({"en"}), sample_rate=SAMPLE_RATE, batchable=False, devices=("cpu", "cuda")
)


@dataclass(frozen=True)
class WhisperResult(AsrResult):
    """AsrResult plus what Whisper knows about the language decision."""

    language_detected: bool = False


def compute_type_for(device: str, compute_type: str) -> str:
    """'auto' means float16 on a GPU and int8 on a CPU; anything else is passed through."""
    if compute_type == "auto":
        return "float16" if device == "cuda" else "int8"
    return compute_type


def token_confidence(segments: list) -> float:  # faster_whisper.transcribe.Segment
    """exp(token-weighted mean log-probability): the geometric-mean probability of a token."""
    n = sum(max(len(s.tokens), 1) for s in segments)
    if n == 0:
        return 0.0
    mean = sum(s.avg_logprob * max(len(s.tokens), 1) for s in segments) / n
    return float(min(1.0, math.exp(mean)))


class FasterWhisper(AsrBackend):
    name: ClassVar[str] = "faster-whisper"
    # Whisper is multilingual; an English-only model narrows this per instance (see __init__).
    capabilities: ClassVar[Capabilities] = Capabilities(
        languages=None, sample_rate=SAMPLE_RATE, batchable=False, devices=("cpu", "cuda")
    )

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.model = None
        self.resolved: ResolvedModel | None = None
        self.english_only = english_only_name(settings.asr.model)  # confirmed from the model at load
        if self.english_only:
            self.capabilities = ENGLISH_ONLY  # instance override of the class default

    @classmethod
    def unavailable(cls) -> str | None:
        if importlib.util.find_spec("faster_whisper") is None:
            return "faster-whisper is not installed (pip install faster-whisper)"
        try:
            model = load_settings().asr.model
        except ConfigError as e:
            return str(e)
        return model_unavailable(model)

    def _load(self) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise ModelLoadError(f"faster-whisper cannot be imported: {e}") from e
        s = self.settings
        resolved = resolve(s.asr.model, s.cache_dir)
        compute_type = compute_type_for(s.device, s.asr.compute_type)
        try:
            model = WhisperModel(
                resolved.source,
                device=s.device,
                compute_type=compute_type,
                cpu_threads=s.asr.cpu_threads or min(4, os.cpu_count() or 1),
            )
        except Exception as e:  # ctranslate2 RuntimeError / ValueError, hub download errors, ...
            where = "model directory" if resolved.local else "hub model (needs network on first use)"
            raise ModelLoadError(
                f"cannot load Whisper {where} {resolved.source!r} on {s.device} ({compute_type}): {e}"
            ) from e
        self.resolved, self.model = resolved, model
        if not model.model.is_multilingual and not self.english_only:
            self.english_only = True
            self.capabilities = ENGLISH_ONLY
        log.info(
            "whisper %s loaded from %s (%s, %s%s)",
            s.asr.model, resolved.source, s.device, compute_type, ", English only" if self.english_only else "",
        )

    def supported_languages(self) -> frozenset[str]:
        self.load()
        return frozenset(self.model.supported_languages)

    def transcribe(self, audio: np.ndarray, language: str | None) -> WhisperResult:
        self.load()
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.ndim != 1 or audio.size == 0:
            raise BadInputError(f"asr: expected non-empty mono 16 kHz audio, got shape {audio.shape}")
        if language is not None:
            self._check_language(language)
        segments, info = self.model.transcribe(
            audio,
            language=language,
            task="transcribe",
            beam_size=self.settings.asr.beam_size,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        segments = list(segments)  # the generator does the decoding
        text = " ".join(s.text.strip() for s in segments if s.text.strip())
        detected = language is None
        lang_p = float(info.language_probability) if detected else 1.0
        return WhisperResult(
            text=text,
            language=info.language,
            confidence=token_confidence(segments) * lang_p if text else 0.0,
            language_probability=lang_p,
            language_detected=detected,
        )

    def _check_language(self, language: str) -> None:
        if self.english_only and language != "en":
            raise UnsupportedLanguageError(
                f"asr model {self.settings.asr.model!r} is English-only and cannot transcribe {language!r}; "
                "use a multilingual model (asr.model=base)"
            )
        supported = self.model.supported_languages
        if language not in supported:
            raise UnsupportedLanguageError(
                f"whisper cannot transcribe {language!r}; languages: {', '.join(sorted(supported))}"
            )

    def close(self) -> None:
        self.model = None
        self.loaded = False
