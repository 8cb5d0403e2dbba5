"""ASR stage: speech segment -> transcript."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import numpy as np

from workers.records import SpeechSegment, Transcript, now
from workers.stage import Backend, Stage


@dataclass(frozen=True)
class AsrResult:
    text: str
    language: str
    confidence: float


class AsrBackend(Backend):
    """A speech recogniser: 16 kHz float32 mono in, text out."""

    @abstractmethod
    def transcribe(self, audio: np.ndarray, language: str | None) -> AsrResult:
        """`language` None means detect it."""


class AsrStage(Stage[SpeechSegment, Transcript]):
    name = "asr"
    backend: AsrBackend

    def _handle(self, seg: SpeechSegment) -> list[Transcript]:
        res = self.backend.transcribe(seg.samples(), seg.source_lang)
        text = res.text.strip()
        if not text:  # noise or breath: nothing to dub, the original stays
            return []
        return [
            Transcript(
                session_id=seg.session_id,
                seq=seg.seq,
                start_s=seg.start_s,
                end_s=seg.end_s,
                text=text,
                language=res.language,
                confidence=res.confidence,
                target_langs=seg.target_langs,
                speech_end_at=seg.speech_end_at,
                produced_at=now(),
            )
        ]
