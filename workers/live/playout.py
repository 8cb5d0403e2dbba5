"""Playout of one live participant: their original delayed by a constant D, the dub on its timing.

A dub fitted to the original timing can only be played once it exists, a segment's length plus
the pause that ends it plus processing after its speech began. So the listener gets the
speaker's audio and video delayed by a constant D (as with an interpreter), and inside each
dubbed span the dubbed speech (the original ducked under it) and the re-animated frames. A
steady delay is acceptable in a call; a stalling or drifting one is not, so:

* playout runs on the wall clock: source time p (seconds since the participant's first media)
  goes out at t0 + p + D, whatever has or has not arrived;
* a segment's dub is played only if its speech arrived before playout reached the segment's
  start; otherwise the original plays for that span and the segment counts as late;
* a late segment or frame raises D (up to `max_delay_s`) to what it would have needed plus a
  margin; the rise is applied between dubbed spans, as a short silence with the picture held;
* audio and video leave in the same step (10 ms), so a dubbed track keeps them in sync.

Pure logic, no network: the bot (workers/live/bot.py) feeds it and publishes what it returns.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import soxr

from workers.media.files import duck_gain, duck_ramp
from workers.records import DubbedFrame, DubbedSpeech, VideoFrame

RATE = 48000  # WebRTC's audio rate: what the participant's track delivers and the dub goes out at
STEP = RATE // 100  # 10 ms, as a microphone delivers audio
GAP_S = 0.2  # input arriving later than this after where it should be: a gap in the source (muted, lost)


@dataclass
class PlayoutStats:
    """What happened to one language's segments; exported as metrics by the bot."""

    dubbed: int = 0  # segments played dubbed
    late: int = 0  # segments whose speech came after their span had started: original played
    late_frames: int = 0  # re-animated frames that came after their time: original shown
    underflow_s: float = 0.0  # source audio that had not arrived when due (played as silence)


@dataclass
class _Span:
    start: int  # source sample index
    end: int
    dub: np.ndarray  # float32 at RATE, end - start samples
    gain: np.ndarray  # the original's gain over the span (ducked, with ramps at the edges)


@dataclass
class _Lang:
    pending: dict[int, _Span] = field(default_factory=dict)  # arrived, not yet started
    playing: list[_Span] = field(default_factory=list)
    frames: dict[int, np.ndarray | None] = field(default_factory=dict)  # pts (ms) -> re-animated (None: as is)
    played: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=16))  # spans played dubbed
    stats: PlayoutStats = field(default_factory=PlayoutStats)


@dataclass
class Step:
    """One 10 ms step of output for every language."""

    audio: dict[str, np.ndarray]  # float32 at RATE, STEP samples
    frames: dict[str, list[np.ndarray]]  # BGR frames due in this step, in order
    pts_s: float  # source time of the step's first sample (-1 in a delay rise: silence)


class Playout:
    """One participant's original media and dubs, played out per target language at a delay D."""

    def __init__(
        self, langs: tuple[str, ...], delay_s: float, *, max_delay_s: float, margin_s: float = 0.3,
        duck_db: float = -30.0, ramp_s: float = 0.04,
    ) -> None:
        self.langs = langs
        self.delay_s = delay_s
        self.max_delay_s = max(max_delay_s, delay_s)
        self.margin_s = margin_s
        self.duck = duck_gain(duck_db)
        self.ramp = round(ramp_s * RATE)
        self.t0: float | None = None  # wall clock of source time 0
        self.head = 0  # source sample index of the next output sample
        self._want_delay = delay_s
        self._d0 = delay_s
        self._out = 0  # output samples stepped so far (source samples plus delay rises)
        self._gap = 0  # output samples of silence still owed to a delay rise
        self._src = np.zeros(0, np.float32)
        self._src_start = 0  # source sample index of _src[0]
        self._src_end = 0  # source samples that have arrived (or were filled as a gap)
        self._frames: deque[tuple[float, np.ndarray]] = deque()  # original frames not yet played
        self._lang = {lang: _Lang() for lang in langs}
        self.ended = False
        self._lock = threading.Lock()

    # -- input ------------------------------------------------------------------------------
    def _start(self, t0: float) -> None:
        if self.t0 is None:
            self.t0 = t0

    def add_audio(self, samples: np.ndarray, arrived_at: float) -> list[tuple[float, np.ndarray]]:
        """Source audio (float32 at RATE) that arrived at `arrived_at`; returns what the pipeline
        should get as (pts_s, samples): the audio itself, after silence for any gap before it."""
        with self._lock:
            self._start(arrived_at - len(samples) / RATE)
            at = round((arrived_at - self.t0) * RATE) - len(samples)  # where the wall clock puts it
            out = []
            if at - self._src_end > GAP_S * RATE:  # nothing came for a while: the source was silent
                fill = np.zeros(at - self._src_end, np.float32)
                out.append((self._src_end / RATE, fill))
                self._append(fill)
            out.append((self._src_end / RATE, samples))
            self._append(samples.astype(np.float32, copy=False))
            return out

    def _append(self, samples: np.ndarray) -> None:
        self._src = np.concatenate([self._src, samples])
        self._src_end += len(samples)

    def add_frame(self, img: np.ndarray, arrived_at: float) -> float:
        """An original frame (BGR) that arrived at `arrived_at`; returns its source time."""
        with self._lock:
            self._start(arrived_at)
            pts = max(0.0, arrived_at - self.t0)
            if self._frames and pts <= self._frames[-1][0]:
                pts = self._frames[-1][0] + 1e-3
            self._frames.append((pts, img))
            return pts

    def add_speech(self, lang: str, sp: DubbedSpeech, arrived_at: float) -> bool:
        """A segment's dub; False (and counted late, D raised) when its span has already started."""
        start, end = round(sp.start_s * RATE), round(sp.end_s * RATE)
        dub = sp.samples()
        if sp.sample_rate != RATE:
            dub = soxr.resample(dub, sp.sample_rate, RATE).astype(np.float32)
        dub = np.pad(dub, (0, max(0, end - start - len(dub))))[: end - start]
        n = end - start
        down = min(self.ramp, n // 2)
        gain = np.full(n, self.duck, np.float32)
        gain[:down] = duck_ramp(down, self.duck)
        gain[n - down:] = duck_ramp(down, self.duck)[::-1]
        with self._lock:
            state = self._lang[lang]
            if start < self.head or self.t0 is None:
                state.stats.late += 1
                self._late(arrived_at, sp.start_s)
                return False
            state.pending[sp.seq] = _Span(start, end, dub, gain)
            return True

    def add_frames(self, lang: str, frames: list[VideoFrame | DubbedFrame], arrived_at: float) -> None:
        """Frames the lip-sync step returned: re-animated (DubbedFrame) or passed through as they were."""
        from workers.media.frames import decode_frame

        with self._lock:
            state = self._lang[lang]
            played = self.head / RATE
            for f in frames:
                if f.pts_s < played:
                    # too late to show; it mattered only inside a span that played dubbed (a transport
                    # may send the frames around the spans, as they were, long after their time)
                    if isinstance(f, DubbedFrame) and any(a <= f.pts_s * RATE < b for a, b in state.played):
                        state.stats.late_frames += 1
                        self._late(arrived_at, f.pts_s)
                    continue
                state.frames[_key(f.pts_s)] = decode_frame(f) if isinstance(f, DubbedFrame) else None

    def _late(self, arrived_at: float, pts_s: float) -> None:
        """Something for source time `pts_s` came at `arrived_at`: the delay it would have needed."""
        if self.t0 is not None:
            need = arrived_at - (self.t0 + pts_s) + self.margin_s
            self._want_delay = min(self.max_delay_s, max(self._want_delay, need))

    def end(self) -> None:
        """The participant's media ended: play out what is buffered, then stop."""
        with self._lock:
            self.ended = True

    # -- output -----------------------------------------------------------------------------
    def due_at(self) -> float | None:
        """Wall time the next step should go out (None before any media)."""
        with self._lock:
            if self.t0 is None:
                return None
            return self.t0 + self._d0 + self._out / RATE

    def next_frame_due(self) -> float | None:
        """Wall time the next original frame goes out (None: none buffered)."""
        with self._lock:
            if self.t0 is None or not self._frames:
                return None
            return self.t0 + self._d0 + self._out / RATE + self._frames[0][0] - self.head / RATE

    def next_frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the next original frame (None: none buffered)."""
        with self._lock:
            return (self._frames[0][1].shape[1], self._frames[0][1].shape[0]) if self._frames else None

    @property
    def done(self) -> bool:
        with self._lock:
            return self.ended and self.head >= self._src_end and not any(
                s.pending or s.playing for s in self._lang.values())

    def step(self) -> Step:
        """The next 10 ms for every language; call it at `due_at()`."""
        with self._lock:
            self._out += STEP
            if self._gap <= 0 and self._want_delay > self.delay_s and not self._in_span():
                self._gap = -(-round((self._want_delay - self.delay_s) * RATE) // STEP) * STEP
                self.delay_s += self._gap / RATE
            if self._gap > 0:  # a delay rise: silence, the picture held
                self._gap -= STEP  # source time stands still
                return Step({lang: np.zeros(STEP, np.float32) for lang in self.langs},
                            {lang: [] for lang in self.langs}, -1.0)
            lo, hi = self.head, self.head + STEP
            src = self._source(lo, hi)
            due = []
            while self._frames and self._frames[0][0] < hi / RATE:
                due.append(self._frames.popleft())
            audio, frames = {}, {}
            for lang, state in self._lang.items():
                for seq in [q for q, s in state.pending.items() if s.start < hi]:
                    span = state.pending.pop(seq)
                    state.playing.append(span)
                    state.played.append((span.start, span.end))
                    state.stats.dubbed += 1
                out = src.copy()
                for s in state.playing:
                    a, b = max(lo, s.start), min(hi, s.end)
                    if a < b:
                        out[a - lo:b - lo] = src[a - lo:b - lo] * s.gain[a - s.start:b - s.start] \
                            + s.dub[a - s.start:b - s.start]
                audio[lang] = out
                frames[lang] = [self._frame(state, pts, img) for pts, img in due]
                state.playing = [s for s in state.playing if s.end > hi]
                for k in [k for k in state.frames if k < _key(hi / RATE) - 1000]:
                    del state.frames[k]  # re-animated frames of spans that fell back to the original
            self.head = hi
            return Step(audio, frames, lo / RATE)

    def _frame(self, state: _Lang, pts: float, img: np.ndarray) -> np.ndarray:
        k = _key(pts)
        inside = any(s.start <= pts * RATE < s.end for s in state.playing)
        if k in state.frames:
            dubbed = state.frames.pop(k)
            return dubbed if inside and dubbed is not None else img
        if inside:
            state.stats.late_frames += 1
        return img

    def _in_span(self) -> bool:
        return any(s.playing or any(p.start < self.head + STEP for p in s.pending.values())
                   for s in self._lang.values())

    def _source(self, lo: int, hi: int) -> np.ndarray:
        """Source samples [lo, hi) (silence where they have not arrived), dropping what is older."""
        if hi > self._src_end and not self.ended:
            for state in self._lang.values():
                state.stats.underflow_s += (hi - max(lo, self._src_end)) / RATE
        out = np.zeros(hi - lo, np.float32)
        a, b = max(lo, self._src_start), min(hi, self._src_end)
        if a < b:
            out[a - lo:b - lo] = self._src[a - self._src_start:b - self._src_start]
        drop = max(0, min(hi, self._src_end) - self._src_start)
        self._src, self._src_start = self._src[drop:], self._src_start + drop
        return out

    def stats(self, lang: str) -> PlayoutStats:
        with self._lock:
            return PlayoutStats(**vars(self._lang[lang].stats))


def _key(pts_s: float) -> int:
    return round(pts_s * 1000)
