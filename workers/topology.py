"""The pipeline's topology, declared once.

One table says which stages exist, in which order, which class implements each
stage and its stream step, which hops (Kafka topics, in-process queues) each reads
and writes, and which record type travels on each hop. Everything else is derived
from it: the stage list of the registry and the CLI, the in-process runner's chain
of queues, the Faust agents' wiring, the topic list and the hop -> schema map.

A stage reads the previous stage's output (the first stage reads `main_source`)
plus its `side_inputs`, and writes one hop. Adding a stage is one `StageSpec`
in `DEFAULT` (plus its stage and step classes); the stage after it then reads
the new hop.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from workers.errors import ConfigError


def import_path(path: str) -> Any:
    """The object named by "package.module:attr" (imported lazily, so listing stages stays cheap)."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class StageSpec:
    """One stage of the pipeline."""

    name: str
    stage: str  # "module:Class" of the Stage
    step: str  # "module:Class" of its stream Step (what a Kafka agent drives)
    output: str  # hop it writes
    record: str  # schema name of the records on `output`
    side_inputs: tuple[str, ...] = ()  # hops it reads besides its main input

    def stage_class(self) -> type:
        return import_path(self.stage)

    def step_class(self) -> type:
        return import_path(self.step)


@dataclass(frozen=True, eq=False)
class Topology:
    """Stages in pipeline order and the hops that connect them."""

    stages: tuple[StageSpec, ...]
    sources: dict[str, str]  # hops producers write (meeting media, control) -> schema name
    main_source: str  # hop the first stage reads as its main input
    frames_source: str  # hop of the source video frames (the stage reading it joins frames with speech)
    dlq: tuple[str, str] = ("dlq", "DeadLetter")

    def __post_init__(self) -> None:
        known = dict(self.sources)
        names: set[str] = set()
        for spec in self.stages:
            if spec.name in names:
                raise ConfigError(f"stage {spec.name!r} is declared twice")
            names.add(spec.name)
            missing = [h for h in (self.main_input(spec.name), *spec.side_inputs) if h not in known]
            if missing:
                raise ConfigError(f"stage {spec.name!r} reads {', '.join(missing)}, which nothing writes before it")
            if spec.output in known or spec.output == self.dlq[0]:
                raise ConfigError(f"hop {spec.output!r} has two writers")
            known[spec.output] = spec.record
        if self.main_source not in self.sources or self.frames_source not in self.sources:
            raise ConfigError("main_source and frames_source must be source hops")

    # -- stages ------------------------------------------------------------------------------
    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def spec(self, name: str) -> StageSpec:
        for s in self.stages:
            if s.name == name:
                return s
        raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(self.names)}")

    def main_input(self, name: str) -> str:
        """The hop a stage takes its work from: the previous stage's output (the source for the first)."""
        i = self.names.index(name) if name in self.names else -1
        if i < 0:
            raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(self.names)}")
        return self.main_source if i == 0 else self.stages[i - 1].output

    def inputs(self, name: str) -> tuple[str, ...]:
        """Every hop a stage reads: side inputs (control, frames) first, then its main input."""
        return (*self.spec(name).side_inputs, self.main_input(name))

    @cached_property
    def chain(self) -> tuple[str, ...]:
        """Stages that map records one by one (the in-process runner connects them with queues)."""
        return tuple(s.name for s in self.stages if self.frames_source not in s.side_inputs)

    @cached_property
    def frame_stage(self) -> str | None:
        """The stage that joins the source frames with the dubbed speech (lip sync), if any."""
        return next((s.name for s in self.stages if self.frames_source in s.side_inputs), None)

    # -- hops ---------------------------------------------------------------------------------
    @cached_property
    def hop_records(self) -> dict[str, str]:
        """hop -> schema name of the values it carries: sources, stage outputs in order, the DLQ."""
        return {**self.sources, **{s.output: s.record for s in self.stages}, self.dlq[0]: self.dlq[1]}

    @cached_property
    def hops(self) -> tuple[str, ...]:
        return tuple(self.hop_records)

    def writer(self, hop: str) -> str | None:
        """The stage that writes `hop` (None for source hops and the DLQ)."""
        return next((s.name for s in self.stages if s.output == hop), None)

    def with_stage(self, spec: StageSpec, after: str) -> Topology:
        """This topology with `spec` inserted after stage `after` (the next stage then reads its output)."""
        i = self.names.index(after) + 1
        return Topology((*self.stages[:i], spec, *self.stages[i:]), self.sources, self.main_source,
                        self.frames_source, self.dlq)


DEFAULT = Topology(
    sources={"session.control": "SessionControl", "media.audio": "AudioChunk", "media.video": "VideoFrame"},
    main_source="media.audio",
    frames_source="media.video",
    stages=(
        StageSpec("segment", "workers.segment.stage:SegmentStage", "workers.streaming:SegmentStep",
                  "segments", "SpeechSegment", side_inputs=("session.control",)),
        StageSpec("asr", "workers.asr.stage:AsrStage", "workers.streaming:AsrStep",
                  "transcripts", "Transcript"),
        StageSpec("translate", "workers.translate.stage:TranslateStage", "workers.streaming:TranslateStep",
                  "translations", "Translation"),
        StageSpec("tts", "workers.tts.stage:TtsStage", "workers.streaming:TtsStep",
                  "dubbed.speech", "DubbedSpeech"),
        StageSpec("lipsync", "workers.lipsync.stage:LipsyncStage", "workers.streaming:LipsyncStep",
                  "dubbed.video", "DubbedFrame", side_inputs=("session.control", "media.video")),
    ),
)
STAGE_ORDER: tuple[str, ...] = DEFAULT.names
