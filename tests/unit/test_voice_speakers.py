"""Who speaks: online clustering of segment embeddings and the speaker-change watch.

The embeddings here are made (a fixed direction per voice, with noise), so the logic is tested
apart from any encoder; tests/e2e/test_speaker_turns.py runs the real encoder on a made dialogue.
"""

from __future__ import annotations

import numpy as np

from workers.voice.speakers import HOP_S, WINDOW_S, ChangeWatch, SessionSpeakers
from workers.voice.stats import VoiceStats

RATE = 16000
rng = np.random.default_rng(7)
DIRS = {f: v / np.linalg.norm(v) for f, v in ((120, rng.normal(size=64)), (220, rng.normal(size=64)))}


def noisy(d: np.ndarray, amount: float = 0.3) -> np.ndarray:
    e = d + amount * rng.normal(size=d.shape) / np.sqrt(len(d))
    return e / np.linalg.norm(e)


def test_segments_of_one_voice_share_a_label_and_another_voice_gets_its_own():
    s = SessionSpeakers()
    a, b = DIRS[120], DIRS[220]
    labels = [s.assign(noisy(d), VoiceStats(100, 90, 110, 500, 1500, 1.0)).label for d in (a, b, a, a, b)]
    assert labels == ["S1", "S2", "S1", "S1", "S2"]
    assert [x.segments for x in s.speakers] == [3, 2]


def test_a_speaker_keeps_running_statistics_and_spectrum_weighted_by_voiced_time():
    s = SessionSpeakers()
    d = DIRS[120]
    s.assign(noisy(d, 0.05), VoiceStats(100, 90, 110, 500, 1500, 3.0), (0.0, 0.0))
    spk = s.assign(noisy(d, 0.05), VoiceStats(140, 130, 150, 600, 1700, 1.0), (4.0, 8.0))
    assert spk.stats.f0_median == 110 and spk.spectrum == (1.0, 2.0)
    p = spk.profile()
    assert p.f0_median == 110 and len(p.embedding) == 64 and p.spectrum == (1.0, 2.0)
    assert abs(np.linalg.norm(p.embedding) - 1) < 1e-6


def test_no_statistics_means_no_profile_to_send():
    s = SessionSpeakers()
    assert s.assign(DIRS[120], None).profile() is None


def tone_embed(windows: list[np.ndarray]) -> list[np.ndarray]:
    """A made encoder: the direction of the window's dominant tone (120 or 220 Hz), with noise."""
    out = []
    for w in windows:
        spec = np.abs(np.fft.rfft(w))
        f = np.argmax(spec) * RATE / len(w)
        out.append(noisy(DIRS[120 if abs(f - 120) < abs(f - 220) else 220], 0.2))
    return out


def tones(*parts: tuple[float, float]) -> np.ndarray:
    """(frequency, seconds) pieces; frequency 0 is silence."""
    chunks = []
    for f, sec in parts:
        t = np.arange(round(sec * RATE)) / RATE
        chunks.append((0.3 * np.sin(2 * np.pi * f * t) if f else np.zeros_like(t)).astype(np.float32))
    return np.concatenate(chunks)


def watch(audio: np.ndarray, start: int = 0, step_s: float = 0.1) -> int | None:
    """Feed the open segment as it grows, the way the segment stage does; the first change found."""
    w = ChangeWatch(RATE)
    step = round(step_s * RATE)
    for n in range(step, len(audio) + 1, step):
        if (c := w.check(start, audio[:n], tone_embed)) is not None:
            return c
    return None


def test_a_change_of_voice_is_found_near_where_it_happens():
    audio = tones((120, 3.0), (220, 3.0))
    change = watch(audio, start=RATE)  # the open segment starts 1 s into the session
    assert change is not None
    assert abs((change - RATE) / RATE - 3.0) <= HOP_S, change / RATE


def test_one_voice_throughout_is_never_cut():
    assert watch(tones((120, 6.0))) is None


def test_silence_is_not_embedded_and_makes_no_change():
    calls: list[int] = []

    def counting(windows):
        calls.append(len(windows))
        return tone_embed(windows)

    w = ChangeWatch(RATE)
    assert w.check(0, tones((0, 2 * WINDOW_S + 1.0)), counting) is None
    assert sum(calls) == 0


def test_a_new_segment_restarts_the_watch():
    w = ChangeWatch(RATE)
    w.check(0, tones((120, 3.0)), tone_embed)
    assert w.scores
    w.check(5 * RATE, tones((220, 3.0)), tone_embed)
    assert w.origin == 5 * RATE and all(b >= 5 * RATE for b, _ in w.scores)


def test_the_cut_goes_to_the_longest_pause_near_the_dip():
    # speech, a 0.1 s pause (inside a sentence), speech, a 0.25 s pause (the turn), speech
    audio = tones((120, 1.0), (0, 0.1), (120, 0.3), (0, 0.25), (220, 1.5))
    w = ChangeWatch(RATE)
    near = round(1.2 * RATE)  # the dip's lowest boundary, between the two pauses
    got = w.locate(0, audio, near)
    assert abs(got / RATE - 1.525) < 0.03, got / RATE
    assert w.locate(0, tones((120, 3.0)), near) == near  # no pause near: where the dip said
