"""Live playout: constant delay, dubs placed on the original timing, late segments fall back to the
original and raise the delay, audio and video leave together."""

from __future__ import annotations

import numpy as np
import pytest

from workers.live.playout import RATE, STEP, Playout
from workers.records import DubbedFrame, DubbedSpeech, VideoFrame, float_to_pcm

T0 = 1000.0


def _speech(seq: int, start: float, end: float, level: float = 0.5) -> DubbedSpeech:
    n = round((end - start) * RATE)
    return DubbedSpeech("s", seq, start, end, "es", "hola", RATE, float_to_pcm(np.full(n, level, np.float32)),
                        25.0, (), 0.0)


def _feed(p: Playout, seconds: float, level: float = 0.1, t0: float = T0) -> None:
    """`seconds` of constant source audio, delivered in 10 ms frames on time."""
    for i in range(round(seconds * 100)):
        p.add_audio(np.full(STEP, level, np.float32), t0 + (i + 1) * STEP / RATE)


def _play(p: Playout, seconds: float) -> tuple[np.ndarray, list]:
    audio, steps = [], []
    for _ in range(round(seconds * 100)):
        steps.append((p.due_at(), p.step()))
        audio.append(steps[-1][1].audio["es"])
    return np.concatenate(audio), steps


def test_the_original_goes_out_at_a_constant_delay_and_unchanged():
    p = Playout(("es",), 2.0, max_delay_s=5.0)
    _feed(p, 1.0)
    audio, steps = _play(p, 1.0)
    assert np.allclose(audio, 0.1)
    dues = np.array([d for d, _ in steps])
    assert dues[0] == pytest.approx(T0 + 2.0)
    assert np.allclose(np.diff(dues), STEP / RATE)  # one step every 10 ms, no drift
    assert p.stats("es").underflow_s == 0.0


def test_a_dub_that_arrives_in_time_replaces_the_ducked_original_on_its_span():
    p = Playout(("es",), 2.0, max_delay_s=5.0, duck_db=-30.0, ramp_s=0.0)
    _feed(p, 1.0)
    assert p.add_speech("es", _speech(0, 0.2, 0.6), T0 + 0.9)
    audio, _ = _play(p, 1.0)
    inside = audio[round(0.2 * RATE):round(0.6 * RATE)]
    assert np.allclose(inside, 0.1 * 10 ** (-30 / 20) + 0.5, atol=2e-4)
    assert np.allclose(audio[: round(0.2 * RATE)], 0.1) and np.allclose(audio[round(0.6 * RATE):], 0.1)
    assert p.stats("es").dubbed == 1 and p.stats("es").late == 0


def test_a_late_dub_is_not_played_and_raises_the_delay_between_spans():
    p = Playout(("es",), 1.0, max_delay_s=5.0, margin_s=0.3)
    _feed(p, 3.0)
    _play(p, 0.5)  # playout is at source time 0.5
    # a segment [0.2, 0.6) whose dub came 2.0 s after its start was captured: it needed D = 2.0 + 0.3
    assert not p.add_speech("es", _speech(0, 0.2, 0.6), T0 + 2.2)
    assert p.stats("es").late == 1
    due_before = p.due_at()
    _, steps = _play(p, 1.6)
    silent = [s for _, s in steps if s.pts_s < 0]
    assert len(silent) == round(1.3 * 100)  # the rise from 1.0 to 2.3 s, as silence
    assert all(not s.frames["es"] for s in silent)
    assert p.delay_s == pytest.approx(2.3)
    assert steps[-1][0] == pytest.approx(due_before + 1.59)
    # after the rise the source resumes where it stood, unchanged (no dub was played)
    resumed = np.concatenate([s.audio["es"] for _, s in steps if s.pts_s >= 0])
    assert np.allclose(resumed, 0.1)
    assert steps[-1][1].pts_s == pytest.approx(0.5 + 0.29)


def test_the_delay_never_rises_past_its_limit():
    p = Playout(("es",), 1.0, max_delay_s=1.5)
    _feed(p, 1.0)
    _play(p, 0.5)
    p.add_speech("es", _speech(0, 0.1, 0.3), T0 + 30.0)
    _play(p, 0.6)
    assert p.delay_s == pytest.approx(1.5)


def _frame(pts: float, value: int, dubbed: bool):
    img = np.full((8, 8, 3), value, np.uint8)
    if dubbed:
        return DubbedFrame("s", 0, 0, pts, "es", 8, 8, "bgr24", img.tobytes(), False, 0.0)
    return VideoFrame("s", 0, pts, 8, 8, "bgr24", img.tobytes())


def test_frames_leave_with_their_audio_step_and_dubbed_frames_replace_them_inside_a_dubbed_span():
    p = Playout(("es",), 1.0, max_delay_s=5.0)
    pts = [p.add_frame(np.full((8, 8, 3), 10, np.uint8), T0 + 0.04 * i + 0.001) for i in range(25)]
    _feed(p, 1.0)
    p.add_speech("es", _speech(0, 0.4, 0.8), T0 + 0.9)
    inside = [t for t in pts if 0.4 <= t < 0.8]
    p.add_frames("es", [_frame(t, 200, True) for t in inside[:-1]], T0 + 0.95)  # the last one never comes
    _, steps = _play(p, 1.0)
    shown = [(s.pts_s, int(f[0, 0, 0])) for _, s in steps for f in s.frames["es"]]
    assert len(shown) == 25
    for (step_pts, value), t in zip(shown, pts, strict=True):
        assert step_pts <= t < step_pts + STEP / RATE  # in the step of its own audio: A/V within 10 ms
        assert value == (200 if t in inside[:-1] else 10)
    assert p.stats("es").late_frames == 1


def test_a_pause_in_the_input_is_filled_with_silence_on_the_wall_clock():
    p = Playout(("es",), 1.0, max_delay_s=5.0)
    first = p.add_audio(np.ones(STEP, np.float32), T0 + 0.01)
    assert [(pts, len(x)) for pts, x in first] == [(0.0, STEP)]
    later = p.add_audio(np.ones(STEP, np.float32), T0 + 1.01)  # 1 s with nothing (muted)
    assert [pts for pts, _ in later] == [pytest.approx(0.01), pytest.approx(1.0)]
    assert sum(len(x) for _, x in later) == round(1.0 * RATE)


def test_playout_ends_once_everything_buffered_has_gone_out():
    p = Playout(("es",), 0.5, max_delay_s=1.0)
    _feed(p, 0.3)
    p.end()
    assert not p.done
    _play(p, 0.3)
    assert p.done


def test_frames_come_too_late_only_matter_inside_a_span_that_played_dubbed():
    p = Playout(("es",), 1.0, max_delay_s=5.0)
    for i in range(25):
        p.add_frame(np.full((8, 8, 3), 10, np.uint8), T0 + 0.04 * i + 0.001)
    _feed(p, 1.0)
    p.add_speech("es", _speech(0, 0.4, 0.6), T0 + 0.5)
    _play(p, 1.0)
    missing = p.stats("es").late_frames  # the span's frames, shown as they were: none had come
    assert missing > 0 and p.delay_s == 1.0
    # after playout: one frame from outside the span (a transport's pass-through), one from inside
    p.add_frames("es", [_frame(0.2, 200, True)], T0 + 5.0)
    assert p.stats("es").late_frames == missing
    p.add_frames("es", [_frame(0.48, 200, True)], T0 + 5.0)
    assert p.stats("es").late_frames == missing + 1
    _play(p, 0.1)
    assert p.delay_s == pytest.approx(4.82, abs=0.011)  # what that frame would have needed: 4.52 s + 0.3
