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
from workers.asr.stage import AsrResult
from workers.asr.whisper_common import ENGLISH_ONLY, SAMPLE_RATE, WhisperBackend
from workers.errors import ConfigError, ModelLoadError
from workers.settings import Settings, load_settings
from workers.stage import Capabilities

log = logging.getLogger(__name__)



WHISPER_WINDOW_S = 30.0  # the encoder window Whisper was trained on
WINDOW_MARGIN_S = 1.0  # a short window holds the segment plus at least this much silence
MAX_TOKENS_PER_S = 12  # fast speech is ~4-5 tokens/s; more means the decoder is looping
COMPRESSION_RATIO_MAX = 2.4  # Whisper's own threshold for repetitive (looping) text


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


class FasterWhisper(WhisperBackend):
    name: ClassVar[str] = "faster-whisper"
    # Whisper is multilingual; an English-only model narrows this per instance (see __init__).
    capabilities: ClassVar[Capabilities] = Capabilities(
        languages=None, sample_rate=SAMPLE_RATE, devices=("cpu", "cuda")
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

    def transcribe(self, audio: np.ndarray, language: str | None) -> WhisperResult:
        self.load()
        audio = self.checked(audio, language)
        window = self.settings.asr.window_s
        if window < WHISPER_WINDOW_S and len(audio) <= (window - WINDOW_MARGIN_S) * SAMPLE_RATE:
            short = self._short_window(audio, language, window)
            if short is not None:
                return short
        segments, info = self.model.transcribe(
            audio,
            language=language,
            task=self.settings.asr.task,
            beam_size=self.settings.asr.beam_size,
            temperature=list(self.settings.asr.temperatures),
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
            text_language="en" if self.settings.asr.task == "translate" else None,
            language_detected=detected,
        )

    def _short_window(self, audio: np.ndarray, language: str | None, window_s: float) -> WhisperResult | None:
        """Decode `audio` in an encoder window of `window_s` instead of Whisper's 30 s: the encoder costs
        what its window holds, not what was said, so a 2 s segment pays for 30 s (about 4/5 of Whisper's
        time on CPU). The model was trained on 30 s windows and can loop on shorter ones, so a result
        that has more tokens than speech can hold or repeats itself (Whisper's own compression-ratio
        test) is None: the full window decodes it instead. Decoded at the first temperature, as the
        full path starts."""
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

        m, asr = self.model, self.settings.asr
        frames = round(window_s * 100)  # 100 mel frames per second
        feats = m.feature_extractor(audio)[:, :frames]
        window = np.zeros((feats.shape[0], frames), np.float32)
        window[:, :feats.shape[1]] = feats
        encoded = m.model.encode(ctranslate2.StorageView.from_array(window[None]), to_cpu=False)
        lang_p, detected = 1.0, language is None
        if language is None and m.model.is_multilingual:
            token, lang_p = m.model.detect_language(encoded)[0][0]
            language = token[2:-2]
        tok = Tokenizer(m.hf_tokenizer, m.model.is_multilingual, task=asr.task, language=language or "en")
        prompt = [*tok.sot_sequence, tok.no_timestamps]
        cap = round(MAX_TOKENS_PER_S * len(audio) / SAMPLE_RATE) + 8
        temp = asr.temperatures[0]
        sampling = {"sampling_topk": 0, "sampling_temperature": temp} if temp > 0 else {}
        res = m.model.generate(encoded, [prompt], beam_size=asr.beam_size if temp == 0 else 1,
                               max_length=len(prompt) + 2 * cap + 16, return_scores=True, suppress_blank=True,
                               suppress_tokens=list(get_suppressed_tokens(tok, (-1,))), **sampling)[0]
        ids = [t for t in res.sequences_ids[0] if t < tok.eot]
        text = tok.decode(ids).strip()
        if len(ids) > cap or (text and get_compression_ratio(text) > COMPRESSION_RATIO_MAX):
            log.debug("short window gave %d tokens %.60r: decoding in the full window", len(ids), text)
            return None
        avg = res.scores[0] * len(ids) / (len(ids) + 1)  # as faster-whisper recovers avg_logprob
        return WhisperResult(
            text=text,
            language=language or "en",
            confidence=float(min(1.0, math.exp(avg))) * lang_p if text else 0.0,
            language_probability=float(lang_p),
            text_language="en" if asr.task == "translate" else None,
            language_detected=detected,
        )

    def supported(self) -> frozenset[str]:
        return frozenset(self.model.supported_languages)

    def close(self) -> None:
        self.model = None
        self.loaded = False
