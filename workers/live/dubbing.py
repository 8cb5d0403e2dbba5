"""Where a call's sessions are dubbed: in the bot's own process, or by the Kafka workers.

The bot hands each participant's media to a `DubbingSession` and gets the dub back through the
session's sinks (PlayoutSink per language). `EmbeddedDubbing` runs the in-process runner (the
same one `livedub dub` uses); `streams/live_kafka.py:KafkaDubbing` makes the bot one of the
producers of meeting media and a consumer of the dubbed topics.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

import numpy as np

from monitoring.metrics import Metrics
from workers.live.feeds import AudioFeed, FrameFeed
from workers.pipeline import Pipeline, Sink
from workers.records import SessionControl, VideoFrame
from workers.retry import RetryPolicy
from workers.runner import Runner, Session
from workers.settings import Settings

log = logging.getLogger(__name__)


class DubbingSession(ABC):
    """One participant's session: media in as it arrives, the dub out into the sinks."""

    @abstractmethod
    def audio(self, pts_s: float, samples: np.ndarray, captured_at: float) -> None:
        """Audio (float32 at 48 kHz) that starts at `pts_s`, contiguous with what came before."""

    @abstractmethod
    def frame(self, frame: VideoFrame) -> None:
        """A camera frame (bgr24) on the session's clock."""

    @abstractmethod
    def end(self) -> None:
        """The participant's media ended."""

    @abstractmethod
    async def done(self) -> None:
        """Return once every output of the session has reached its sinks (or it was abandoned)."""


class Dubbing(ABC):
    """Opens dubbing sessions; `load()` (blocking) makes the first segment as fast as the rest."""

    def load(self) -> None:
        """Load and warm models, or connect."""

    @abstractmethod
    def open(self, control: SessionControl, sinks: dict[str, Sink]) -> DubbingSession:
        """Start a session for `control` (its id and target languages)."""

    def close(self) -> None:
        """Release what load() took."""


class EmbeddedDubbing(Dubbing):
    """The stages in this process: each session runs through its own `Runner` over one shared pipeline."""

    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline

    @classmethod
    def for_calls(cls, settings: Settings, metrics: Metrics | None = None) -> EmbeddedDubbing:
        """The stages with the calls' segmentation (`LIVEDUB_LIVEKIT__SEGMENT__*`) and Whisper window
        (`__ASR_WINDOW_S`) in place of a file's."""
        lk = settings.livekit
        live = settings.model_copy(update={"segment": lk.segment,
                                           "asr": settings.asr.model_copy(update={"window_s": lk.asr_window_s})})
        return cls(live, Pipeline.build(live, metrics))

    def load(self) -> None:
        self.pipeline.load()
        for stage in self.pipeline.stages.values():
            stage.warm_up()

    def open(self, control: SessionControl, sinks: dict[str, Sink]) -> DubbingSession:
        return _EmbeddedSession(self, control, sinks)

    def close(self) -> None:
        self.pipeline.close()


class _EmbeddedSession(DubbingSession):
    def __init__(self, owner: EmbeddedDubbing, control: SessionControl, sinks: dict[str, Sink]) -> None:
        s = owner.settings
        self.control = control
        self.feed = AudioFeed(control.session_id, s.runner.audio_chunk_s)
        self.frames = FrameFeed(control.target_langs)
        session = Session(control, self.feed.chunks(), sinks=sinks,
                          frames={lang: self.frames.source(lang) for lang in control.target_langs})
        runner = Runner(owner.pipeline, queue_size=s.runner.queue_size, retry=RetryPolicy.from_settings(s.retry))
        self.task = asyncio.ensure_future(self._run(runner, session))

    async def _run(self, runner: Runner, session: Session) -> None:
        report = await runner.run(session)
        log.info("session %s ended, %d segments dubbed, %d dropped", self.control.session_id,
                 len(report.segments), len(report.dropped))

    def audio(self, pts_s: float, samples: np.ndarray, captured_at: float) -> None:
        self.feed.put(pts_s, samples, captured_at)

    def frame(self, frame: VideoFrame) -> None:
        self.frames.add(frame)

    def end(self) -> None:
        self.feed.end()
        self.frames.end()

    async def done(self) -> None:
        try:
            await self.task
        except asyncio.CancelledError:
            self.task.cancel()
            raise
