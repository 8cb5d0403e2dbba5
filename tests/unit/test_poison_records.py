"""Records that must never stop a worker (found by a foreign client on a real broker): each is a dead
letter naming what was wrong, the worker goes on, and a valid session beside it completes.

Driven through the real StageAgent with the fakes of test_stage_agent (no broker)."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from streams.codecs import encode
from streams.inflight import InFlight
from streams.topics import DEAD_LETTER_MAX_VALUE, DeadLetter
from tests.unit.test_stage_agent import TOPICS, Event, Harness, ListOutput, ScriptedAsr, seg
from workers.asr.stage import AsrStage
from workers.bench.calibrated import calibrated_pipeline
from workers.errors import BadInputError
from workers.records import AudioChunk, Record, SessionControl, Transcript, VideoFrame
from workers.retry import RetryPolicy
from workers.settings import load_settings
from workers.streaming import AsrStep, LipsyncStep, SegmentStep, audio_end
from workers.validation import validate

ZERO = dict.fromkeys(("segment", "asr", "translate", "tts", "lipsync"), 0.0)


def segment_harness() -> Harness:
    return Harness("segment", SegmentStep(calibrated_pipeline(load_settings(), ZERO)["segment"]))


def dead(h: Harness) -> list[DeadLetter]:
    return [r for _, r in h.dlq.sent]


def run_valid_session(h: Harness, sid: str = "ok") -> list[Record]:
    h.feed(SessionControl(sid, "start", ("es",), None), TOPICS.session_control)
    for i in range(4):
        h.feed(AudioChunk(sid, i, i * 0.5, 16000, bytes(16000)), TOPICS.media_audio)
    h.feed(audio_end(sid, 2.0), TOPICS.media_audio)
    return [r for _, r in h.out.sent if r.session_id == sid]


@pytest.mark.timeout(30)  # before validation this hung for good inside the resampler's constructor
def test_an_absurd_sample_rate_is_a_dead_letter_not_a_hang():
    h = segment_harness()
    h.feed(SessionControl("bad", "start", ("es",), None), TOPICS.session_control)
    off = h.feed(AudioChunk("bad", 0, 0.0, 2**62, bytes(320)), TOPICS.media_audio)
    (dl,) = dead(h)
    assert dl.offset == off and dl.error_type == "BadInputError" and "sample_rate=4611686018427387904" in dl.error
    assert off in h.acked  # committed: not replayed into the same trap after a restart
    assert run_valid_session(h)[-1].seq == -1


def test_a_zero_sample_rate_is_a_dead_letter_and_the_session_beside_it_completes():
    h = segment_harness()
    h.feed(SessionControl("bad", "start", ("es",), None), TOPICS.session_control)
    h.feed(AudioChunk("bad", 0, 0.0, 0, bytes(320)), TOPICS.media_audio)
    (dl,) = dead(h)
    assert "sample_rate=0 is outside 8000..192000" in dl.error
    assert run_valid_session(h)[-1].seq == -1


def test_an_end_marker_of_the_wrong_type_is_a_dead_letter():
    h = Harness("asr", AsrStep(AsrStage(ScriptedAsr())))
    wrong = Transcript("s", -1, 0.0, 1.0, "", "en", 0.0, ("es",), 0.0)
    off = h.feed(wrong, TOPICS.segments)
    (dl,) = dead(h)
    assert dl.offset == off and "a Transcript record where SpeechSegment is expected" in dl.error
    h.feed(seg(0), TOPICS.segments)
    assert [type(r) for _, r in h.out.sent] == [Transcript]  # still working


def test_a_control_record_at_nan_is_a_dead_letter_and_does_not_end_the_session():
    h = segment_harness()
    h.feed(SessionControl("s", "start", ("es",), None), TOPICS.session_control)
    h.feed(SessionControl("s", "stop", ("es",), None, at=math.nan), TOPICS.session_control)
    (dl,) = dead(h)
    assert "at=nan is not a finite number" in dl.error
    assert "s" in h.agent.step.sessions


class ProducerLimit(ListOutput):
    """A producer with our worker's limit: a value over max_request_size is refused (as librdkafka does)."""

    MAX = 4_000_000

    async def send(self, key, value) -> None:
        size = len(encode(value, 1))
        if size > self.MAX:
            raise BadInputError(f"message of {size} bytes is larger than max.request.size")
        await super().send(key, value)


def test_a_record_too_large_to_dead_letter_whole_is_cut_with_its_size_kept():
    h = segment_harness()
    h.dlq = h.agent.dlq = ProducerLimit()
    big = b"\x00" + bytes(6 * 1024 * 1024)  # 6 MB of bytes that do not even decode
    off = h.feed(None, TOPICS.media_audio, raw=big)
    (dl,) = dead(h)
    assert dl.offset == off and dl.original_size == len(big)
    assert dl.original_value == big[:DEAD_LETTER_MAX_VALUE]
    assert run_valid_session(h)[-1].seq == -1


def test_a_frame_of_unknown_encoding_is_rejected_at_the_edge_and_expiry_goes_on():
    pipe = calibrated_pipeline(load_settings(), ZERO)
    h = Harness("lipsync", LipsyncStep(pipe["lipsync"]))
    h.feed(VideoFrame("v", 0, 0.0, 4, 4, "h264", b"\x00" * 8, produced_at=1000.0), TOPICS.media_video)
    (dl,) = dead(h)
    assert "encoding='h264' is not one of bgr24, jpeg" in dl.error
    asyncio.run(h.agent.expire(h.ack, wall=1e9, mono=h.agent.state.last_handled + 1e6))  # no exception


def test_an_expiry_that_fails_is_contained_and_counted():
    h = segment_harness()

    async def broken(clock, idle_s):
        raise RuntimeError("a defect in a timer")

    h.agent.step.expire = broken
    asyncio.run(h.agent.expire(h.ack, wall=1e9, mono=h.agent.state.last_handled + 1e6))
    assert h.metrics.records_failed.labels("segment", "expiry:RuntimeError")._value.get() == 1


class DefectiveStep(AsrStep):
    """A step with a bug on its first record (as the wrong-type marker was: an AttributeError)."""

    def __init__(self, stage) -> None:
        super().__init__(stage)
        self.bugs = 1

    async def handle(self, record):
        if self.bugs:
            self.bugs -= 1
            return record.no_such_field
        return await super().handle(record)


def test_an_unexpected_exception_in_a_step_is_a_dead_letter_not_a_dead_worker():
    h = Harness("asr", DefectiveStep(AsrStage(ScriptedAsr())))
    h.feed(seg(0), TOPICS.segments)
    assert dead(h)[0].error_type == "AttributeError"
    assert h.metrics.records_failed.labels("asr", "AttributeError")._value.get() == 1
    h.feed(seg(1), TOPICS.segments)
    assert [r.seq for _, r in h.out.sent] == [1]


def test_a_failure_inside_the_stage_is_counted_once():
    from workers.errors import StageError

    h = Harness("asr", AsrStep(AsrStage(ScriptedAsr(fail=[StageError("asr", "x", "model failed")]))))
    h.agent.step.stage.metrics = h.metrics  # one Metrics for stage and edge, as in a worker
    h.feed(seg(0), TOPICS.segments)
    assert dead(h)[0].error_type == "StageError"
    assert h.metrics.records_failed.labels("asr", "StageError")._value.get() == 1


@pytest.mark.parametrize(("record", "field"), [
    (AudioChunk("s", 0, -1.0, 16000, b""), "pts_s"),
    (AudioChunk("s", 0, 0.0, 16000, b"\x00"), "pcm"),
    (AudioChunk("s", -7, 0.0, 16000, b""), "seq"),
    (AudioChunk("", 0, 0.0, 16000, b""), "session_id"),
    (SessionControl("s", "start", (), None), "target_langs"),
    (SessionControl("s", "pause", ("es",), None), "action"),
    (seg(0).replace(end_s=-0.5), "end_s"),
    (seg(0).replace(start_s=math.inf), "start_s"),
    (VideoFrame("s", 0, 0.0, 100000, 4, "jpeg", b""), "width"),
])
def test_every_field_is_checked_and_named(record, field):
    with pytest.raises(BadInputError, match=rf"\b{field}="):
        validate(record)


def test_end_markers_and_ordinary_records_pass():
    for r in (audio_end("s", 3.0), seg(0), SessionControl("s", "stop", (), None),
              VideoFrame("s", -1, 0.0, 0, 0, "jpeg", b"")):
        assert validate(r) is r


class SlowAsr(ScriptedAsr):
    """Hangs (for `hang_s`) on its first record, like a stuck model call."""

    def __init__(self, hang_s: float) -> None:
        super().__init__()
        self.hang_s = hang_s

    def transcribe(self, audio, language):
        if self.calls == 0:
            time.sleep(self.hang_s)
        return super().transcribe(audio, language)


def test_a_call_past_its_deadline_is_abandoned_and_the_worker_says_it_is_not_live():
    h = Harness("asr", AsrStep(AsrStage(SlowAsr(0.6))), RetryPolicy(retries=0, backoff_s=0.0, deadline_s=0.1))

    async def scenario():
        await h.agent.on_event(Event(h.message(seg(0), TOPICS.segments)), h.ack)
        assert dead(h)[0].error_type == "DeadlineError" and "no result within 0.1 s" in dead(h)[0].error
        assert h.acked == [0] and h.agent.state.wedged_since is not None  # /livez answers 503 now
        await h.agent.on_event(Event(h.message(seg(1), TOPICS.segments)), h.ack)  # waits for the thread
        assert h.agent.state.wedged_since is None and h.acked == [0, 1]

    asyncio.run(scenario())
    assert [r.seq for _, r in h.out.sent] == [1]  # the abandoned call's result is dropped, not sent late
    assert len(dead(h)) == 1


def test_a_record_the_worker_died_on_too_often_is_dead_lettered_on_sight(tmp_path):
    note = tmp_path / "inflight" / "asr"
    msg_seg = seg(5)
    for life in range(1, 4):  # three lives, each killed while processing offset 0 (nothing written after begin)
        got = InFlight(note).begin(TOPICS.segments, 0, 0)
        assert got == life
    asr = ScriptedAsr()
    h = Harness("asr", AsrStep(AsrStage(asr)), RetryPolicy(retries=0, backoff_s=0.0, max_attempts=3))
    h.agent.inflight = InFlight(note)  # the fourth life
    h.feed(msg_seg, TOPICS.segments)
    (dl,) = dead(h)
    assert dl.error_type == "DeadlineError" and "stopped 3 times" in dl.error and asr.calls == 0
    assert h.acked == [0]
    h.feed(seg(6), TOPICS.segments)  # the next record is processed as usual, and the note cleared
    assert asr.calls == 1 and InFlight(note).previous is None


def test_a_replayed_earlier_record_does_not_clear_the_note_of_the_one_that_killed_the_worker(tmp_path):
    note = tmp_path / "n"
    InFlight(note).begin(TOPICS.segments, 0, 7)  # died on offset 7
    life = InFlight(note)
    assert life.begin(TOPICS.segments, 0, 3) == 1  # a stateful stage replays from 3 first
    life.done()
    assert life.begin(TOPICS.segments, 0, 7) == 2
