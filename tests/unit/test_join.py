"""The Kafka-side frame joiner: order, passthrough, multi-language, bounded buffer."""

from __future__ import annotations

from workers.lipsync.join import FrameJoiner
from workers.records import DubbedSpeech, VideoFrame


def frame(i: int, fps: float = 10.0) -> VideoFrame:
    return VideoFrame("s", i, i / fps, 2, 2, "bgr24", bytes(12))


def speech(seq: int, start: float, end: float, lang: str = "es") -> DubbedSpeech:
    return DubbedSpeech("s", seq, start, end, lang, "hola", 16000, b"", 50.0, (), 0.0)


def test_a_segment_waits_for_its_frames_then_comes_with_the_passthrough_before_it():
    j = FrameJoiner("s", ("es",))
    j.add_speech(speech(0, 0.5, 1.0))
    for i in range(8):
        j.add_frame(frame(i))
    assert j.ready() == []  # frames only up to 0.7 s: the segment's span is not complete
    for i in range(8, 11):
        j.add_frame(frame(i))
    (r,) = j.ready()
    assert [f.seq for f in r.passthrough] == [0, 1, 2, 3, 4]
    assert [f.seq for f in r.inside] == [5, 6, 7, 8, 9]
    assert r.speech.seq == 0
    assert j.buffered == 1  # frame 10 is still owed to the output


def test_each_language_gets_every_frame_once_and_frames_are_freed_when_all_are_past():
    j = FrameJoiner("s", ("es", "fr"))
    for i in range(20):
        j.add_frame(frame(i))
    j.add_speech(speech(0, 0.2, 0.6, "es"))
    out = j.ready()
    assert [r.lang for r in out] == ["es"]
    assert j.buffered == 20  # fr has not consumed anything yet
    j.add_speech(speech(0, 0.2, 0.6, "fr"))
    out += j.ready()
    assert j.buffered == 14
    out += j.finish()
    for lang in ("es", "fr"):
        seqs = [f.seq for r in out if r.lang == lang for f in (*r.passthrough, *r.inside)]
        assert seqs == list(range(20)), lang
    assert j.buffered == 0


def test_a_long_silence_does_not_grow_the_buffer_without_bound():
    j = FrameJoiner("s", ("es",), max_buffer_s=5.0)
    passed = 0
    for i in range(1000):  # 100 s of video, no speech at all
        j.add_frame(frame(i))
        passed += sum(len(r.passthrough) for r in j.ready())
        assert j.buffered <= 52
    assert passed >= 940
