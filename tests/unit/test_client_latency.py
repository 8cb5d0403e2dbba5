"""`livedub bench --client`: each phase measured from the end of the segment's speech."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from streams.client_latency import _segments
from workers.records import DubbedFrame, DubbedSpeech, SpeechSegment, Transcript, Translation


def test_each_phase_is_read_from_its_own_hop_and_incomplete_segments_are_left_out():
    t0 = 1000.0
    seg = SpeechSegment("c", 0, 1.0, 3.0, 16000, b"", "pause", ("es",), None, t0, produced_at=t0 + 0.8)
    seen = {
        ("SpeechSegment", 0): (seg, t0 + 0.81),
        ("Transcript", 0): (Transcript("c", 0, 1.0, 3.0, "hi", "en", 0.9, ("es",), t0, produced_at=t0 + 1.9), 0.0),
        ("Translation", 0): (Translation("c", 0, 1.0, 3.0, "hola", "en", "es", t0, produced_at=t0 + 2.1), 0.0),
        ("DubbedSpeech", 0): (DubbedSpeech("c", 0, 1.0, 3.0, "es", "hola", 16000, b"", 50, (), t0,
                                           produced_at=t0 + 2.2), t0 + 2.25),
        ("video", 0): (DubbedFrame.__new__(DubbedFrame), t0 + 3.5),
        ("SpeechSegment", 1): (seg.replace(seq=1), t0 + 5.0),  # never dubbed: not counted
    }
    (row,) = _segments(SimpleNamespace(seen=seen))
    assert row["seq"] == 0 and row["length_s"] == 2.0
    assert [row[k] for k in ("pause", "asr", "mt", "tts", "speech", "video")] == pytest.approx(
        [0.8, 1.9, 2.1, 2.2, 2.25, 3.5])
