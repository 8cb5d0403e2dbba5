"""Are segments cut at speaker turns, and does each speaker keep one label? Part of `livedub bench --voice`.

A made dialogue with known turns: three voices this machine has (Piper's joe, espeak-ng en+f3 and
en+m3) take turns with gaps of 0.12-0.28 s (shorter than any pause rule), fed to the segment stage
in 100 ms chunks like a live capture. Scored against the known turns:
* turn recall: turns with a segment edge within TOLERANCE_S of the gap's middle;
* purity: each segment's share of samples from its majority speaker (1.0: it never mixes two);
* labels: the segment labels of each true speaker (one each, and different speakers apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

RATE = 16000
TOLERANCE_S = 0.3
VOICES = {"A": ("piper", ""), "B": ("espeak", "f3"), "C": ("espeak", "m3")}
TURNS: list[tuple[str, str, float]] = [  # (voice, words, gap after it in seconds)
    ("A", "Did you manage to read the report I sent you yesterday evening?", 0.2),
    ("B", "Yes, I read it this morning on the train to work.", 0.15),
    ("A", "And what did you think about the numbers for the second quarter?", 0.25),
    ("B", "They look better than last year, but the costs are still too high.", 0.12),
    ("C", "I agree with that, we should talk about the costs next week.", 0.28),
    ("A", "Fine, then let us put it on the agenda for Monday.", 0.18),
    ("C", "Good, I will send everyone an invitation after lunch today.", 0.2),
    ("B", "Thank you both, that sounds like a plan to me.", 0.0),
]


@dataclass(frozen=True)
class Dialogue:
    audio: np.ndarray  # float32 at RATE
    owner: np.ndarray  # per sample: index of the voice speaking (-1: gap)
    turns_s: list[float]  # middle of each gap between two different voices
    voices: list[str]  # owner index -> voice name


def made_dialogue(synths: dict[str, Any], turns: list[tuple[str, str, float]] = TURNS) -> Dialogue:
    """`synths`: engine name -> a loaded TtsBackend (piper, espeak). Leading and trailing silence kept."""
    import soxr

    voices = sorted({v for v, _, _ in turns})
    parts, owner, marks = [np.zeros(RATE // 2, np.float32)], [np.full(RATE // 2, -1)], []
    pos = RATE // 2
    for i, (voice, words, gap) in enumerate(turns):
        engine, variant = VOICES[voice]
        syn = synths[engine].synthesize(words, "en", 1.0, variant)
        x = np.asarray(syn.audio, np.float32)
        x = soxr.resample(x, syn.sample_rate, RATE) if syn.sample_rate != RATE else x
        x = _trim(x)
        x = 0.5 * x / (np.abs(x).max() or 1.0)
        parts.append(x)
        owner.append(np.full(len(x), voices.index(voice)))
        pos += len(x)
        g = round(gap * RATE) if i < len(turns) - 1 else RATE // 2
        if i < len(turns) - 1 and turns[i + 1][0] != voice:
            marks.append((pos + g / 2) / RATE)
        parts.append(np.zeros(g, np.float32))
        owner.append(np.full(g, -1))
        pos += g
    return Dialogue(np.concatenate(parts), np.concatenate(owner), marks, voices)


def _trim(x: np.ndarray, floor_db: float = -40.0) -> np.ndarray:
    """The synthesis without its own leading/trailing silence (the gap is what the dialogue says)."""
    loud = np.flatnonzero(np.abs(x) > np.abs(x).max() * 10 ** (floor_db / 20))
    return x[loud[0] : loud[-1] + 1] if len(loud) else x


@dataclass(frozen=True)
class TurnScore:
    turns: int
    found: int  # turns with a segment edge within TOLERANCE_S
    errors_s: list[float]  # distance of each found turn to its nearest edge
    purity_min: float
    labels: dict[str, list[str]]  # voice -> labels its segments got (in order)
    segments: int

    @property
    def recall(self) -> float:
        return self.found / self.turns if self.turns else 1.0

    @property
    def consistent(self) -> bool:
        """Each voice kept one label and no two voices share one."""
        firsts = [set(v) for v in self.labels.values()]
        return all(len(s) == 1 for s in firsts) and len(set().union(*firsts)) == len(firsts)

    def as_dict(self) -> dict[str, Any]:
        return {"turns": self.turns, "found": self.found, "recall": round(self.recall, 3),
                "max_error_s": round(max(self.errors_s), 3) if self.errors_s else None,
                "purity_min": round(float(self.purity_min), 3), "segments": self.segments,
                "labels": self.labels, "consistent": self.consistent}


def score(d: Dialogue, segments: list[Any]) -> TurnScore:
    """`segments`: SpeechSegment records of the dialogue, in order."""
    edges = sorted({s.start_s for s in segments} | {s.end_s for s in segments})
    errors = [min(abs(e - t) for e in edges) for t in d.turns_s] if edges else []
    found = [e for e in errors if e <= TOLERANCE_S]
    purities, labels = [], {v: [] for v in d.voices}
    for s in segments:
        own = d.owner[round(s.start_s * RATE) : round(s.end_s * RATE)]
        own = own[own >= 0]
        if not len(own):
            continue
        counts = np.bincount(own, minlength=len(d.voices))
        purities.append(counts.max() / counts.sum())
        labels[d.voices[int(counts.argmax())]].append(s.speaker)
    return TurnScore(len(d.turns_s), len(found), found, min(purities) if purities else 0.0, labels, len(segments))


def segment_dialogue(d: Dialogue, stage: Any, session: str = "dialogue", chunk_s: float = 0.1) -> list[Any]:
    """The dialogue through a loaded SegmentStage, fed in `chunk_s` chunks like a live capture."""
    from workers.records import AudioChunk, SessionControl, float_to_pcm

    stage.open_session(SessionControl(session_id=session, action="start", target_langs=("es",), source_lang="en"))
    out = []
    n = round(chunk_s * RATE)
    for seq, i in enumerate(range(0, len(d.audio), n)):
        x = d.audio[i : i + n]
        out += stage.process_sync(AudioChunk(session_id=session, seq=seq, pts_s=i / RATE, sample_rate=RATE,
                                             pcm=float_to_pcm(x)))
    out += stage.flush_sync(session)
    return out


def run_turns(settings: Any) -> dict[str, Any]:
    from workers.registry import backend_class, create_stage

    synths = {name: backend_class("tts", name)(settings) for name in ("piper", "espeak")}
    stage = create_stage("segment", settings)
    try:
        for b in synths.values():
            b.load()
        stage.load()
        d = made_dialogue(synths)
        result = score(d, segment_dialogue(d, stage)).as_dict()
    finally:
        stage.close()
        for b in synths.values():
            b.close()
    print(f"[turns] {result}")
    return result
