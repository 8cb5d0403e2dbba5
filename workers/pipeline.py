"""The five stages built and loaded together, plus the ends they read from and write to.

A `FrameSource` hands the lip-sync step the source frames of each dubbed
segment (in process: a second reader over the input file, so no frame is held
longer than needed; over Kafka: a per-session buffer of the video topic). A
`Sink` receives each target language's outputs in order (and, for subtitles, each
segment's source transcript, ahead of its speech).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field

from monitoring.metrics import Metrics
from workers.errors import ConfigError
from workers.records import DubbedFrame, DubbedSpeech, SessionControl, Transcript, VideoFrame
from workers.registry import create_stage
from workers.settings import Settings
from workers.stage import Stage
from workers.topology import DEFAULT, Topology


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
        """Dubbed audio over [start_s, end_s) (the source ducked under it); `text` is the translation."""

    def transcript(self, transcript: Transcript) -> None:
        """What was said in a segment, in the source language (ASR's output), before its speech
        arrives; a sink that writes subtitles keeps it, others ignore it."""

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
    topology: Topology = DEFAULT
    loaded: bool = field(default=False, init=False)

    @classmethod
    def build(
        cls, settings: Settings, metrics: Metrics | None = None, names: tuple[str, ...] | None = None,
        topology: Topology = DEFAULT,
    ) -> Pipeline:
        names = topology.names if names is None else names
        return cls({n: create_stage(n, settings, metrics, topology=topology) for n in names}, metrics, topology)

    def __getitem__(self, name: str) -> Stage:
        return self.stages[name]

    def has(self, name: str) -> bool:
        return name in self.stages

    def chain(self) -> list[Stage]:
        """The record-mapping stages present, in topology order (segment first)."""
        return [self.stages[n] for n in self.topology.chain if n in self.stages]

    def frame_stage(self) -> Stage | None:
        name = self.topology.frame_stage
        return self.stages.get(name) if name else None

    def load(self) -> None:
        if not self.loaded:
            for stage in self.stages.values():
                stage.load()
            self.loaded = True

    def close(self) -> None:
        for stage in self.stages.values():
            stage.close()

    def check_session(self, control: SessionControl) -> None:
        """Fail before any work when a session asks for what a stage cannot serve."""
        if not control.target_langs:
            raise ConfigError("a session needs at least one target language")
        for stage in self.stages.values():
            stage.check_session(control)

    def open_session(self, control: SessionControl) -> None:
        for stage in self.stages.values():
            stage.open_session(control)

    def end_session(self, session_id: str) -> None:
        for stage in self.stages.values():
            stage.end_session(session_id)
