"""Stream steps (what each Kafka agent calls): end markers, early audio, joins, no session mixing."""

from __future__ import annotations

import asyncio
import random

import pytest

from streams.subscribe import murmur2, partition_for
from workers.bench.calibrated import calibrated_pipeline
from workers.records import AudioChunk, DubbedFrame, SessionControl, VideoFrame
from workers.settings import load_settings
from workers.streaming import END, STEPS, audio_end, is_end, video_end

FAST = {"segment": 0.0, "asr": 0.0, "translate": 0.0, "tts": 0.0, "lipsync": 0.0}
ORDER = ("segment", "asr", "translate", "tts", "lipsync")


def _steps():
    pipe = calibrated_pipeline(load_settings(), FAST)
    return {name: STEPS[name](pipe[name]) for name in ORDER}


def _session_records(sid: str, langs: tuple[str, ...], segments: int = 4, fps: float = 20.0):
    """Control, audio chunks (one per segment, 0.5 s) and frames, as a publisher sends them."""
    recs = [SessionControl(sid, "start", langs, None)]
    for i in range(segments):
        recs.append(AudioChunk(sid, i, i * 0.5, 16000, bytes(16000)))
    n = int(segments * 0.5 * fps)
    frames = [recs[0], *(VideoFrame(sid, k, k / fps, 2, 2, "bgr24", bytes(12)) for k in range(n))]
    return [*recs, audio_end(sid, segments * 0.5)], [*frames, video_end(sid, segments * 0.5)]


async def _flow(steps, audio_side, video_side):
    """Route records hop by hop as Kafka would (one ordered stream per hop), returning lipsync output."""
    out: list = []
    nxt = {"segment": "asr", "asr": "translate", "translate": "tts", "tts": "lipsync"}

    async def push(stage: str, rec) -> None:
        for o in await steps[stage].handle(rec):
            if stage == "lipsync":
                out.append(o)
            else:
                await push(nxt[stage], o)

    for rec in video_side:
        await push("lipsync", rec)
    for rec in audio_side:
        await push("segment", rec)
    return out


def _frames_by(out, sid, lang):
    return [o for o in out if isinstance(o, DubbedFrame) and o.session_id == sid and o.target_lang == lang]


def test_every_frame_comes_out_once_per_language_then_an_end_marker():
    steps = _steps()
    audio, video = _session_records("s1", ("es", "fr"))
    out = asyncio.run(_flow(steps, audio, video))
    for lang in ("es", "fr"):
        frames = _frames_by(out, "s1", lang)
        assert is_end(frames[-1]) and frames[-1].frame_seq == END
        body = frames[:-1]
        assert [f.frame_seq for f in body] == list(range(40))
        assert sum(1 for f in body if f.seq >= 0) == 40  # every frame lies in a dubbed segment here
    assert steps["lipsync"].joiners == {}  # the session's state is gone after its end


def test_audio_that_arrives_before_its_session_start_waits_for_it():
    steps = _steps()
    audio, video = _session_records("s1", ("es",))
    control, chunks = audio[0], audio[1:]
    out = asyncio.run(_flow(steps, [*chunks[:2], control, *chunks[2:]], video))
    assert [f.frame_seq for f in _frames_by(out, "s1", "es")[:-1]] == list(range(40))


def test_two_interleaved_sessions_never_mix():
    steps = _steps()
    a_audio, a_video = _session_records("alice", ("es",), segments=4)
    b_audio, b_video = _session_records("bob", ("fr",), segments=6)
    rng = random.Random(7)

    def interleave(x, y):
        x, y, res = list(x), list(y), []
        while x or y:
            src = x if (x and (not y or rng.random() < 0.5)) else y
            res.append(src.pop(0))
        return res

    out = asyncio.run(_flow(steps, interleave(a_audio, b_audio), interleave(a_video, b_video)))
    assert {(o.session_id, o.target_lang) for o in out} == {("alice", "es"), ("bob", "fr")}
    assert [f.frame_seq for f in _frames_by(out, "alice", "es")[:-1]] == list(range(40))
    assert [f.frame_seq for f in _frames_by(out, "bob", "fr")[:-1]] == list(range(60))


def test_audio_only_session_ends_with_the_video_marker_sent_up_front():
    steps = _steps()
    audio, _ = _session_records("s1", ("es",))
    out = asyncio.run(_flow(steps, audio, [audio[0], video_end("s1", 0.0)]))
    assert len(out) == 1 and is_end(out[0])


@pytest.mark.parametrize(
    "key,java",
    [("21", -973932308), ("foobar", -790332482), ("a-little-bit-long-string", -985981536),
     ("a-little-bit-longer-string", -1486304829), ("abc", 479470107)],
)
def test_murmur2_matches_the_java_client(key, java):
    h = murmur2(key.encode())
    assert (h - 2**32 if h >= 2**31 else h) == java
    assert 0 <= partition_for(key.encode(), 12) < 12
