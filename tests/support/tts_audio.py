"""Speech from the real TTS backends, at the rate a consumer wants (ASR needs 16 kHz).

    audio = synth_at(piper, "The quick brown fox.", "en", 16000)
"""

from __future__ import annotations

import numpy as np
import soxr

from workers.tts.fit import trim_silence
from workers.tts.stage import TtsBackend


def synth_at(backend: TtsBackend, text: str, lang: str, rate: int, *, speed: float = 1.0) -> np.ndarray:
    """`text` spoken by `backend`, silence trimmed, resampled to `rate` (float32 mono)."""
    syn = backend.synthesize(text, lang, speed)
    audio = trim_silence(syn.audio, syn.sample_rate)
    if syn.sample_rate != rate:
        audio = soxr.resample(audio, syn.sample_rate, rate)
    return np.ascontiguousarray(audio, dtype=np.float32)


def tone(seconds: float, rate: int, hz: float, amp: float = 0.5) -> np.ndarray:
    """A sine: a stand-in 'vowel' whose pitch and loudness are known exactly."""
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def pitch_hz(audio: np.ndarray, rate: int, fmin: float = 60.0, fmax: float = 500.0) -> float:
    """Dominant pitch by autocorrelation (enough for tones and sustained vowels)."""
    x = audio - audio.mean()
    corr = np.correlate(x, x, "full")[len(x) - 1 :]
    lo, hi = int(rate / fmax), int(rate / fmin)
    return rate / (lo + int(np.argmax(corr[lo:hi])))


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
