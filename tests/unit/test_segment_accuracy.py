"""Segmenter accuracy end to end: espeak-ng speech with known pauses through SegmentStage.

The audio is a talk of short and long sentences separated by 0.3–1.5 s pauses,
some with commas (espeak pauses 0.15–0.3 s there, which must not become
boundaries of short segments), at 48 kHz with white background noise at
-35 dBFS (about 15 dB SNR), fed in 100 ms chunks like a live capture.

Which pauses *should* become boundaries depends on the adaptive rule (a 0.4 s
pause closes a 9 s segment but not a 2 s one), so the expected boundaries are
those the same segmenter makes from the ground-truth speech mask (an oracle
VAD). Then, with a boundary counting when it lies within ±0.25 s of a pause:
- precision: pause boundaries the real VAD made that lie at a true pause;
- recall: oracle boundaries the real VAD also made.
Max-length cuts are checked apart: they must fall in a quiet gap between words.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from tests.support.speech import make_noise, make_speech
from workers.records import AudioChunk, SessionControl, SpeechSegment, float_to_pcm
from workers.registry import create_stage
from workers.segment.adaptive import AdaptiveSegmenter
from workers.segment.stage import SAMPLE_RATE
from workers.settings import SegmentSettings, load_settings

RATE = 48000
TOLERANCE_S = 0.25
SCRIPT: list[str | float] = [
    0.6,
    "Good morning everyone.",
    1.0,
    "Today, as promised, we are going to talk about the weather in the mountains.",
    0.8,
    "Yes.",
    1.0,
    "It was a cold and windy day.",
    1.2,
    "The old farmer walked slowly along the narrow road that led from the village to the river "
    "and he carried a heavy basket of apples and bread and cheese for the long journey to the market "
    "in the next town",
    0.6,
    "After that, the sun came out, and everyone went outside to play in the park.",
    0.3,
    "The children laughed.",
    1.5,
    "My sister bought a small red car last week and she drives it to work every morning "
    "before the traffic gets bad",
    0.4,
    "That is all for now.",
    0.9,
    "Please remember to bring your umbrella tomorrow.",
    1.3,
    "Our teacher explained how the little seeds grow into tall green plants when they get enough water "
    "and sunlight during the warm days of spring and summer while the farmers watch the fields",
    0.35,
    "Then the bell rang.",
    1.5,
    "Where did you put the keys?",
    1.1,
    "I think, to be honest, they are on the kitchen table next to the blue bowl.",
    0.7,
    "Thank you very much for listening and have a wonderful evening with your family and friends.",
    1.0,
]


@dataclass
class Scores:
    precision: float
    recall: float
    recall_all_pauses: float
    n_pred: int
    n_expected: int


def talk() -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
    """(noisy audio, clean audio, speech spans)."""
    clean, spans = make_speech(SCRIPT, RATE)
    return clean + make_noise(len(clean) / RATE, RATE, level_db=-35.0, seed=7), clean, spans


def segment(backend: str, audio: np.ndarray) -> list[SpeechSegment]:
    stage = create_stage("segment", load_settings(segment=SegmentSettings(backend=backend)), None)
    stage.load()
    stage.open_session(SessionControl(session_id="talk", action="start", target_langs=("es",)))
    n, out = RATE // 10, []
    for seq, i in enumerate(range(0, len(audio), n)):
        pcm = float_to_pcm(audio[i : i + n])
        chunk = AudioChunk(session_id="talk", seq=seq, pts_s=i / RATE, sample_rate=RATE, pcm=pcm)
        out += stage.process_sync(chunk)
    out += stage.flush_sync("talk")
    stage.end_session("talk")
    stage.close()
    return out


def oracle_cut_ends(audio: np.ndarray, spans: list[tuple[float, float]]) -> list[tuple[float, str]]:
    """Cut ends the rule makes when the VAD is exactly the ground truth."""
    x = audio[:: RATE // SAMPLE_RATE]  # energies only steer max-length cuts; decimation is fine here
    seg, n, ends = AdaptiveSegmenter(SegmentSettings(), SAMPLE_RATE, 512), 512, []
    for i in range(0, len(x) - n + 1, n):
        centre = (i + n / 2) / SAMPLE_RATE
        prob = float(any(a <= centre < b for a, b in spans))
        ends += [(c.end / SAMPLE_RATE, c.reason) for c in seg.push(x[i : i + n], prob)]
    return ends


def score(
    segs: list[SpeechSegment], oracle: list[tuple[float, str]], spans: list[tuple[float, float]]
) -> Scores:
    pauses = [(spans[i][1], spans[i + 1][0]) for i in range(len(spans) - 1)]

    def pause_at(t: float) -> int | None:
        return next((k for k, (a, b) in enumerate(pauses) if a - TOLERANCE_S <= t <= b + TOLERANCE_S), None)

    predicted = [s.end_s for s in segs[:-1] if s.cut_reason == "pause"]
    found = {pause_at(t) for t in predicted} - {None}
    expected = {pause_at(t) for t, reason in oracle if reason == "pause"} - {None}
    hits = sum(pause_at(t) is not None for t in predicted)
    return Scores(
        precision=hits / max(1, len(predicted)),
        recall=len(found & expected) / max(1, len(expected)),
        recall_all_pauses=len(found) / len(pauses),
        n_pred=len(predicted),
        n_expected=len(expected),
    )


# Measured 1.00 / 1.00 for both. A fixed 0.15 s pause rule scores precision 0.82 (silero) and
# 0.74 (webrtc) here, cutting at commas, so these floors do tell the adaptive rule apart.
FLOORS = {"silero": 0.9, "webrtc": 0.85}


@pytest.mark.parametrize("backend", ["silero", "webrtc"])
def test_boundaries_fall_at_true_pauses(backend: str) -> None:
    audio, clean, spans = talk()
    segs = segment(backend, audio)
    oracle = oracle_cut_ends(audio, spans)
    sc = score(segs, oracle, spans)
    print(
        f"\n{backend}: precision {sc.precision:.2f} ({sc.n_pred} pause cuts), recall {sc.recall:.2f} "
        f"of {sc.n_expected} oracle boundaries, {sc.recall_all_pauses:.2f} of all {len(spans) - 1} pauses"
    )
    assert sc.n_expected >= 8  # the script really exercises the rule
    assert sc.precision >= FLOORS[backend]
    assert sc.recall >= FLOORS[backend]

    # the sentence-long cap: every max-length cut lands in a gap between words (judged on the clean
    # speech, the noise fills the gaps), and no segment exceeds it
    cuts = [s.end_s for s in segs if s.cut_reason == "max_length"]
    assert cuts, "the long sentences should have hit max_segment_s"
    loud = np.sqrt(np.mean(np.concatenate([clean[round(a * RATE) : round(b * RATE)] for a, b in spans]) ** 2))
    for t in cuts:
        around = clean[round((t - 0.01) * RATE) : round((t + 0.01) * RATE)]
        assert np.sqrt(np.mean(around**2)) < 0.1 * loud, f"max-length cut at {t:.2f}s is not in a quiet gap"
    assert max(s.duration_s for s in segs) <= 10.0 + 1e-6

    # nothing said is lost: the segments cover the speech
    covered = np.zeros(round(len(audio) / RATE * 100), bool)
    for s in segs:
        covered[round(s.start_s * 100) : round(s.end_s * 100)] = True
    said = np.concatenate([np.arange(round(a * 100), round(b * 100)) for a, b in spans])
    assert covered[said].mean() > 0.98
    assert all(a.end_s <= b.start_s for a, b in itertools.pairwise(segs))
