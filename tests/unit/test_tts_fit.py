"""fit_to_duration and mouth_track on signals whose timing, pitch and loudness are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.support.tts_audio import pitch_hz, rms, tone
from workers.tts.fit import (
    MAX_EXTRA,
    MOUTH_RATE,
    fit_to_duration,
    mouth_track,
    phoneme_openness,
    time_compress,
    trim_silence,
)

SR = 22050


def padded(speech: np.ndarray, lead_s: float, tail_s: float) -> np.ndarray:
    return np.concatenate([np.zeros(round(lead_s * SR), np.float32), speech, np.zeros(round(tail_s * SR), np.float32)])


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """A 150 Hz 'voice' with syllable-rate loudness changes, so WSOLA has structure to align."""
    t = np.arange(round(seconds * SR)) / SR
    env = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t + seed)
    return (0.4 * env * (np.sin(2 * np.pi * 150 * t) + 0.3 * np.sin(2 * np.pi * 450 * t))).astype(np.float32)


def test_trim_silence_cuts_lead_and_tail_but_keeps_speech():
    speech = speechlike(1.0)
    out = trim_silence(padded(speech, 0.4, 0.3), SR)
    assert abs(len(out) - len(speech)) <= 0.05 * SR
    assert len(trim_silence(np.zeros(SR, np.float32), SR)) == 0


@pytest.mark.parametrize("target_s", [0.37, 1.0, 2.5])
def test_too_short_speech_is_padded_to_exact_length_starting_at_zero(target_s):
    speech = speechlike(0.3)
    out, scale = fit_to_duration(padded(speech, 0.2, 0.2), SR, target_s)
    assert len(out) == round(target_s * SR)
    assert scale == 1.0
    loud = np.flatnonzero(np.abs(out) > 0.01)
    assert loud[0] < 0.03 * SR, "speech must start at the segment start"
    assert np.all(out[len(speech) + round(0.05 * SR) :] == 0)


def test_moderately_long_speech_is_compressed_not_cut():
    speech = speechlike(2.2)
    out, scale = fit_to_duration(padded(speech, 0.1, 0.1), SR, 2.0)
    assert len(out) == round(2.0 * SR)
    assert 0.85 < scale < 0.95  # ~2.2 s of trimmed speech into 2.0 s
    last_loud = np.flatnonzero(np.abs(out) > 0.01)[-1]
    assert last_loud > 1.95 * SR, "compressed speech should fill the segment, not be cut short"
    assert rms(out) == pytest.approx(rms(speech), rel=0.15), "compression must preserve loudness"


def test_far_too_long_speech_is_compressed_at_most_max_extra_then_cut_with_fade():
    speech = speechlike(4.0)
    out, scale = fit_to_duration(speech, SR, 2.0)
    assert len(out) == round(2.0 * SR)
    assert scale == pytest.approx(1 / MAX_EXTRA, rel=0.01)
    assert abs(out[-1]) < 1e-3, "a cut must end in a fade, not a click"
    assert rms(out[: SR]) == pytest.approx(rms(speech[: SR]), rel=0.15)


def test_time_compression_keeps_pitch():
    x = tone(1.0, SR, 200.0)
    y = time_compress(x, SR, 1.25)
    assert len(y) == round(len(x) / 1.25)
    middle = y[len(y) // 4 : 3 * len(y) // 4]
    assert pitch_hz(middle, SR) == pytest.approx(200.0, rel=0.03)  # resampling would give 250 Hz
    assert rms(middle) == pytest.approx(rms(x), rel=0.1)


def test_zero_target_and_silent_input():
    out, _ = fit_to_duration(speechlike(0.5), SR, 0.0)
    assert len(out) == 0
    out, scale = fit_to_duration(np.zeros(SR, np.float32), SR, 0.5)
    assert len(out) == round(0.5 * SR) and not out.any() and scale == 1.0


def test_mouth_track_closed_in_silence_open_in_voice():
    audio = padded(tone(1.0, SR, 180.0), 0.5, 0.5)
    mouth = mouth_track(audio, SR, None, 1.0)
    assert len(mouth) == math.ceil(len(audio) / SR * MOUTH_RATE) == 100
    assert mouth.dtype == np.float32 and mouth.min() >= 0 and mouth.max() <= 1
    assert mouth[:20].max() < 0.05 and mouth[-20:].max() < 0.05
    assert mouth[30:70].mean() > 0.8


def test_mouth_track_length_covers_a_partial_last_frame():
    audio = tone(1.011, SR, 180.0)
    assert len(mouth_track(audio, SR, None, 1.0)) == 51


def test_phoneme_classes():
    assert phoneme_openness("a") == 1.0
    assert phoneme_openness("m") == phoneme_openness("b") == phoneme_openness("p") == 0.0
    assert phoneme_openness("$") == phoneme_openness(".") == 0.0
    assert 0 < phoneme_openness("i") < phoneme_openness("e") < phoneme_openness("a")
    assert phoneme_openness("ˈ") is None and phoneme_openness("ː") is None


def test_phoneme_timings_shut_the_mouth_on_bilabials_despite_energy():
    # "ama": a loud hum throughout, but the lips are shut for the m in the middle
    audio = tone(0.9, SR, 150.0)
    phonemes = (("a", 0.0, 0.3), ("m", 0.3, 0.6), ("a", 0.6, 0.9))
    mouth = mouth_track(audio, SR, phonemes, 1.0)
    energy_only = mouth_track(audio, SR, None, 1.0)
    assert mouth[20:25].max() < 0.1 < energy_only[20:25].min()
    assert mouth[5:12].min() > 0.8 and mouth[35:42].min() > 0.8


def test_phoneme_timings_follow_trim_and_compression():
    # engine output: 0.4 s lead-in, then "a" 0.4-0.8, "m" 0.8-1.2, "a" 1.2-1.6, then silence
    speech = speechlike(1.2)
    raw = padded(speech, 0.4, 0.3)
    phonemes = (("^", 0.0, 0.4), ("a", 0.4, 0.8), ("m", 0.8, 1.2), ("a", 1.2, 1.6), ("$", 1.6, 1.9))
    out, scale = fit_to_duration(raw, SR, 1.0)
    mouth = mouth_track(out, SR, phonemes, scale)
    # after trimming the lead-in and compressing by 1.2, the "m" sits at ~0.33-0.67 s
    assert scale == pytest.approx(1 / 1.2, rel=0.04)  # 1.2 s of speech plus the edges trimming keeps
    m_lo, m_hi = round(0.33 * MOUTH_RATE) + 3, round(0.67 * MOUTH_RATE) - 3
    assert mouth[m_lo:m_hi].max() < 0.15
    assert mouth[3:12].mean() > 0.3 and mouth[38:46].mean() > 0.3
