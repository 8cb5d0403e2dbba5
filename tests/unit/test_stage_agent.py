"""The Kafka edge of a stage without a broker: acks, retention, dead letters, retries, expiry."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from faust.types import Message

from monitoring.metrics import Metrics
from streams.agents import Output, StageAgent
from streams.codecs import encode, load_schema
from streams.registry import SchemaRegistry, schema_text
from streams.topics import DeadLetter, Topics
from workers.asr.stage import AsrBackend, AsrResult, AsrStage
from workers.bench.calibrated import calibrated_pipeline
from workers.errors import ModelLoadError, StageError
from workers.records import AudioChunk, Record, SessionControl, SpeechSegment, Transcript
from workers.retry import RetryPolicy
from workers.settings import load_settings
from workers.streaming import AsrStep, SegmentStep, audio_end

TOPICS = Topics()
NO_BACKOFF = RetryPolicy(retries=2, backoff_s=0.0)


class MemoryRegistry(SchemaRegistry):
    """The real adapter with its HTTP calls replaced by a dict (ids per schema text)."""

    def __init__(self) -> None:
        super().__init__("http://registry.invalid")
        self.by_id: dict[int, str] = {}

    def register(self, subject: str, schema: dict | str) -> int:
        text = schema_text(schema)
        for i, t in self.by_id.items():
            if t == text:
                return i
        self.by_id[len(self.by_id) + 1] = text
        return len(self.by_id)

    def get_schema(self, schema_id: int) -> str:
        return self.by_id[schema_id]


class ListOutput(Output):
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, Record]] = []

    async def send(self, key: bytes | None, value: Record) -> None:
        self.sent.append((key, value))


class Event:
    """What a Faust stream yields: the consumed message."""

    def __init__(self, message: Message) -> None:
        self.message = message


class ScriptedAsr(AsrBackend):
    name = "scripted"

    def __init__(self, fail: list[BaseException] | None = None) -> None:
        super().__init__(load_settings())
        self.fail = fail or []
        self.calls = 0

    def _load(self) -> None:
        pass

    def transcribe(self, audio: np.ndarray, language: str | None) -> AsrResult:
        self.calls += 1
        if self.fail:
            raise self.fail.pop(0)
        return AsrResult("hello", "en", 0.9, 1.0)


class Harness:
    def __init__(self, stage: str, step: Any, retry: RetryPolicy = NO_BACKOFF) -> None:
        self.registry = MemoryRegistry()
        self.out, self.dlq = ListOutput(), ListOutput()
        self.metrics = Metrics()
        self.agent = StageAgent(stage, step, TOPICS, self.registry, self.metrics, self.out, self.dlq, retry,
                                idle_s=60.0)
        self.acked: list[int] = []
        self.offset = 0

    async def ack(self, event: Event) -> None:
        self.acked.append(event.message.offset)

    def message(self, record: Record | None, topic: str, raw: bytes | None = None) -> Message:
        if raw is None:
            raw = encode(record, self.registry.register("x", load_schema(record.schema_name)))
        key = record.session_id.encode() if record is not None else b"k"
        msg = Message(topic, 0, self.offset, 1.0, 0, None, key, raw, None)
        self.offset += 1
        return msg

    def feed(self, record: Record | None, topic: str, raw: bytes | None = None) -> int:
        msg = self.message(record, topic, raw)
        asyncio.run(self.agent.on_event(Event(msg), self.ack))
        return msg.offset


def seg(seq: int) -> SpeechSegment:
    return SpeechSegment("s", seq, seq, seq + 1.0, 16000, bytes(3200), "pause", ("es",), None, 0.0)


def test_a_stateless_stage_acks_each_record_once_its_output_is_sent():
    h = Harness("asr", AsrStep(AsrStage(ScriptedAsr())))
    off = h.feed(seg(0), TOPICS.segments)
    assert [type(r) for _, r in h.out.sent] == [Transcript] and h.out.sent[0][0] == b"s"
    assert h.acked == [off] and not h.dlq.sent
    assert h.agent.state.processed[(TOPICS.segments, 0)] == off


def test_an_open_session_is_retained_until_its_end_marker():
    pipe = calibrated_pipeline(load_settings(), dict.fromkeys(("segment", "asr", "translate", "tts", "lipsync"), 0.0))
    h = Harness("segment", SegmentStep(pipe["segment"]))
    start = h.feed(SessionControl("s", "start", ("es",), None), TOPICS.session_control)
    chunks = [h.feed(AudioChunk("s", i, i * 0.5, 16000, bytes(16000)), TOPICS.media_audio) for i in range(3)]
    assert h.acked == [] and h.agent.state.held == 4  # replaying these rebuilds the segmenter after a crash
    held = [e.message for events in h.agent.held.values() for e in events]
    assert len(held) == 4 and all(m.value is None for m in held)  # kept to be acked, not their bytes
    assert [r.seq for _, r in h.out.sent] == [0, 1, 2]
    end = h.feed(audio_end("s", 1.5), TOPICS.media_audio)
    assert sorted(h.acked) == sorted([start, *chunks, end]) and h.agent.state.held == 0
    assert h.out.sent[-1][1].seq == -1  # the end marker travels on


def test_a_held_start_is_not_acked_past_so_a_restart_still_replays_it():
    """The session's stop on session.control is done at once while its start stays retained. Faust
    commits an acked offset right after an unacked one as if it were a gap (faust-streaming#606):
    acking the stop committed the start, and the replay after a kill dropped the session."""
    pipe = calibrated_pipeline(load_settings(), dict.fromkeys(("segment", "asr", "translate", "tts", "lipsync"), 0.0))
    h = Harness("segment", SegmentStep(pipe["segment"]))
    start = h.feed(SessionControl("s", "start", ("es",), None), TOPICS.session_control)
    chunks = [h.feed(AudioChunk("s", i, i * 0.5, 16000, bytes(16000)), TOPICS.media_audio) for i in range(2)]
    stop = h.feed(SessionControl("s", "stop", ("es",), None), TOPICS.session_control)
    assert h.acked == []  # the stop waits behind the start it follows
    assert h.agent.acks.waiting() == 1
    end = h.feed(audio_end("s", 1.0), TOPICS.media_audio)
    assert h.acked == [start, stop, *chunks, end]
    assert h.agent.acks.waiting() == 0 and not h.agent.acks.pending


def test_bytes_that_do_not_decode_are_dead_lettered_with_the_original_and_acked():
    h = Harness("asr", AsrStep(AsrStage(ScriptedAsr())))
    off = h.feed(None, TOPICS.segments, raw=b"\x07garbage")
    ((_, dl),) = h.dlq.sent
    assert isinstance(dl, DeadLetter) and dl.original_value == b"\x07garbage" and dl.offset == off
    assert dl.stage == "asr" and dl.error_type == "SchemaError" and "magic byte" in dl.error
    assert h.acked == [off] and not h.out.sent


def test_retryable_errors_are_retried_by_the_policy_and_others_dead_lettered():
    flaky = ScriptedAsr(fail=[RuntimeError("busy"), StageError("asr", "x", "busy", retryable=True)])
    h = Harness("asr", AsrStep(AsrStage(flaky)), RetryPolicy(retries=2, backoff_s=0.0))
    h.feed(seg(0), TOPICS.segments)
    assert flaky.calls == 1 and len(h.dlq.sent) == 1  # a library error is translated: not retryable
    assert h.dlq.sent[0][1].error_type == "StageError" and not h.dlq.sent[0][1].retryable
    h.feed(seg(1), TOPICS.segments)
    assert flaky.calls == 3 and [r.seq for _, r in h.out.sent] == [1]  # retried once, then it worked
    assert h.acked == [0, 1]


def test_a_model_that_cannot_load_stops_the_worker():
    h = Harness("asr", AsrStep(AsrStage(ScriptedAsr(fail=[ModelLoadError("weights gone")]))))
    with pytest.raises(ModelLoadError):
        h.feed(seg(0), TOPICS.segments)
    assert h.acked == []  # not committed: processed again after the restart


def test_an_idle_session_is_ended_by_the_expiry_and_its_records_released():
    pipe = calibrated_pipeline(load_settings(), dict.fromkeys(("segment", "asr", "translate", "tts", "lipsync"), 0.0))
    h = Harness("segment", SegmentStep(pipe["segment"]))
    h.feed(SessionControl("s", "start", ("es",), None, at=1000.0), TOPICS.session_control)
    h.feed(AudioChunk("s", 0, 0.0, 16000, bytes(16000), captured_at=1000.0, produced_at=1000.0), TOPICS.media_audio)
    assert h.acked == []
    mono = h.agent.state.last_handled
    asyncio.run(h.agent.expire(h.ack, wall=1030.0, mono=mono + 1))  # stream time: not idle yet
    assert h.acked == []
    asyncio.run(h.agent.expire(h.ack, wall=1100.0, mono=mono + 61))  # the worker itself idle: wall clock
    assert sorted(h.acked) == [0, 1] and h.out.sent[-1][1].seq == -1
    assert "s" not in h.agent.step.sessions
