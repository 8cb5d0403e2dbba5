"""Records exchanged between stages; each mirrors a schema in `schemas/*.avsc`.

Clocks: `*_s` fields are media seconds on the session's audio clock (audio is
the master clock); `*_at` fields are wall-clock Unix seconds, used for latency
metrics. Audio is little-endian signed 16-bit mono PCM. `seq` is a per-session
sequence number of the record's own kind; a speech segment's `seq` is carried
by everything derived from it, so outputs can be ordered and joined by it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


def now() -> float:
    """Wall clock used for every `*_at` field."""
    return time.time()


@dataclass(frozen=True, slots=True)
class Record:
    """Base of every record: which schema it travels as."""

    schema_name: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        kwargs = {}
        for f in dataclasses.fields(cls):
            v = d[f.name]
            if f.name in NESTED and isinstance(v, dict):
                v = NESTED[f.name](**{k: tuple(x) if isinstance(x, list) else x for k, x in v.items()})
            kwargs[f.name] = tuple(v) if isinstance(v, list) else v
        return cls(**kwargs)

    def replace(self, **changes: Any) -> Record:
        return dataclasses.replace(self, **changes)


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    return v


@dataclass(frozen=True, slots=True)
class VoiceProfile:
    """How a speaker sounds (schemas: the VoiceProfile record inside segments, transcripts and
    translations): their speaker embedding, pitch and formants, for a dub in a voice like theirs."""

    embedding: tuple[float, ...]
    f0_median: float
    f0_low: float
    f0_high: float
    formant_1: float
    formant_2: float
    spectrum: tuple[float, ...] = ()  # mean log power in mel bands (workers/voice/spectrum.py)


NESTED: dict[str, type] = {"voice": VoiceProfile}  # fields holding a nested record


@dataclass(frozen=True, slots=True)
class SessionControl(Record):
    """Starts or stops a session and says which languages it wants."""

    schema_name: ClassVar[str] = "SessionControl"
    session_id: str
    action: str  # "start" | "stop"
    target_langs: tuple[str, ...]
    source_lang: str | None = None
    at: float = field(default_factory=now)


@dataclass(frozen=True, slots=True)
class AudioChunk(Record):
    """A slice of the source audio, as captured (any rate; the segmenter resamples)."""

    schema_name: ClassVar[str] = "AudioChunk"
    session_id: str
    seq: int
    pts_s: float
    sample_rate: int
    pcm: bytes
    captured_at: float = field(default_factory=now)
    produced_at: float = field(default_factory=now)

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / 2 / self.sample_rate

    def samples(self) -> np.ndarray:
        return pcm_to_float(self.pcm)


@dataclass(frozen=True, slots=True)
class VideoFrame(Record):
    """One source video frame; `encoding` is "bgr24" in process, "jpeg" on the wire."""

    schema_name: ClassVar[str] = "VideoFrame"
    session_id: str
    seq: int
    pts_s: float
    width: int
    height: int
    encoding: str
    data: bytes
    produced_at: float = field(default_factory=now)


@dataclass(frozen=True, slots=True)
class SpeechSegment(Record):
    """A stretch of speech between natural pauses, cut by the segmenter."""

    schema_name: ClassVar[str] = "SpeechSegment"
    session_id: str
    seq: int
    start_s: float
    end_s: float
    sample_rate: int
    pcm: bytes
    cut_reason: str  # "pause" | "max_length" | "end_of_stream"
    target_langs: tuple[str, ...]
    source_lang: str | None
    speech_end_at: float
    produced_at: float = field(default_factory=now)
    speaker: str = ""  # who speaks, a label per session ("S1"); empty: not known
    voice: VoiceProfile | None = None  # how they sound (the dub's voice is matched to it)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def samples(self) -> np.ndarray:
        return pcm_to_float(self.pcm)


@dataclass(frozen=True, slots=True)
class Transcript(Record):
    """What was said in one segment, in the language it was said in."""

    schema_name: ClassVar[str] = "Transcript"
    session_id: str
    seq: int
    start_s: float
    end_s: float
    text: str
    language: str
    confidence: float
    target_langs: tuple[str, ...]
    speech_end_at: float
    produced_at: float = field(default_factory=now)
    speaker: str = ""  # who speaks, a label per session ("S1"); empty: not known
    voice: VoiceProfile | None = None  # how they sound (the dub's voice is matched to it)


@dataclass(frozen=True, slots=True)
class Translation(Record):
    """One segment's text in one target language."""

    schema_name: ClassVar[str] = "Translation"
    session_id: str
    seq: int
    start_s: float
    end_s: float
    text: str
    source_lang: str
    target_lang: str
    speech_end_at: float
    produced_at: float = field(default_factory=now)
    speaker: str = ""  # who speaks, a label per session ("S1"); empty: not known
    voice: VoiceProfile | None = None  # how they sound (the dub's voice is matched to it)


@dataclass(frozen=True, slots=True)
class DubbedSpeech(Record):
    """Synthesized speech fitted to the segment's [start_s, end_s) span.

    `mouth` is mouth openness in [0, 1] sampled at `mouth_rate` Hz from start_s,
    so lip sync needs no second pass over the audio.
    """

    schema_name: ClassVar[str] = "DubbedSpeech"
    session_id: str
    seq: int
    start_s: float
    end_s: float
    target_lang: str
    text: str
    sample_rate: int
    pcm: bytes
    mouth_rate: float
    mouth: tuple[float, ...]
    speech_end_at: float
    produced_at: float = field(default_factory=now)
    mouth_round: tuple[float, ...] = ()  # lip rounding -1 (spread) .. 1 (round), like `mouth`
    speaker: str = ""

    def samples(self) -> np.ndarray:
        return pcm_to_float(self.pcm)


@dataclass(frozen=True, slots=True)
class DubbedFrame(Record):
    """One output video frame of a segment, mouth re-animated for `target_lang`."""

    schema_name: ClassVar[str] = "DubbedFrame"
    session_id: str
    seq: int
    frame_seq: int
    pts_s: float
    target_lang: str
    width: int
    height: int
    encoding: str
    data: bytes
    last_in_segment: bool
    speech_end_at: float
    produced_at: float = field(default_factory=now)


RECORD_TYPES: dict[str, type[Record]] = {
    cls.schema_name: cls
    for cls in (
        SessionControl,
        AudioChunk,
        VideoFrame,
        SpeechSegment,
        Transcript,
        Translation,
        DubbedSpeech,
        DubbedFrame,
    )
}


def pcm_to_float(pcm: bytes) -> np.ndarray:
    """int16 little-endian PCM -> float32 in [-1, 1]."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm(x: np.ndarray) -> bytes:
    """float samples in [-1, 1] -> int16 little-endian PCM (clipped)."""
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
