"""Runners: ordering, backpressure, overlap, error policy, sequential == pipelined."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from tests.support.feeds import FAST
from tests.support.feeds import chunks as _chunks
from tests.support.feeds import session as _session
from workers.asr.stage import AsrResult, AsrStage
from workers.bench.calibrated import CalibratedAsr, NullSink, calibrated_pipeline
from workers.errors import BadInputError, ModelLoadError, StageError
from workers.records import SessionControl
from workers.runner import Runner
from workers.settings import load_settings


def _run(pipeline, session, mode, **kw):
    return asyncio.run(Runner(pipeline, **kw).run(session, mode))


@pytest.mark.parametrize("mode", ["sequential", "pipelined"])
def test_every_segment_comes_out_in_order_for_every_language(mode):
    pipe = calibrated_pipeline(load_settings(), FAST)
    session, sinks = _session(12, ("es", "fr"))
    report = _run(pipe, session, mode)
    for lang, sink in sinks.items():
        assert [sp.seq for sp in sink.speeches] == list(range(12)), lang
        assert all(sp.target_lang == lang for sp in sink.speeches)
        # 12 segments of 0.05 s at 100 fps: every frame passed on exactly once
        assert sink.frames_seen == 60
    assert [t.seq for t in report.segments if t.lang == "es"] == list(range(12))
    assert not report.dropped


def test_sequential_and_pipelined_produce_the_same_outputs():
    pipe = calibrated_pipeline(load_settings(), FAST)
    outs = {}
    for mode in ("sequential", "pipelined"):
        session, sinks = _session(8, ("es",), sid="same")
        _run(pipe, session, mode)
        outs[mode] = [(sp.seq, sp.start_s, sp.end_s, sp.text, sp.pcm) for sp in sinks["es"].speeches]
    assert outs["sequential"] == outs["pipelined"]
    assert len(outs["pipelined"]) == 8


def _intervals(pipe) -> list[tuple[str, float, float]]:
    """Record every stage call's [start, end) through the public observer hook."""
    spans: list[tuple[str, float, float]] = []

    def observe(stage: str, elapsed: float, record) -> None:
        end = time.perf_counter()
        spans.append((stage, end - elapsed, end))

    for st in pipe.stages.values():
        st.observers.append(observe)
    return spans


def _any_overlap(spans) -> bool:
    return any(a[0] != b[0] and a[1] < b[2] and b[1] < a[2] for a in spans for b in spans)


def test_pipelined_stages_overlap_and_sequential_ones_do_not():
    """Structural, not timed: is the work of two different stages ever in flight at once?"""
    seen = {}
    for mode in ("sequential", "pipelined"):
        pipe = calibrated_pipeline(load_settings(), {k: 0.02 for k in FAST})
        spans = _intervals(pipe)
        session, _ = _session(10)
        _run(pipe, session, mode)
        seen[mode] = _any_overlap(spans)
    assert seen == {"sequential": False, "pipelined": True}


class LaggingSink(NullSink):
    """Records, for each output, how many chunks the source had released by then."""

    def __init__(self, released: list[int]) -> None:
        super().__init__()
        self.released = released
        self.lead: list[int] = []

    def speech(self, speech) -> None:
        self.lead.append(len(self.released) - len(self.speeches))
        super().speech(speech)


def test_backpressure_bounds_how_far_the_source_runs_ahead():
    pipe = calibrated_pipeline(load_settings(), {**FAST, "lipsync": 0.05})
    released: list[int] = []
    session, _ = _session(60)
    inner = session.audio

    async def counting():
        async for c in inner:
            released.append(c.seq)
            yield c

    sink = LaggingSink(released)
    session.audio, session.sinks = counting(), {"es": sink}
    _run(pipe, session, "pipelined", queue_size=2)
    # 5 queues of 2 plus one record in each of 6 tasks: the source can never be ~20 chunks ahead
    assert max(sink.lead) <= 20
    assert len(sink.speeches) == 60


class ScriptedAsr(CalibratedAsr):
    """A fake ASR whose failures a test scripts per segment (by audio length as the segment's id)."""

    def __init__(self, settings, fail) -> None:
        super().__init__(settings, 0.001)
        self.fail = fail
        self.tried: dict[int, int] = {}

    def transcribe(self, audio: np.ndarray, language: str | None) -> AsrResult:
        seq = int(audio[0] * 32768)  # _session() writes each segment's seq into its first sample
        self.tried[seq] = self.tried.get(seq, 0) + 1
        self.fail(seq, self.tried[seq])
        return super().transcribe(audio, language)


def _scripted(fail) -> tuple:
    settings = load_settings()
    asr = ScriptedAsr(settings, fail)
    return calibrated_pipeline(settings, FAST, replace={"asr": AsrStage(asr)}), asr


@pytest.mark.parametrize("mode", ["sequential", "pipelined"])
def test_a_bad_record_is_dropped_and_the_rest_goes_on(mode):
    def fail(seq: int, attempt: int) -> None:
        if seq == 2:
            raise BadInputError("unreadable segment")
        if seq == 4 and attempt == 1:
            raise StageError("asr", "scripted", "busy", retryable=True)

    pipe, asr = _scripted(fail)
    session, sinks = _session(6)
    report = _run(pipe, session, mode)
    assert [sp.seq for sp in sinks["es"].speeches] == [0, 1, 3, 4, 5]
    assert len(report.dropped) == 1 and "seq=2" in report.dropped[0]
    assert asr.tried[4] == 2  # retried once, then succeeded
    assert sinks["es"].frames_seen == 30  # the dropped segment's frames still pass through


def test_library_errors_are_translated_with_the_cause_kept():
    def fail(seq: int, attempt: int) -> None:
        raise ZeroDivisionError("boom")

    pipe, _ = _scripted(fail)
    seg_stage = pipe["segment"]
    seg_stage.open_session(SessionControl("x", "start", ("es",), None))
    (seg,) = seg_stage.process_sync(_chunks(1, "x")[0])
    with pytest.raises(StageError) as ei:
        pipe["asr"].process_sync(seg)
    assert isinstance(ei.value.__cause__, ZeroDivisionError)
    assert not ei.value.retryable


def test_a_fatal_error_stops_the_whole_run():
    def fail(seq: int, attempt: int) -> None:
        if seq == 3:
            raise ModelLoadError("weights vanished")

    pipe, _ = _scripted(fail)
    session, _ = _session(20)
    with pytest.raises(ModelLoadError):
        _run(pipe, session, "pipelined")


def test_metrics_are_recorded_per_stage():
    from monitoring.metrics import Metrics

    m = Metrics()
    pipe = calibrated_pipeline(load_settings(), FAST, metrics=m)
    session, _ = _session(5)
    _run(pipe, session, "pipelined")
    reg = m.registry
    for stage in ("segment", "asr", "translate", "tts", "lipsync"):
        assert reg.get_sample_value("livedub_stage_seconds_count", {"stage": stage, "backend": "calibrated"}) >= 5
        assert reg.get_sample_value("livedub_records_in_total", {"stage": stage}) >= 5
    assert reg.get_sample_value("livedub_queue_depth", {"stage": "asr"}) is not None
