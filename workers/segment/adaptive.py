"""Context-adaptive silence detection: frame speech probabilities -> speech segments.

Downstream stages want segments that are whole phrases (ASR and MT need context,
TTS needs room to fit) but short enough to keep latency low. A fixed pause
threshold cannot give both, so the pause that closes a segment depends on how
long the segment already is. The rule, per frame of `frame_samples` samples
(all durations are the `SegmentSettings` fields, documented in settings.py):

1. Hysteresis. A frame is speech once its probability reaches `threshold`, and
   stays speech until a probability falls below `neg_threshold`.
2. A segment opens at the first speech frame, `pad_s` before it (never
   overlapping audio already emitted).
3. Its *span* L runs from its first to its last speech frame; the pause is the
   silence since the last speech frame. The pause needed to close it shrinks
   linearly from `pause_long_s` at L = `min_segment_s` to `pause_short_s` at
   L = `max_segment_s`: a long segment closes at the next breath, a short one
   waits for a real break.
4. A segment with L < `min_segment_s` is not closed by a pause (a following
   phrase joins it) unless the pause exceeds 2 * `pause_long_s`.
5. A segment with less than `min_speech_s` of speech frames in total is never
   emitted: it is dropped as noise (a click, a cough) when it would close.
   A short real utterance followed by a long silence is emitted by rule 4.
6. When a segment's audio reaches `max_segment_s`, it is cut in the last
   `search_window_s` at the lowest-energy frame (energy smoothed over 3 frames,
   which favours real breaths over stop consonants), precisely at the quietest
   10 ms in and around that frame, since gaps between words are shorter than
   a VAD frame; reason "max_length". The remainder starts the next segment
   with no gap, so no audio is lost mid-sentence.
7. A closed segment keeps `pad_s` of audio after its last speech frame (less
   if the pause was shorter) and is emitted at once, reason "pause".
8. `finish()` emits the open segment (reason "end_of_stream") by rule 5.
9. `cut_at(sample)` ends the open segment at the quietest 10 ms near `sample` (reason
   "speaker_change": the stage found another voice there) and the rest opens the next one.

Memory is bounded: only the open segment's frames (at most `max_segment_s`)
or, between segments, the last `pad_s` of audio are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workers.errors import BadInputError, ConfigError
from workers.settings import SegmentSettings


@dataclass(frozen=True, slots=True)
class Cut:
    """A closed segment: samples [start, end) of the 16 kHz session clock, and that audio."""

    start: int
    end: int
    audio: np.ndarray
    reason: str  # "pause" | "max_length" | "end_of_stream"


@dataclass(slots=True)
class _Open:
    """The segment being grown; sample indices on the session clock."""

    start: int  # first audio sample (pre-padding included)
    speech_start: int
    speech_end: int  # end of the last speech frame
    speech: int  # samples of speech frames in total


class AdaptiveSegmenter:
    """Streaming implementation of the rule above for one session."""

    def __init__(self, settings: SegmentSettings, sample_rate: int, frame_samples: int) -> None:
        if sample_rate <= 0 or frame_samples <= 0:
            raise ConfigError(f"bad VAD framing: {frame_samples} samples at {sample_rate} Hz")
        self.settings = settings
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples

        def n(seconds: float) -> int:
            return round(seconds * sample_rate)

        self._pad = n(settings.pad_s)
        self._min_speech = n(settings.min_speech_s)
        self._min_segment = n(settings.min_segment_s)
        self._max_segment = max(n(settings.max_segment_s), 2 * frame_samples)
        self._pause_long = n(settings.pause_long_s)
        self._pause_short = n(settings.pause_short_s)
        self._window = max(n(settings.search_window_s), frame_samples)
        # Frames still needed (open segment or pre-padding history); _first is the index of _frames[0].
        self._frames: list[np.ndarray] = []
        self._energy: list[float] = []
        self._is_speech: list[bool] = []
        self._first = 0
        self._count = 0  # frames pushed so far
        self._triggered = False
        self._emitted_end = 0
        self._open: _Open | None = None
        self._finished = False

    # -- public ----------------------------------------------------------
    @property
    def safe_until_s(self) -> float:
        """Media time before which every segment has been emitted (nothing later can start earlier)."""
        now = self._count * self.frame_samples
        if self._finished:
            return now / self.sample_rate
        if self._open is not None:
            return self._open.start / self.sample_rate
        return max(self._emitted_end, now - self._pad, 0) / self.sample_rate

    @property
    def buffered_samples(self) -> int:
        """Audio held right now (what bounds this object's memory)."""
        return len(self._frames) * self.frame_samples

    def pause_needed_s(self, span_s: float) -> float | None:
        """Pause that closes a segment whose speech spans `span_s`; None below min_segment_s (rule 4)."""
        needed = self._pause_needed(round(span_s * self.sample_rate))
        return None if needed is None else needed / self.sample_rate

    def push(self, frame: np.ndarray, prob: float) -> list[Cut]:
        """Feed the next frame and its speech probability; returns the segments this closed."""
        F = self.frame_samples
        if len(frame) != F:
            raise BadInputError(f"VAD frame of {len(frame)} samples, expected {F}")
        if self._finished:
            raise BadInputError("push() after finish()")
        frame = np.array(frame, dtype=np.float32)  # own copy: callers may reuse their buffer
        f0 = self._count * F
        now = f0 + F
        self._count += 1
        self._frames.append(frame)
        self._energy.append(float(np.dot(frame, frame)) / F)
        if prob >= self.settings.threshold:
            self._triggered = True
        elif prob < self.settings.neg_threshold:
            self._triggered = False
        self._is_speech.append(self._triggered)

        cuts: list[Cut] = []
        seg = self._open
        if self._triggered:
            if seg is None:
                start = max(f0 - self._pad, self._emitted_end, self._first * F)
                self._open = _Open(start=start, speech_start=f0, speech_end=now, speech=F)
            else:
                seg.speech_end = now
                seg.speech += F
        elif seg is not None:
            cuts += self._close_on_pause(seg, now)
        if self._open is not None and now - self._open.start >= self._max_segment:
            cuts += self._cut_at_minimum(self._open, now)
        self._trim(now)
        return cuts

    def open_audio(self) -> tuple[int, np.ndarray] | None:
        """(first sample, audio) of the open segment up to now, or None when none is open."""
        if self._open is None:
            return None
        now = self._count * self.frame_samples
        return self._open.start, self._slice(self._open.start, now)

    def cut_at(self, sample: int, search: int | None = None) -> list[Cut]:
        """End the open segment near `sample` (a speaker change); the rest opens the next segment."""
        seg = self._open
        F = self.frame_samples
        now = self._count * F
        search = search if search is not None else round(0.3 * self.sample_rate)
        if seg is None or not seg.start + F < sample < now - F:
            return []
        cut = self._quietest_point(max(seg.start + F, sample - search), min(now - F, sample + search), sample)
        return self._split(seg, cut, "speaker_change")

    def finish(self) -> list[Cut]:
        """End of stream: emit the open segment if it holds enough speech."""
        if self._finished:
            return []
        self._finished = True
        seg, self._open = self._open, None
        if seg is None or seg.speech < self._min_speech:
            return []
        now = self._count * self.frame_samples
        return [self._emit(seg.start, min(seg.speech_end + self._pad, now), "end_of_stream")]

    # -- rule ------------------------------------------------------------
    def _pause_needed(self, span: int) -> int | None:
        if span < self._min_segment:
            return None
        if self._max_segment <= self._min_segment:
            return self._pause_short
        frac = min(1.0, (span - self._min_segment) / (self._max_segment - self._min_segment))
        return round(self._pause_long + frac * (self._pause_short - self._pause_long))

    def _close_on_pause(self, seg: _Open, now: int) -> list[Cut]:
        pause = now - seg.speech_end
        needed = self._pause_needed(seg.speech_end - seg.speech_start)
        if needed is None:
            needed = 2 * self._pause_long  # rule 4: only a very long pause closes a short segment
        if pause < needed:
            return []
        self._open = None
        if seg.speech < self._min_speech:
            return []  # rule 5: noise
        return [self._emit(seg.start, min(seg.speech_end + self._pad, now), "pause")]

    def _cut_at_minimum(self, seg: _Open, now: int) -> list[Cut]:
        F = self.frame_samples
        lo = max(now - self._window, seg.start + 1)
        energy = np.asarray(self._energy)
        smooth = np.convolve(np.pad(energy, 1, mode="edge"), np.ones(3) / 3, mode="valid")
        centres = (self._first + np.arange(len(energy))) * F + F // 2
        candidates = np.flatnonzero((centres >= lo) & (centres < now))
        if len(candidates) == 0:  # window narrower than a frame: cut at the newest frame
            candidates = np.array([len(energy) - 1])
        # lowest energy; among equals the latest, so the emitted part is as long as allowed
        best = int(candidates[len(candidates) - 1 - int(np.argmin(smooth[candidates][::-1]))])
        cut = self._quietest_point(
            max(lo, (self._first + best - 1) * F), min(now, (self._first + best + 2) * F), int(centres[best])
        )
        return self._split(seg, cut, "max_length")

    def _split(self, seg: _Open, cut: int, reason: str) -> list[Cut]:
        """Emit [seg.start, cut); the remainder [cut, now) becomes the open segment if it holds speech."""
        F = self.frame_samples
        best = cut // F - self._first
        rest_speech, first_sp, last_sp = 0, None, None
        for i in range(best, len(self._is_speech)):
            if self._is_speech[i]:
                a, b = max((self._first + i) * F, cut), (self._first + i + 1) * F
                rest_speech += b - a
                first_sp = a if first_sp is None else first_sp
                last_sp = b
        head_speech = seg.speech - rest_speech
        out = [self._emit(seg.start, cut, reason)] if head_speech >= self._min_speech else []
        self._emitted_end = cut
        if first_sp is None or last_sp is None:
            self._open = None
        else:
            self._open = _Open(start=cut, speech_start=first_sp, speech_end=last_sp, speech=rest_speech)
        return out

    def _quietest_point(self, start: int, end: int, fallback: int) -> int:
        """Centre of the quietest 10 ms in [start, end): word gaps are shorter than VAD frames."""
        win = max(1, min(self.frame_samples, self.sample_rate // 100))
        if end - start <= win:
            return fallback
        power = np.concatenate([[0.0], np.cumsum(self._slice(start, end).astype(np.float64) ** 2)])
        moving = power[win:] - power[:-win]
        return start + len(moving) - 1 - int(np.argmin(moving[::-1])) + win // 2

    # -- buffer ----------------------------------------------------------
    def _emit(self, start: int, end: int, reason: str) -> Cut:
        self._emitted_end = end
        return Cut(start=start, end=end, audio=self._slice(start, end), reason=reason)

    def _slice(self, start: int, end: int) -> np.ndarray:
        F = self.frame_samples
        i0 = start // F - self._first
        i1 = math.ceil(end / F) - self._first
        if i0 < 0 or i1 > len(self._frames) or end <= start:
            raise AssertionError(f"segment [{start}, {end}) outside the kept audio")  # a bug here, not input
        joined = np.concatenate(self._frames[i0:i1])
        offset = start - (self._first + i0) * F
        return joined[offset : offset + end - start].copy()

    def _trim(self, now: int) -> None:
        """Drop frames no future segment can include."""
        F = self.frame_samples
        keep_from = self._open.start if self._open is not None else max(self._emitted_end, now - self._pad)
        drop = max(0, min(keep_from // F - self._first, len(self._frames)))
        if drop:
            del self._frames[:drop], self._energy[:drop], self._is_speech[:drop]
            self._first += drop
