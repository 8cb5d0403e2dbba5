"""ASR stage: speech segment -> transcript."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import numpy as np

from workers.errors import UnsupportedLanguageError
from workers.records import SessionControl, SpeechSegment, Transcript, now
from workers.stage import Backend, Stage, warm_up_noise


@dataclass(frozen=True)
class AsrResult:
    text: str
    language: str  # the spoken language (what the session keeps once detected surely)
    confidence: float
    language_probability: float = 1.0  # how sure a detected language is (1.0 when given)
    text_language: str | None = None  # the text's language when it is not the spoken one (Whisper translate)


STICKY_LANGUAGE_P = 0.8  # once detected this surely, a session's language is kept (saves a pass per segment)


class AsrBackend(Backend):
    """A speech recogniser: 16 kHz float32 mono in, text out."""

    @abstractmethod
    def transcribe(self, audio: np.ndarray, language: str | None) -> AsrResult:
        """`language` None means detect it."""


class AsrStage(Stage[SpeechSegment, Transcript]):
    """Speech segment -> transcript. A speaker's language does not change from segment to segment,
    so the first confident detection is reused for the rest of the session."""

    name = "asr"
    backend: AsrBackend

    def __init__(self, backend: AsrBackend, metrics=None) -> None:
        super().__init__(backend, metrics)
        self._languages: dict[str, str] = {}

    def warm_up(self) -> None:
        self.backend.transcribe(warm_up_noise(), None)  # the detecting path: both of Whisper's passes

    def check_session(self, control: SessionControl) -> None:
        caps = self.backend.capabilities
        if control.source_lang and not caps.supports(control.source_lang):
            raise UnsupportedLanguageError(
                f"{self.backend.name} does not recognise {control.source_lang!r}; "
                f"it hears {', '.join(sorted(caps.languages or ()))}")

    def _handle(self, seg: SpeechSegment) -> list[Transcript]:
        language = seg.source_lang or self._languages.get(seg.session_id)
        res = self.backend.transcribe(seg.samples(), language)
        if language is None and res.language_probability >= STICKY_LANGUAGE_P:
            self._languages[seg.session_id] = res.language
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
                language=res.text_language or res.language,
                confidence=res.confidence,
                target_langs=seg.target_langs,
                speech_end_at=seg.speech_end_at,
                produced_at=now(),
                speaker=seg.speaker,
                voice=seg.voice,
            )
        ]

    def end_session(self, session_id: str) -> None:
        self._languages.pop(session_id, None)
