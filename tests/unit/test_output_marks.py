"""What a stage already wrote, as marks: replayed outputs are not sent twice, finished inputs are not
redone, and a session's id can be reused once its end marker passed. With the real StageAgent."""

from __future__ import annotations

from streams.marks import OutputMarks
from tests.unit.test_stage_agent import TOPICS, Harness, ScriptedAsr, seg
from workers.asr.stage import AsrStage
from workers.records import DubbedSpeech, Transcript
from workers.streaming import AsrStep


def tr(seq: int, sid: str = "s") -> Transcript:
    return Transcript(sid, seq, 0.0, 1.0, "hi", "en", 0.9, ("es",), 0.0, produced_at=1.0)


def speech(seq: int, lang: str) -> DubbedSpeech:
    return DubbedSpeech("s", seq, 0.0, 1.0, lang, "x", 16000, b"", 50.0, (), 0.0)


def test_outputs_at_or_below_the_mark_are_dropped_per_session_and_language():
    m = OutputMarks()
    m.recover([speech(0, "es"), speech(1, "es"), speech(0, "fr")])
    outs = [speech(1, "es"), speech(2, "es"), speech(0, "fr"), speech(1, "fr"), speech(0, "it")]
    assert [(o.target_lang, o.seq) for o in m.fresh(outs)] == [("es", 2), ("fr", 1), ("it", 0)]
    assert m.suppressed == 2


def test_an_end_marker_written_before_is_dropped_and_frees_the_session_id():
    m = OutputMarks()
    m.recover([tr(0), tr(-1)])
    assert m.fresh([tr(0), tr(1), tr(-1)]) == []  # the whole session was written: all replays
    assert m.fresh([tr(0)]) == [tr(0)]  # the id reused by a later session


def test_an_end_marker_not_written_before_goes_out():
    m = OutputMarks()
    m.recover([tr(0)])
    assert m.fresh([tr(0), tr(1), tr(-1)]) == [tr(1), tr(-1)]
    assert not m.marks


def test_done_needs_every_output_stream():
    m = OutputMarks()
    m.recover([speech(3, "es")])
    assert m.done("s", 3, ["es"]) and m.done("s", 2, ["es"])
    assert not m.done("s", 3, ["es", "fr"]) and not m.done("s", 4, ["es"]) and not m.done("s", -1, ["es"])


def test_the_agent_neither_redoes_nor_resends_what_it_wrote_before_a_restart():
    asr = ScriptedAsr()
    h = Harness("asr", AsrStep(AsrStage(asr)))
    h.agent.marks.recover([tr(0), tr(1)])  # written by the previous life, inputs not committed
    for i in range(3):
        h.feed(seg(i), TOPICS.segments)
    assert asr.calls == 1 and [r.seq for _, r in h.out.sent] == [2]  # only the new segment costs a model call
    assert h.acked == [0, 1, 2]
    assert h.metrics.replays_suppressed.labels("asr")._value.get() == 2
