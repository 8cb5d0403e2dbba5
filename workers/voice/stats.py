"""Pitch and formant statistics of a voice, measured with Praat (parselmouth)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workers.records import VoiceProfile


@dataclass(frozen=True)
class VoiceStats:
    f0_median: float  # Hz; 0 when no voiced frame
    f0_low: float  # 10th percentile
    f0_high: float  # 90th percentile
    formant_1: float  # median F1, Hz
    formant_2: float  # median F2, Hz
    voiced_s: float  # how much voiced speech they were measured on

    @classmethod
    def of(cls, profile: VoiceProfile) -> VoiceStats:
        """The statistics a profile carries (measured on enough voiced speech to be sent)."""
        return cls(profile.f0_median, profile.f0_low, profile.f0_high, profile.formant_1, profile.formant_2, 1.0)

    @property
    def usable(self) -> bool:
        return self.f0_median > 0 and self.formant_1 > 0 and self.formant_2 > 0 and self.voiced_s >= 0.3


def measure(audio: np.ndarray, sample_rate: int) -> VoiceStats:
    """Median pitch (with its 10-90 % range) and median F1/F2 over the voiced frames."""
    import parselmouth

    snd = parselmouth.Sound(np.asarray(audio, np.float64), sample_rate)
    pitch = snd.to_pitch(time_step=0.01, pitch_floor=60.0, pitch_ceiling=500.0)
    f0 = pitch.selected_array["frequency"]
    voiced = f0[f0 > 0]
    if len(voiced) < 5:
        return VoiceStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    formant = snd.to_formant_burg(time_step=0.01, max_number_of_formants=5, maximum_formant=5500.0)
    times = [pitch.xs()[i] for i in np.flatnonzero(f0 > 0)]
    f1 = np.array([formant.get_value_at_time(1, t) for t in times])
    f2 = np.array([formant.get_value_at_time(2, t) for t in times])
    return VoiceStats(float(np.median(voiced)), float(np.percentile(voiced, 10)), float(np.percentile(voiced, 90)),
                      float(np.nanmedian(f1)), float(np.nanmedian(f2)), len(voiced) * 0.01)


def combine(a: VoiceStats | None, b: VoiceStats) -> VoiceStats:
    """Running statistics of one speaker over segments, weighted by voiced time (medians averaged)."""
    if a is None or not a.usable:
        return b
    if not b.usable:
        return a
    wa, wb = a.voiced_s, b.voiced_s
    mix = [(x * wa + y * wb) / (wa + wb) for x, y in zip(
        (a.f0_median, a.f0_low, a.f0_high, a.formant_1, a.formant_2),
        (b.f0_median, b.f0_low, b.f0_high, b.formant_1, b.formant_2), strict=True)]
    return VoiceStats(*mix, voiced_s=wa + wb)
