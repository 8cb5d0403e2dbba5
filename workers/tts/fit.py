"""Fit synthesized speech to the original segment's span, and derive the mouth track from it.

`fit_to_duration` is the last resort after the engine has already changed its
speaking rate: it trims the engine's leading/trailing silence (so the dub
starts when the speaker did), time-compresses what is still too long with
WSOLA (pitch kept: a voice sped up by resampling sounds like a chipmunk), at
most `max_extra` times, cuts the rest with a short fade-out, and pads with
silence to exactly round(target_s * sr) samples.

`mouth_track` gives mouth openness 0..1 at MOUTH_RATE Hz: from phoneme timings
when the engine gives them (open vowels wide, bilabials m/b/p shut, pauses
shut), scaled by the loudness envelope so it closes in silence; from the
envelope alone otherwise. Smoothed, because real lips cannot jump in 20 ms.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence

import numpy as np

MOUTH_RATE = 50.0  # Hz: one openness value per 20 ms, finer than any video frame rate
MAX_EXTRA = 1.25  # time-compression on top of the engine's own speed-up; beyond it speech smears
SILENCE_DB = -40.0  # a 10 ms frame this far below the loudest is silence
ABS_FLOOR = 1e-4  # -80 dBFS: quieter than this is silence even in a quiet recording
EDGE_S = 0.015  # kept before the first / after the last loud frame so onsets and releases survive
FADE_S = 0.03  # fade-out when speech must be cut
WSOLA_FRAME_S = 0.03
WSOLA_TOLERANCE_S = 0.01
ENERGY_RANGE_DB = 30.0  # loudness this far below the utterance's level maps to a closed mouth
SMOOTH = np.array([0.25, 0.5, 0.25])  # ~40 ms low-pass on the track

Phonemes = Sequence[tuple[str, float, float]]


def _frame_rms(audio: np.ndarray, win: int) -> np.ndarray:
    n = len(audio) // win
    if n == 0:
        return np.zeros(0)
    frames = audio[: n * win].astype(np.float64).reshape(n, win)
    return np.sqrt(np.mean(frames**2, axis=1))


def loud_frames(audio: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """Indexes of 10 ms frames that are not silence, and the frame length in samples."""
    win = max(1, sr // 100)
    rms = _frame_rms(audio, win)
    if rms.size == 0:
        return np.zeros(0, int), win
    threshold = max(rms.max() * 10 ** (SILENCE_DB / 20), ABS_FLOOR)
    return np.flatnonzero(rms > threshold), win


def trim_silence(audio: np.ndarray, sr: int) -> np.ndarray:
    """`audio` without its silent lead-in and tail (a few ms kept at each edge); empty if all silent."""
    loud, win = loud_frames(audio, sr)
    if loud.size == 0:
        return audio[:0]
    edge = round(EDGE_S * sr)
    start = max(0, loud[0] * win - edge)
    end = min(len(audio), (loud[-1] + 1) * win + edge)
    return audio[start:end]


def time_compress(audio: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """Play `audio` `factor` times faster at the same pitch (WSOLA); returns round(len / factor) samples.

    Overlap-adds Hann frames at a fixed output hop, each taken near its ideal
    input position where it best continues the previous frame's waveform, so
    pitch periods line up instead of beating.
    """
    x = np.asarray(audio, np.float32)
    out_len = round(len(x) / factor)
    if factor <= 0 or out_len == 0:
        raise ValueError(f"cannot compress {len(x)} samples by {factor}")
    n = max(2, 2 * round(WSOLA_FRAME_S * sr / 2))
    hop = n // 2
    tol = max(1, round(WSOLA_TOLERANCE_S * sr))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)  # periodic Hann: halves overlap-add to 1
    lead = n + tol  # zeros before the signal: every frame, including the first, sees full overlap
    first = round((lead - tol) / factor)  # where input sample 0 lands in the output
    frames = (first + out_len + n) // hop + 2
    last_ideal = tol + math.ceil((frames - 1) * hop * factor)
    xp = np.zeros(max(lead + len(x), last_ideal + tol + n) + n, np.float64)
    xp[lead : lead + len(x)] = x
    y = np.zeros(frames * hop + n)
    prev = None
    for k in range(frames):
        ideal = tol + round(k * hop * factor)
        if prev is None:
            pos = ideal
        else:  # best match for the natural continuation of the previous frame
            template = xp[prev + hop : prev + hop + n]
            region = xp[ideal - tol : ideal + tol + n]
            pos = ideal - tol + int(np.argmax(np.correlate(region, template, "valid")))
        y[k * hop : k * hop + n] += xp[pos : pos + n] * window
        prev = pos
    return y[first : first + out_len].astype(np.float32)


def fit_to_duration(
    audio: np.ndarray, sr: int, target_s: float, max_extra: float = MAX_EXTRA
) -> tuple[np.ndarray, float]:
    """Exactly round(target_s * sr) samples of speech starting at 0, and the time scale applied.

    `scale` maps a time in the trimmed speech to a time in the result
    (t_fit = t * scale; < 1 when compressed, 1 otherwise).
    """
    if sr <= 0:
        raise ValueError(f"invalid sample rate {sr}")
    n_target = max(0, round(target_s * sr))
    x = trim_silence(np.asarray(audio, np.float32).ravel(), sr)
    scale = 1.0
    if len(x) > n_target > 0:
        factor = min(len(x) / n_target, max_extra)
        if factor > 1.001:
            before = len(x)
            x = time_compress(x, sr, factor)
            scale = len(x) / before
    if len(x) > n_target:
        x = x[:n_target].copy()
        fade = min(len(x), round(FADE_S * sr))
        if fade:
            x[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    out = np.zeros(n_target, np.float32)
    out[: len(x)] = x
    return out, scale


# -- mouth ---------------------------------------------------------------------------------------

_PAUSES = "^$_.,;:!?¡¿…—-\"'()"  # sentence start/end markers and punctuation: no sound
_OPENNESS: dict[str, float] = {
    **dict.fromkeys("aɑæɐɒɔʌɶ", 1.0),  # open vowels
    **dict.fromkeys("eɛoəɜɚɝøœɵɘɤɞ", 0.7),  # mid vowels
    **dict.fromkeys("iuɪʊyɨʉɯʏᵻ", 0.45),  # close vowels
    **dict.fromkeys("mbpɸβʙ", 0.0),  # bilabials: lips shut
    **dict.fromkeys("fvɱ", 0.15),  # labiodentals: lip on teeth
    **dict.fromkeys("wɥʍ", 0.2),  # rounded glides
    **dict.fromkeys(_PAUSES, 0.0),
    " ": 0.2,  # word boundary: lips relax, rarely shut
}
_CONSONANT = 0.3
_STRESS = "ˈˌ"  # belongs to the following phoneme
_LENGTH = "ːˑʰʲʷˠˤ̃"  # belongs to the preceding phoneme


def phoneme_openness(phoneme: str) -> float | None:
    """Mouth openness for one phoneme; None for marks that only modify a neighbour."""
    base = next((c for c in phoneme if not unicodedata.combining(c)), "")
    if not base or base in _STRESS or base in _LENGTH:
        return None
    return _OPENNESS.get(base.lower(), _CONSONANT)


def _sounds(phoneme: str) -> bool:
    """A phoneme that makes sound (not a pause, word gap or modifier mark)."""
    return phoneme_openness(phoneme) is not None and phoneme[:1] not in _PAUSES + " "


def _phoneme_values(phonemes: Phonemes) -> list[float]:
    """Openness per phoneme, marks taking their neighbour's value (stress: next; length: previous)."""
    raw = [phoneme_openness(p) for p, _, _ in phonemes]
    out = list(raw)
    for i, (p, _, _) in enumerate(phonemes):
        if out[i] is None:
            step = 1 if p[:1] in _STRESS else -1
            j = i + step
            while 0 <= j < len(raw) and raw[j] is None:
                j += step
            out[i] = raw[j] if 0 <= j < len(raw) else 0.0
    return [float(v) for v in out]


def energy_envelope(audio: np.ndarray, sr: int, n: int) -> np.ndarray:
    """Loudness per MOUTH_RATE bin in 0..1: 1 at the utterance's typical level, 0 at or below -30 dB."""
    hop = sr / MOUTH_RATE
    edges = np.minimum(np.round(np.arange(n + 1) * hop).astype(int), len(audio))
    sq = np.concatenate([[0.0], np.cumsum(np.asarray(audio, np.float64) ** 2)])
    counts = np.maximum(edges[1:] - edges[:-1], 1)
    rms = np.sqrt((sq[edges[1:]] - sq[edges[:-1]]) / counts)
    voiced = rms[rms > ABS_FLOOR * 10]
    if voiced.size == 0:
        return np.zeros(n)
    ref = np.percentile(voiced, 90)
    db = 20 * np.log10(np.maximum(rms, 1e-10) / ref)
    env = np.clip((db + ENERGY_RANGE_DB) / ENERGY_RANGE_DB, 0.0, 1.0)
    env[rms <= ABS_FLOOR * 10] = 0.0
    return env


LOUDNESS_POWER = 0.7  # mouth opening ~ amplitude^0.7: follows loudness, quiet consonants still part the lips


def loudness(audio: np.ndarray, sr: int, n: int) -> np.ndarray:
    """How open loudness alone would set the mouth, per MOUTH_RATE bin, 0..1 (1 at the utterance's
    typical loud level). Amplitude-like rather than dB-like: measured against the dub's envelope,
    (rms/ref)^0.7 tracks it at r = 0.85 where the 30 dB log mapping reached 0.76."""
    hop = sr / MOUTH_RATE
    edges = np.minimum(np.round(np.arange(n + 1) * hop).astype(int), len(audio))
    sq = np.concatenate([[0.0], np.cumsum(np.asarray(audio, np.float64) ** 2)])
    rms = np.sqrt((sq[edges[1:]] - sq[edges[:-1]]) / np.maximum(edges[1:] - edges[:-1], 1))
    voiced = rms[rms > ABS_FLOOR * 10]
    if voiced.size == 0:
        return np.zeros(n)
    out = np.clip(rms / np.percentile(voiced, 90), 0.0, 1.0) ** LOUDNESS_POWER
    out[rms <= ABS_FLOOR * 10] = 0.0
    return out


def _anchor_s(audio: np.ndarray, sr: int, phonemes: Phonemes, scale: float) -> float:
    """Shift from scaled phoneme time to fitted-audio time.

    The fitter trimmed an unknown lead-in, so the first sounding phoneme is
    pinned to the first loud frame of the fitted audio.
    """
    first = next((start for p, start, _ in phonemes if _sounds(p)), None)
    loud, win = loud_frames(audio, sr)
    if first is None or loud.size == 0:
        return 0.0
    shift = loud[0] * win / sr - first * scale
    return min(shift, 0.05)  # only a lead-in was removed: the speech never starts later than timed


def phoneme_track(phonemes: Phonemes, values: list[float], n: int, scale: float, shift: float) -> np.ndarray:
    """Time-weighted mean openness of the phonemes overlapping each bin."""
    acc, weight = np.zeros(n), np.zeros(n)
    for (_, start, end), value in zip(phonemes, values, strict=True):
        a, b = (start * scale + shift) * MOUTH_RATE, (end * scale + shift) * MOUTH_RATE
        lo, hi = max(0, math.floor(a)), min(n, math.ceil(b))
        for i in range(lo, hi):
            overlap = min(b, i + 1) - max(a, i)
            if overlap > 0:
                acc[i] += value * overlap
                weight[i] += overlap
    return np.divide(acc, weight, out=np.zeros(n), where=weight > 0)


# Lip rounding per phoneme: +1 rounded (o, u, w: lips pushed together into a small round
# opening), -1 spread (i, e: lips stretched wide), 0 neutral (a, schwa, most consonants).
_ROUNDING: dict[str, float] = {
    **dict.fromkeys("oɔuʊyʏøœɒɵʉwɥʍɞ", 1.0),
    **dict.fromkeys("iɪeɛæjɨ", -1.0),
}


def phoneme_rounding(phoneme: str) -> float | None:
    base = next((c for c in phoneme if not unicodedata.combining(c)), "")
    if not base or base in _STRESS or base in _LENGTH:
        return None
    return _ROUNDING.get(base.lower(), 0.0)


ROUND_SMOOTH = np.hanning(7)[1:-1] / np.hanning(7)[1:-1].sum()  # ~100 ms: lips round slower than they open


def spectral_rounding(audio: np.ndarray, sr: int, n: int) -> np.ndarray:
    """Rounding from audio alone: front vowels (spread lips) put energy at 1.5-3.5 kHz (a high second
    formant), rounded back vowels keep it below 1 kHz; their log ratio maps to -1..1, 0 when quiet."""
    hop = sr / MOUTH_RATE
    win = int(2 * hop)
    out = np.zeros(n)
    if len(audio) < win or sr < 8000:
        return out
    freqs = np.fft.rfftfreq(win, 1 / sr)
    low = (freqs >= 250) & (freqs < 1000)
    high = (freqs >= 1500) & (freqs < 3500)
    window = np.hanning(win)
    energy = energy_envelope(audio, sr, n)
    for i in range(n):
        a = int(i * hop)
        frame = audio[a : a + win]
        if len(frame) < win or energy[i] < 0.3:
            continue
        spec = np.abs(np.fft.rfft(frame * window)) ** 2
        ratio = np.log10((spec[high].sum() + 1e-12) / (spec[low].sum() + 1e-12))
        out[i] = np.clip(-(ratio + 0.6) / 0.6, -1.0, 1.0)  # ratio -1.2 (back, round) .. 0 (front, spread)
    return out


def rounding_track(audio: np.ndarray, sr: int, phonemes: Phonemes | None, scale: float) -> np.ndarray:
    """Lip rounding -1 (spread) .. 1 (round) at MOUTH_RATE Hz, aligned with `mouth_track`."""
    audio = np.asarray(audio, np.float32).ravel()
    n = math.ceil(len(audio) * MOUTH_RATE / sr - 1e-9) if sr > 0 else 0
    if n == 0:
        return np.zeros(0, np.float32)
    if phonemes:
        raw = [phoneme_rounding(p) for p, _, _ in phonemes]
        values = [float(v) if v is not None else 0.0 for v in raw]
        track = phoneme_track(phonemes, values, n, scale, _anchor_s(audio, sr, phonemes, scale))
    else:
        track = spectral_rounding(audio, sr, n)
    padded = np.pad(track, len(ROUND_SMOOTH) // 2, mode="edge")
    return np.clip(np.convolve(padded, ROUND_SMOOTH, "valid"), -1.0, 1.0).astype(np.float32)


def mouth_track(audio: np.ndarray, sr: int, phonemes: Phonemes | None, scale: float) -> np.ndarray:
    """Mouth openness 0..1 at MOUTH_RATE Hz, ceil(duration * MOUTH_RATE) values covering `audio`.

    `phonemes` are (phoneme, start_s, end_s) in the engine's untrimmed timing;
    `scale` is what `fit_to_duration` returned.
    """
    audio = np.asarray(audio, np.float32).ravel()
    n = math.ceil(len(audio) * MOUTH_RATE / sr - 1e-9) if sr > 0 else 0
    if n == 0:
        return np.zeros(0, np.float32)
    energy = loudness(audio, sr, n)
    if phonemes:
        values = _phoneme_values(phonemes)
        shift = _anchor_s(audio, sr, phonemes, scale)
        track = phoneme_track(phonemes, values, n, scale, shift) * np.sqrt(energy)
    else:
        track = energy
    padded = np.pad(track, 1, mode="edge")
    return np.clip(np.convolve(padded, SMOOTH, "valid"), 0.0, 1.0).astype(np.float32)
