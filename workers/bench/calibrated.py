"""Calibrated stages: fixed service times that release the CPU.

They measure the runners' own efficiency apart from model cost and 2-core CPU
contention. Each subclasses the real stage class of its slot, so the runner
drives them exactly as it drives the real ones.
"""

from __future__ import annotations

import time

import numpy as np

from monitoring.metrics import Metrics
from workers.asr.stage import AsrBackend, AsrResult, AsrStage
from workers.lipsync.stage import LipsyncBackend, LipsyncStage
from workers.pipeline import FrameSource, Pipeline, Sink
from workers.records import AudioChunk, DubbedFrame, DubbedSpeech, SessionControl, SpeechSegment, VideoFrame, now
from workers.segment.stage import SegmentStage, VadBackend
from workers.settings import Settings
from workers.stage import Stage
from workers.translate.stage import MtBackend, TranslateStage
from workers.tts.stage import Synth, TtsBackend, TtsStage

DEFAULT_SERVICE_S = {"segment": 0.05, "asr": 0.40, "translate": 0.20, "tts": 0.35, "lipsync": 0.40}
LANGS = frozenset({"en", "es", "fr", "de"})


class _Sleeper:
    name = "calibrated"

    def __init__(self, settings: Settings, service_s: float) -> None:
        super().__init__(settings)  # type: ignore[call-arg]
        self.service_s = service_s

    def _load(self) -> None:
        pass

    def _sleep(self) -> None:
        time.sleep(self.service_s)


class CalibratedVad(_Sleeper, VadBackend):
    def new_state(self) -> None:
        return None

    def speech_prob(self, frame: np.ndarray, state: None) -> float:
        return 1.0


class CalibratedSegmentStage(SegmentStage):
    """One chunk in, one segment out: the bench feeds one chunk per segment."""

    def load(self) -> None:  # no speaker encoder: fixed service times only
        self.backend.load()

    def open_session(self, control: SessionControl) -> None:
        self._sessions[control.session_id] = control  # type: ignore[assignment]

    def _handle(self, chunk: AudioChunk) -> list[SpeechSegment]:
        self.backend._sleep()
        c = self._sessions[chunk.session_id]
        end = round(chunk.pts_s + chunk.duration_s, 6)  # no float drift in segment ends
        return [SpeechSegment(chunk.session_id, chunk.seq, chunk.pts_s, end, 16000,
                              chunk.pcm, "pause", c.target_langs, c.source_lang, chunk.captured_at, now())]

    def _flush(self, session_id: str) -> list[SpeechSegment]:
        return []


class CalibratedAsr(_Sleeper, AsrBackend):
    def transcribe(self, audio: np.ndarray, language: str | None) -> AsrResult:
        self._sleep()
        return AsrResult("calibrated speech", language or "en", 1.0)


class CalibratedMt(_Sleeper, MtBackend):
    def pairs(self) -> frozenset[tuple[str, str]]:
        return frozenset((s, t) for s in LANGS for t in LANGS if s != t)

    def translate(self, text: str, source: str, target: str) -> str:
        self._sleep()
        return text


class CalibratedTts(_Sleeper, TtsBackend):
    def voices(self) -> frozenset[str]:
        return LANGS

    def synthesize(self, text: str, lang: str, speed: float = 1.0, variant: str = "") -> Synth:
        self._sleep()
        return Synth(np.zeros(1600, np.float32), 16000)


class CalibratedTtsStage(TtsStage):
    """Skips the real stage's fitting so the service time is exactly the configured one."""

    def _handle(self, tr):
        self.backend.synthesize(tr.text, tr.target_lang)
        n = round((tr.end_s - tr.start_s) * 16000)
        return [DubbedSpeech(tr.session_id, tr.seq, tr.start_s, tr.end_s, tr.target_lang, tr.text, 16000,
                             bytes(2 * n), 50.0, (), tr.speech_end_at, now())]


class CalibratedLipsync(_Sleeper, LipsyncBackend):
    def new_track(self) -> None:
        return None

    def animate(self, frames, openness, track, audio, sample_rate, rounding=None):
        self._sleep()
        return frames


def calibrated_pipeline(
    settings: Settings,
    service_s: dict[str, float] | None = None,
    metrics: Metrics | None = None,
    replace: dict[str, Stage] | None = None,
) -> Pipeline:
    """The five calibrated stages; `replace` swaps in other stages (tests use scripted fakes)."""
    t = {**DEFAULT_SERVICE_S, **(service_s or {})}
    stages: dict[str, Stage] = {
        "segment": CalibratedSegmentStage(CalibratedVad(settings, t["segment"]), metrics),
        "asr": AsrStage(CalibratedAsr(settings, t["asr"]), metrics),
        "translate": TranslateStage(CalibratedMt(settings, t["translate"]), metrics),
        "tts": CalibratedTtsStage(CalibratedTts(settings, t["tts"]), metrics),
        "lipsync": LipsyncStage(CalibratedLipsync(settings, t["lipsync"]), metrics),
    }
    return Pipeline({**stages, **(replace or {})}, metrics)


class SyntheticFrames(FrameSource):
    """Tiny frames at a fixed rate: lets the lip-sync slot run without a video file."""

    def __init__(self, session_id: str, fps: float = 25.0, size: int = 8) -> None:
        self.session_id, self.fps, self.size = session_id, fps, size
        self._next = 0
        self._blank = bytes(size * size * 3)

    def until(self, t_s: float):
        while self._next / self.fps < t_s and t_s != float("inf"):
            yield VideoFrame(self.session_id, self._next, self._next / self.fps, self.size, self.size,
                             "bgr24", self._blank)
            self._next += 1


class NullSink(Sink):
    """Discards output: the benchmark times the stages, not the encoder."""

    def __init__(self) -> None:
        self.frames_seen = 0
        self.speeches: list[DubbedSpeech] = []

    def speech(self, speech: DubbedSpeech) -> None:
        self.speeches.append(speech)

    def frames(self, frames: list[VideoFrame | DubbedFrame]) -> None:
        self.frames_seen += len(frames)

    def close(self) -> None:
        pass
