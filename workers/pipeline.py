"""The five stages built and loaded together, plus the ends they read from and write to.

A `FrameSource` hands the lip-sync step the source frames of each dubbed
segment (in process: a second reader over the input file, so no frame is held
longer than needed; over Kafka: a per-session buffer of the video topic). A
`Sink` receives each target language's outputs in order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

from monitoring.metrics import Metrics
from workers.errors import ConfigError, UnsupportedLanguageError
from workers.records import DubbedFrame, DubbedSpeech, SessionControl, VideoFrame
from workers.registry import STAGE_ORDER, create_stage
from workers.settings import Settings
from workers.stage import Stage


class FrameSource(ABC):
    """Source video frames of one session, in presentation order, read on demand."""

    @abstractmethod
    def until(self, t_s: float) -> Iterator[VideoFrame]:
        """Frames with pts < t_s not yet handed out."""

    def rest(self) -> Iterator[VideoFrame]:
        return self.until(float("inf"))

    def close(self) -> None:
        """Release the reader."""


class Sink(ABC):
    """Where one target language's dubbed output goes; calls arrive in media order."""

    @abstractmethod
    def speech(self, speech: DubbedSpeech) -> None:
        """Dubbed audio replacing the source over [start_s, end_s)."""

    @abstractmethod
    def frames(self, frames: list[VideoFrame | DubbedFrame]) -> None:
        """Output frames (passed through or re-animated), in pts order."""

    @abstractmethod
    def close(self) -> None:
        """Finish the output (flush the rest of the source, mux)."""

    def abort(self) -> None:
        """Drop partial output after a fatal error."""


@dataclass
class Pipeline:
    """Stage objects, loaded once; shared by the sequential and pipelined runners."""

    stages: dict[str, Stage]
    metrics: Metrics | None = None
    loaded: bool = field(default=False, init=False)

    @classmethod
    def build(
        cls, settings: Settings, metrics: Metrics | None = None, names: tuple[str, ...] = STAGE_ORDER
    ) -> Pipeline:
        return cls({n: create_stage(n, settings, metrics) for n in names}, metrics)

    def __getitem__(self, name: str) -> Stage:
        return self.stages[name]

    def has(self, name: str) -> bool:
        return name in self.stages

    def load(self) -> None:
        if not self.loaded:
            for stage in self.stages.values():
                stage.load()
            self.loaded = True

    def close(self) -> None:
        for stage in self.stages.values():
            stage.close()

    def check_session(self, control: SessionControl) -> None:
        """Fail before any work when a session asks for languages we cannot serve."""
        if not control.target_langs:
            raise ConfigError("a session needs at least one target language")
        tts = self.stages.get("tts")
        if tts is not None:
            voices = tts.backend.voices()
            missing = [lang for lang in control.target_langs if lang not in voices]
            if missing:
                raise UnsupportedLanguageError(
                    f"no {tts.backend.name} voice for {', '.join(missing)}; voices: {', '.join(sorted(voices))}"
                )
        mt = self.stages.get("translate")
        if mt is None:
            return
        for target in control.target_langs:
            if control.source_lang:
                mt.backend.check_pair(control.source_lang, target)
            elif not any(t == target for _, t in mt.backend.pairs()):
                pairs = ", ".join(f"{s}->{t}" for s, t in sorted(mt.backend.pairs()))
                raise UnsupportedLanguageError(
                    f"{mt.backend.name} cannot translate into {target!r}; available pairs: {pairs}"
                )
