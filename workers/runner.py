"""In-process runners: the paper's sequential baseline and the pipeline-parallel default.

Both drive the same `Pipeline` stage objects through `Stage.process()`:

* sequential: each segment goes through every stage (and into the sink) before
  the next chunk of audio is even looked at;
* pipelined: every stage runs in its own task (its model call in its own thread)
  connected by bounded queues, so stages overlap; a full queue blocks the
  producer (backpressure) and FIFO queues with one worker per stage keep each
  session's outputs in order.

Each Transcript passing between stages is also handed to every sink of the session
(`Sink.transcript`), ahead of its speech: the source side of the subtitles.

Errors: a non-retryable error on one record (bad segment, unsupported detected
language) drops that record with a warning and the source is kept for that
span; retryable errors are retried; configuration and model-load errors stop
the run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from workers.errors import ConfigError, LiveDubError, ModelLoadError
from workers.lipsync.stage import LipsyncJob
from workers.pipeline import FrameSource, Pipeline, Sink
from workers.records import AudioChunk, DubbedSpeech, SessionControl, Transcript, VideoFrame
from workers.retry import RetryPolicy
from workers.stage import Stage

log = logging.getLogger(__name__)

FRAME_BATCH = 25  # frames per lip-sync call: bounds memory for long segments at high resolution
_END = object()


@dataclass
class SegmentTiming:
    """When one segment of one language could be known, and when its output was complete.

    `available_at` is when the audio that closed the segment arrived (the segmenter must hear
    the pause before it can cut); `speech_end_at` is when its speech ended, a pause earlier.
    """

    seq: int
    lang: str
    start_s: float
    end_s: float
    available_at: float
    done_at: float
    speech_end_at: float

    @property
    def latency_s(self) -> float:
        return self.done_at - self.available_at

    @property
    def latency_from_speech_end_s(self) -> float:
        return self.done_at - self.speech_end_at


@dataclass
class RunReport:
    mode: str
    segments: list[SegmentTiming] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0  # CPU seconds of the run, where the caller measured it (benchmark)


@dataclass
class Session:
    """One session's inputs and outputs for a run."""

    control: SessionControl
    audio: AsyncIterator[AudioChunk]
    sinks: dict[str, Sink]
    frames: dict[str, FrameSource] | None = None  # per target language; None: audio only


class Runner:
    """Runs sessions through a loaded pipeline, sequentially or pipelined.

    The chain of stages (and so the queues between them) comes from the pipeline's topology:
    its first stage cuts the audio into segments, the middle ones map records one by one, and
    the frame stage (lip sync) joins each dubbed speech with the source frames of its span.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        queue_size: int = 8,
        retry: RetryPolicy | None = None,
        frame_batch: int = FRAME_BATCH,
        on_progress: Callable[[float], None] | None = None,
    ) -> None:
        self.p = pipeline
        self.queue_size = queue_size
        self.retry = retry or RetryPolicy()
        self.frame_batch = frame_batch
        self.on_progress = on_progress
        self.report = RunReport(mode="")

    # -- shared pieces ---------------------------------------------------
    async def _call(self, stage: Stage, record: Any) -> list[Any]:
        """`stage.process` with the run's error policy; [] means the record was dropped."""
        try:
            return await self.retry.run(lambda: stage.process(record), stage.name)
        except (ConfigError, ModelLoadError):
            raise
        except LiveDubError as e:
            what = f"{stage.name}: {_describe(record)}: {e}"
            log.warning("dropped %s; the source is kept for that span", what)
            self.report.dropped.append(what)
            return []

    async def _step(self, i: int, record: Any) -> list[Any]:
        """Record into chain stage `i`; the first stage's outputs are segments, whose availability is noted."""
        stage = self._chain[i]
        if i > 0:
            return await self._call(stage, record)
        if self.on_progress:
            self.on_progress(record.pts_s + record.duration_s)
        segs = await self._call(stage, record)
        for seg in segs:
            self._available[seg.seq] = record.captured_at
        return segs

    async def _flush(self, i: int, session_id: str) -> list[Any]:
        """End of the stream for chain stage `i`: what it still holds (the open segment) comes out now."""
        out = await self._chain[i].flush(session_id)
        if i == 0:
            for seg in out:
                self._available[seg.seq] = time.time()
        return out

    async def _lipsync(self, s: Session, sp: DubbedSpeech, emit: Callable[[Any], Any]) -> None:
        """Pass through frames before the segment, re-animate those inside, in batches."""
        src = s.frames.get(sp.target_lang) if s.frames else None
        loop = asyncio.get_running_loop()
        if src is not None:
            await emit(("frames", sp.target_lang, await loop.run_in_executor(None, list, src.until(sp.start_s))))
        await emit(("speech", sp.target_lang, sp))
        lipsync = self.p.frame_stage()
        if src is not None and lipsync is not None:
            inside: list[VideoFrame] = await loop.run_in_executor(None, list, src.until(sp.end_s))
            for i in range(0, len(inside), self.frame_batch):
                batch = inside[i : i + self.frame_batch]
                out = await self._call(lipsync, LipsyncJob(sp, tuple(batch)))
                await emit(("frames", sp.target_lang, out or batch))
        elif src is not None:
            await emit(("frames", sp.target_lang, await loop.run_in_executor(None, list, src.until(sp.end_s))))
        await emit(("done", sp.target_lang, sp))

    @staticmethod
    async def _show(record: Any, emit: Callable[[Any], Any]) -> None:
        """A transcript on its way between stages goes to the sinks too (subtitles of the source)."""
        if isinstance(record, Transcript):
            await emit(("transcript", "", record))

    def _write(self, s: Session, item: tuple[str, str, Any]) -> None:
        kind, lang, payload = item
        if kind == "transcript":  # one transcript for every language of the session
            for sink in s.sinks.values():
                sink.transcript(payload)
            return
        sink = s.sinks[lang]
        if kind == "frames":
            if payload:
                sink.frames(payload)
        elif kind == "speech":
            sink.speech(payload)
        elif kind == "done":
            self.report.segments.append(
                SegmentTiming(payload.seq, lang, payload.start_s, payload.end_s,
                              self._available.get(payload.seq, payload.speech_end_at), time.time(),
                              payload.speech_end_at)
            )

    def _finish(self, s: Session) -> None:
        for lang, sink in s.sinks.items():
            src = s.frames.get(lang) if s.frames else None
            if src is not None:
                sink.frames(list(src.rest()))
                src.close()
            sink.close()

    def _begin(self, mode: str, s: Session) -> None:
        self.p.load()
        self.p.check_session(s.control)
        self._chain = self.p.chain()
        if not self._chain:
            raise ConfigError("the pipeline has no stages to run")
        self.p.open_session(s.control)
        self.report = RunReport(mode=mode)
        self._available: dict[int, float] = {}

    async def _session(self, mode: str, s: Session, body: Callable[[_SinkWriter], Any]) -> RunReport:
        """Open the session on every stage, run `body`, and end the session however it ends."""
        self._begin(mode, s)
        started = time.perf_counter()
        sink_exec = _SinkWriter(self, s)
        try:
            await body(sink_exec)
        except BaseException:
            sink_exec.abort()
            raise
        finally:
            self.p.end_session(s.control.session_id)
        self.report.wall_s = time.perf_counter() - started
        return self.report

    # -- sequential baseline ----------------------------------------------
    async def run_sequential(self, s: Session) -> RunReport:
        """Each segment through all stages before the next one starts (the paper's baseline)."""
        n = len(self.p.chain())

        async def through(i: int, records: list[Any], sink_exec: _SinkWriter) -> None:
            for rec in records:
                await self._show(rec, sink_exec.write_now)
                if i == n:
                    await self._lipsync(s, rec, sink_exec.write_now)
                else:
                    await through(i + 1, await self._step(i, rec), sink_exec)

        async def body(sink_exec: _SinkWriter) -> None:
            async for chunk in s.audio:
                await through(0, [chunk], sink_exec)
            for i in range(n):  # end of the audio: what each stage holds, through the rest
                await through(i + 1, await self._flush(i, s.control.session_id), sink_exec)
            await sink_exec.finish()

        return await self._session("sequential", s, body)

    # -- pipeline-parallel -----------------------------------------------
    async def run_pipelined(self, s: Session) -> RunReport:
        """Stages run concurrently, connected by bounded queues (backpressure, order kept)."""
        names = [st.name for st in self.p.chain()]
        n = len(names)
        depth = self.p.metrics.queue_depth if self.p.metrics else None

        async def body(sink_exec: _SinkWriter) -> None:
            q = [asyncio.Queue(self.queue_size) for _ in range(n + 1)]  # q[i] feeds chain stage i

            async def source() -> None:
                async for chunk in s.audio:
                    await q[0].put(chunk)
                await q[0].put(_END)

            async def worker(i: int) -> None:
                while (item := await q[i].get()) is not _END:
                    if depth:
                        depth.labels(names[i]).set(q[i].qsize())
                    for out in await self._step(i, item):
                        await self._show(out, sink_exec.put)
                        await q[i + 1].put(out)
                for out in await self._flush(i, s.control.session_id):  # end of stream: what it holds
                    await self._show(out, sink_exec.put)
                    await q[i + 1].put(out)
                await q[i + 1].put(_END)

            async def frames() -> None:
                while (sp := await q[n].get()) is not _END:
                    await self._lipsync(s, sp, sink_exec.put)
                await sink_exec.put(_END)

            tasks = [
                asyncio.create_task(source(), name="source"),
                *(asyncio.create_task(worker(i), name=names[i]) for i in range(n)),
                asyncio.create_task(frames(), name="frames"),
                asyncio.create_task(sink_exec.drain(), name="sink"),
            ]
            await _gather_or_cancel(tasks)

        return await self._session("pipelined", s, body)

    async def run(self, s: Session, mode: str = "pipelined") -> RunReport:
        if mode == "pipelined":
            return await self.run_pipelined(s)
        if mode == "sequential":
            return await self.run_sequential(s)
        raise ConfigError(f"unknown mode {mode!r}: pipelined or sequential")


class _SinkWriter:
    """Writes sink items in a thread of its own: encoding must not stall the stages."""

    def __init__(self, runner: Runner, s: Session) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.r, self.s = runner, s
        self.q: asyncio.Queue = asyncio.Queue(runner.queue_size * 4)
        self.ex = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink")

    async def write_now(self, item: tuple[str, str, Any]) -> None:
        await asyncio.get_running_loop().run_in_executor(self.ex, self.r._write, self.s, item)

    async def put(self, item: Any) -> None:
        await self.q.put(item)

    async def drain(self) -> None:
        while (item := await self.q.get()) is not _END:
            await self.write_now(item)
        await self.finish()

    async def finish(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self.ex, self.r._finish, self.s)
        self.ex.shutdown(wait=True)

    def abort(self) -> None:
        self.ex.shutdown(wait=False, cancel_futures=True)
        for sink in self.s.sinks.values():
            sink.abort()


async def _gather_or_cancel(tasks: list[asyncio.Task]) -> None:
    """Wait for all tasks; if one fails, cancel the rest and re-raise its error."""
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _describe(record: Any) -> str:
    seq = getattr(record, "seq", None)
    if isinstance(record, LipsyncJob):
        seq = record.speech.seq
    return f"{type(record).__name__} session={getattr(record, 'session_id', '?')} seq={seq}"
