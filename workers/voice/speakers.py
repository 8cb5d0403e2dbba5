"""Who speaks: speaker changes inside the stream, and a label per speaker of a session.

* Changes. Two people can take turns with pauses shorter than any pause rule (a real dialogue
  we tried: four turns, gaps under 0.3 s, two segments), so the open segment is also watched for
  a change of voice: every HOP_S, the GE2E embeddings of the WINDOW_S before and after a point
  are compared; where their cosine has a local minimum below CHANGE_COS, the segment is cut
  there (at the quietest 10 ms nearby). Calibrated on made dialogues of three voices (Piper's
  joe, espeak's en+f3 and en+m3, gaps of 0.12-0.28 s): with 1.2 s windows the cosine across a
  turn was at most 0.63 and within one speaker at least 0.75 (1.0 s windows overlapped:
  0.59 / 0.61). A change is therefore seen about WINDOW_S after it happened.
* Labels. Each segment's embedding joins the session speaker whose running centroid it is
  closest to, if the cosine reaches SAME_SPEAKER_COS, else it starts a new speaker (S1, S2...);
  each speaker keeps running voice statistics (pitch, formants) for the dub's voice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workers.records import VoiceProfile
from workers.voice.spectrum import combine as combine_spectra
from workers.voice.stats import VoiceStats, combine

WINDOW_S = 1.2
HOP_S = 0.4  # WINDOW_S is a whole number of hops (windows start on one grid); 0.2 cost 23 % of a core
CHANGE_COS = 0.68
# The dip's lowest boundary is on the hop grid and on the made dialogue (workers/bench/speaker_turns.py)
# was up to 0.5 s off the turn (the windows' noise): the cut goes to the longest pause within
# LOCATE_S of it. Cutting at the quietest 10 ms within 0.3 s missed one turn in seven by 0.57 s.
LOCATE_S = 0.6
PAUSE_DB = 25.0  # a pause: 20 ms frames this far below the loudest nearby, for at least 60 ms
SAME_SPEAKER_COS = 0.7
MAX_SPEAKERS = 8


@dataclass
class Speaker:
    label: str
    centroid: np.ndarray
    segments: int = 1
    stats: VoiceStats | None = None
    spectrum: tuple[float, ...] = ()

    def profile(self) -> VoiceProfile | None:
        s = self.stats
        if s is None or not s.usable:
            return None
        return VoiceProfile(tuple(float(x) for x in self.centroid), s.f0_median, s.f0_low, s.f0_high,
                            s.formant_1, s.formant_2, self.spectrum)


@dataclass
class SessionSpeakers:
    """The speakers of one session (online clustering of segment embeddings)."""

    speakers: list[Speaker] = field(default_factory=list)

    def assign(self, embedding: np.ndarray, stats: VoiceStats | None, spectrum: tuple[float, ...] = ()) -> Speaker:
        e = np.asarray(embedding, np.float64)
        e = e / (np.linalg.norm(e) or 1.0)
        best = max(self.speakers, key=lambda s: float(s.centroid @ e), default=None)
        if best is not None and (float(best.centroid @ e) >= SAME_SPEAKER_COS or len(self.speakers) >= MAX_SPEAKERS):
            c = best.centroid * best.segments + e
            best.centroid = c / (np.linalg.norm(c) or 1.0)
            best.segments += 1
            if stats is not None:
                had = best.stats.voiced_s if best.stats is not None else 0.0
                best.spectrum = combine_spectra(best.spectrum, had, spectrum, stats.voiced_s)
                best.stats = combine(best.stats, stats)
            return best
        spk = Speaker(f"S{len(self.speakers) + 1}", e, 1, stats, spectrum)
        self.speakers.append(spk)
        return spk


def _speechy(window: np.ndarray) -> bool:
    """At least half the window's 20 ms frames are within 30 dB of its loudest."""
    n = len(window) // 320
    if n == 0:
        return False
    rms = np.sqrt((window[: n * 320].reshape(n, 320).astype(np.float64) ** 2).mean(1))
    return bool(rms.max() > 1e-3 and np.mean(rms > rms.max() * 10 ** (-30 / 20)) >= 0.5)


@dataclass
class ChangeWatch:
    """Where the voice changes inside the open segment (positions on the session's sample clock).

    Windows start on a grid of HOP_S from the segment's start; the score of a boundary b is the
    cosine between the window ending at b and the one starting at b, so each hop embeds one new
    window (~10 ms with GE2E on ONNX Runtime: 4 % of a core)."""

    rate: int = 16000
    origin: int = 0  # the open segment's first sample (the grid's origin)
    embeddings: dict[int, np.ndarray | None] = field(default_factory=dict)  # window start -> embedding
    scores: list[tuple[int, float]] = field(default_factory=list)  # (boundary, cosine), in order

    @property
    def window(self) -> int:
        return round(WINDOW_S * self.rate)

    @property
    def hop(self) -> int:
        return round(HOP_S * self.rate)

    def reset(self, start: int) -> None:
        self.origin, self.embeddings, self.scores = start, {}, []

    def check(self, start: int, audio: np.ndarray, embed) -> int | None:
        """Score the boundaries of the open segment [start, start + len(audio)) not scored yet; returns
        a change point once the cosine across it is a local minimum below CHANGE_COS, else None."""
        if start != self.origin:
            self.reset(start)
        w, h = self.window, self.hop
        end = start + len(audio)
        new = [g for g in range(start, end - w + 1, h) if g not in self.embeddings]
        voiced = [g for g in new if _speechy(audio[g - start : g - start + w])]
        for g in set(new) - set(voiced):
            self.embeddings[g] = None  # mostly silence: an embedding of it says nothing about a voice
        if voiced:
            for g, e in zip(voiced, embed([audio[g - start : g - start + w] for g in voiced]), strict=True):
                self.embeddings[g] = e
        scored = {b for b, _ in self.scores}
        for b in range(start + w, end - w + 1, h):
            before, after = self.embeddings.get(b - w), self.embeddings.get(b)
            if b not in scored and before is not None and after is not None:
                self.scores.append((b, float(before @ after)))
        # A turn makes a dip: every boundary whose windows straddle it scores low. Once the dip is
        # over (a score back above the threshold after it), the change is at its lowest point.
        run: list[tuple[int, float]] = []
        for b, c in self.scores:
            if c < CHANGE_COS:
                run.append((b, c))
            elif run:
                return min(run, key=lambda x: x[1])[0]
        if run and run[-1][0] - run[0][0] >= 2 * w:  # a long dip: do not wait for its end any longer
            return min(run, key=lambda x: x[1])[0]
        return None

    def locate(self, start: int, audio: np.ndarray, near: int) -> int:
        """The turn close to the dip's lowest boundary `near`: the longest pause within LOCATE_S of it
        (the nearer of equals); `near` itself when there is none. Choosing among the pauses by the
        embeddings of their two sides (0.8-2 s each) found fewer turns: GE2E on stretches that short
        told the candidates apart by less than its own noise."""
        frame, reach = self.rate // 50, round(LOCATE_S * self.rate)
        lo = max(0, near - start - reach)
        x = audio[lo : min(len(audio), near - start + reach)].astype(np.float64)
        n = len(x) // frame
        if n < 3:
            return near
        rms = np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(1))
        quiet = np.r_[rms < max(rms.max() * 10 ** (-PAUSE_DB / 20), 1e-5), False]
        pauses: list[tuple[int, int]] = []  # (length in frames, middle in session samples)
        run_start = None
        for i, q in enumerate(quiet):
            if q and run_start is None:
                run_start = i
            elif not q and run_start is not None:
                if i - run_start >= 3:
                    pauses.append((i - run_start, start + lo + (run_start + i) * frame // 2))
                run_start = None
        if not pauses:
            return near
        return max(pauses, key=lambda p: (p[0], -abs(p[1] - near)))[1]
