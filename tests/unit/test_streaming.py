"""Stream steps (what each Kafka agent calls): end markers, early audio, joins, no session mixing."""

from __future__ import annotations

import asyncio
import random

import pytest

from streams.subscribe import murmur2, partition_for
from tests.support.feeds import flow as _flow
from tests.support.feeds import frames_by as _frames_by
from tests.support.feeds import session_records as _session_records
from workers.bench.calibrated import calibrated_pipeline
from workers.settings import load_settings
from workers.streaming import END, is_end, video_end
from workers.topology import DEFAULT

FAST = {"segment": 0.0, "asr": 0.0, "translate": 0.0, "tts": 0.0, "lipsync": 0.0}
ORDER = DEFAULT.names


def _steps():
    pipe = calibrated_pipeline(load_settings(), FAST)
    return {name: DEFAULT.spec(name).step_class()(pipe[name]) for name in ORDER}


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


def test_a_whole_session_of_audio_before_its_start_is_cut_once_the_start_comes():
    """What a restarted worker sees when it replays a backlog: Kafka orders each partition, not one
    topic against another, so all of media.audio, its end marker too, may come before session.control's
    start. The session was dropped at its end marker (the kill-chaos test lost two of four sessions)."""
    steps = _steps()
    audio, video = _session_records("s1", ("es",))
    control, chunks = audio[0], audio[1:]
    assert is_end(chunks[-1])
    out = asyncio.run(_flow(steps, [*chunks, control], video))
    assert [f.frame_seq for f in _frames_by(out, "s1", "es")[:-1]] == list(range(40))
    assert steps["segment"].early == {} and steps["segment"].held == {}


def test_audio_whose_start_never_comes_is_dropped_when_it_idles():
    steps = _steps()
    audio, _ = _session_records("s1", ("es",))
    seg = steps["segment"]
    asyncio.run(_feed(seg, audio[1:]))  # the start was committed before a replay: it never comes
    assert seg.early and seg.held  # waits for it
    t = max(r.produced_at if hasattr(r, "produced_at") else r.at for r in audio[1:])
    assert asyncio.run(seg.expire(t + 120.0)) == []  # nothing to cut without it; nothing is kept
    assert seg.early == {} and seg.held == {} and len(seg.released()) == len(audio) - 1


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


async def _feed(step, records, held=None):
    """Handle records one by one as the agent does; (outputs, retained key -> record still held)."""
    out, held = [], {} if held is None else held
    for rec in records:
        out += await step.handle(rec)
        key = step.retained()
        if key is not None:
            held[key] = rec
        for k in step.released():
            held.pop(k)
    return out, held


def _lipsync_inputs(sid="s1", langs=("es", "fr")):
    """What the lipsync agent consumes for a session, speech interleaved with the frames it covers."""
    steps = _steps()
    audio, video = _session_records(sid, langs)
    speech = []

    async def upstream():
        for rec in audio:
            for seg in await steps["segment"].handle(rec):
                for tr in await steps["asr"].handle(seg):
                    for tl in await steps["translate"].handle(tr):
                        speech.extend(await steps["tts"].handle(tl))

    asyncio.run(upstream())
    records, frames = [video[0]], video[1:]
    for i, f in enumerate(frames):
        records.append(f)
        if i % 10 == 9:  # each 0.5 s segment's speech once its frames are in (ends last: markers)
            records += [s for s in speech if not is_end(s) and s.seq == i // 10]
    return [*records, *[s for s in speech if is_end(s)]]


def test_stateful_steps_retain_inputs_until_their_state_no_longer_needs_them():
    steps = _steps()
    audio, _ = _session_records("s1", ("es",))
    _, held = asyncio.run(_feed(steps["segment"], audio[:-1]))
    assert set(held) == {("start", "s1"), *(("audio", "s1", i) for i in range(4))}  # an open session keeps all
    asyncio.run(_feed(steps["segment"], audio[-1:], held))
    assert held == {} and steps["segment"].held == {}  # its end releases everything

    records = _lipsync_inputs()
    lip = steps["lipsync"]
    _, held = asyncio.run(_feed(lip, records[:25]))  # 20 frames and the first segment's speech in
    frames_held = sorted(k[2] for k in held if k[0] == "frame")
    assert frames_held and min(frames_held) >= 10  # frames emitted for both languages are released
    assert ("start", "s1", 0) in held
    asyncio.run(_feed(lip, records[25:], held))
    assert held == {}  # all released once the session is done


def test_a_fresh_lipsync_step_fed_the_unreleased_inputs_completes_the_session():
    """What a restart does: a new worker consumes from the oldest record not released (Kafka replays
    everything from there) and the subscriber drops what it got twice."""
    records = _lipsync_inputs()
    first = _steps()["lipsync"]
    cut = 37
    out1, held = asyncio.run(_feed(first, records[:cut]))
    ids = {id(r) for r in held.values()}
    resume = next(i for i, r in enumerate(records) if id(r) in ids)  # the committed offset, roughly
    out2, _ = asyncio.run(_feed(_steps()["lipsync"], records[resume:]))
    for lang in ("es", "fr"):
        seen = {f.frame_seq for f in _frames_by(out1 + out2, "s1", lang) if not is_end(f)}
        assert seen == set(range(40))
        assert is_end(_frames_by(out2, "s1", lang)[-1])


def test_a_session_whose_publisher_died_is_ended_after_it_idles():
    steps = _steps()
    audio, video = _session_records("s1", ("es",))
    asyncio.run(_feed(steps["segment"], audio[:3]))  # start and two chunks, then nothing
    asyncio.run(_feed(steps["lipsync"], video[:10]))
    t = max(r.produced_at if hasattr(r, "produced_at") else r.at for r in audio[:3])
    assert asyncio.run(steps["segment"].expire(t + 1.0)) == []  # not idle yet
    out = asyncio.run(steps["segment"].expire(t + 120.0))
    assert is_end(out[-1]) and steps["segment"].sessions == {} and steps["segment"].held == {}
    assert sorted(steps["segment"].released()) == sorted([("start", "s1"), ("audio", "s1", 0), ("audio", "s1", 1)])
    out = asyncio.run(steps["lipsync"].expire(t + 120.0))
    assert [f.frame_seq for f in out] == [*range(9), END]  # what was buffered, then the end marker
    assert steps["lipsync"].joiners == {} and len(steps["lipsync"].released()) == 10
