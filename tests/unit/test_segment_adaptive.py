"""The adaptive segmentation rule on synthetic probability sequences (no VAD model involved)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from workers.errors import BadInputError, ConfigError
from workers.segment.adaptive import AdaptiveSegmenter, Cut
from workers.settings import SegmentSettings, load_settings

SR = 16000
F = 160  # 10 ms frames: timings below are exact to the frame
LOUD, QUIET = 0.3, 0.001


@dataclass
class Run:
    seg: AdaptiveSegmenter
    audio: np.ndarray
    cuts: list[Cut]  # in emission order, finish() last
    emitted_at: list[float]  # stream time (s) when each cut came out; inf for those from finish()
    safe_until: list[float]  # safe_until_s after every frame


def run(pattern: list[tuple], settings: SegmentSettings | None = None, finish: bool = True) -> Run:
    """Stream a pattern of (seconds, prob[, amplitude]) pieces through a segmenter frame by frame."""
    rng = np.random.default_rng(0)
    probs, amps = [], []
    for piece in pattern:
        seconds, prob = piece[0], piece[1]
        amp = piece[2] if len(piece) > 2 else (LOUD if prob >= 0.5 else QUIET)
        frames = round(seconds * SR / F)
        probs += [prob] * frames
        amps += [amp] * frames
    audio = (rng.uniform(-1, 1, len(probs) * F) * np.repeat(amps, F)).astype(np.float32)
    seg = AdaptiveSegmenter(settings or SegmentSettings(), SR, F)
    out = Run(seg, audio, [], [], [])
    for i, p in enumerate(probs):
        for c in seg.push(audio[i * F : (i + 1) * F], p):
            out.cuts.append(c)
            out.emitted_at.append((i + 1) * F / SR)
        out.safe_until.append(seg.safe_until_s)
    if finish:
        for c in seg.finish():
            out.cuts.append(c)
            out.emitted_at.append(float("inf"))
    return out


def s(samples: int) -> float:
    return samples / SR


def at(seconds: float) -> int:
    """Index into Run.safe_until of the frame ending at `seconds`."""
    return round(seconds * SR / F) - 1


def test_cut_audio_is_exactly_the_stream_samples_with_padding() -> None:
    r = run([(1.0, 0.0), (2.0, 0.9), (2.0, 0.0)])
    (c,) = r.cuts
    assert (c.start, c.end) == (round(0.9 * SR), round(3.1 * SR))  # pad_s = 0.1 on both sides
    assert c.audio.dtype == np.float32
    np.testing.assert_array_equal(c.audio, r.audio[c.start : c.end])
    assert c.reason == "pause"


def test_pause_needed_shrinks_linearly_with_segment_length() -> None:
    seg = AdaptiveSegmenter(SegmentSettings(), SR, F)
    assert seg.pause_needed_s(0.5) is None  # below min_segment_s: a normal pause never closes it
    assert seg.pause_needed_s(1.0) == pytest.approx(0.8)
    assert seg.pause_needed_s(5.5) == pytest.approx(0.5)
    assert seg.pause_needed_s(10.0) == pytest.approx(0.2)
    assert seg.pause_needed_s(30.0) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("span", "needed"), [(1.5, 0.8 - 0.6 * 0.5 / 9), (5.5, 0.5), (9.0, 0.8 - 0.6 * 8 / 9)]
)
def test_segment_closes_as_soon_as_the_pause_its_length_needs_has_passed(span: float, needed: float) -> None:
    r = run([(0.5, 0.0), (span, 1.0), (2.0, 0.0)], finish=False)
    (c,) = r.cuts
    speech_end = 0.5 + span
    assert r.emitted_at[0] == pytest.approx(speech_end + needed, abs=F / SR)
    assert s(c.end) == pytest.approx(speech_end + 0.1)


def test_same_pause_closes_a_long_segment_but_not_a_short_one() -> None:
    short = run([(0.5, 0.0), (2.0, 1.0), (0.4, 0.0), (1.0, 1.0), (2.0, 0.0)])
    long = run([(0.5, 0.0), (9.0, 1.0), (0.4, 0.0), (1.0, 1.0), (2.0, 0.0)])
    assert len(short.cuts) == 1
    assert len(long.cuts) == 2
    assert s(long.cuts[0].end) == pytest.approx(9.6)


def test_segment_shorter_than_min_segment_continues_across_a_pause() -> None:
    r = run([(0.5, 0.0), (0.5, 1.0), (1.2, 0.0), (0.6, 1.0), (3.0, 0.0)])
    (c,) = r.cuts
    assert (s(c.start), s(c.end)) == pytest.approx((0.4, 2.9))


def test_noise_burst_is_dropped_and_does_not_hold_back_safe_until() -> None:
    r = run([(1.0, 0.0), (0.1, 1.0), (3.0, 0.0)])
    assert r.cuts == []
    assert r.safe_until[-1] == pytest.approx(4.1 - 0.1)  # idle again: only the pre-padding is held


def test_short_real_utterance_followed_by_long_silence_is_emitted() -> None:
    r = run([(1.0, 0.0), (0.4, 1.0), (3.0, 0.0)])
    (c,) = r.cuts
    assert c.reason == "pause"
    assert r.emitted_at[0] == pytest.approx(1.4 + 2 * 0.8, abs=F / SR)  # after 2 * pause_long_s
    assert (s(c.start), s(c.end)) == pytest.approx((0.9, 1.5))


def test_max_length_cuts_at_the_lowest_energy_frame_inside_the_search_window() -> None:
    r = run(
        [
            (0.5, 0.0),
            (4.5, 1.0),
            (0.05, 1.0, 0.0),  # quietest of all, but before the search window
            (4.0, 1.0),
            (0.05, 1.0, 0.02),  # the breath the cut should find, inside [8.4, 10.4)
            (5.9, 1.0),
            (2.0, 0.0),
        ]
    )
    first, second = r.cuts
    assert first.reason == "max_length"
    assert 9.05 <= s(first.end) <= 9.1
    assert second.start == first.end  # the remainder continues without a gap
    assert second.reason == "pause"
    assert s(second.end) == pytest.approx(15.1)
    assert all(len(c.audio) <= 10.0 * SR for c in r.cuts)
    joined = np.concatenate([first.audio, second.audio])
    np.testing.assert_array_equal(joined, r.audio[first.start : second.end])


def test_max_length_cut_in_trailing_silence_leaves_no_open_segment() -> None:
    r = run([(0.5, 0.0), (9.75, 1.0), (3.0, 0.0)])
    (c,) = r.cuts
    assert c.reason == "max_length"  # the 10 s cap came before the 0.2 s pause did
    assert s(c.end) > 10.25  # cut inside the silence after the speech, none of it lost


def test_padding_never_overlaps_the_previous_segment() -> None:
    r = run([(0.5, 0.0), (9.0, 1.0), (0.35, 0.0), (2.0, 1.0), (3.0, 0.0)], SegmentSettings(pad_s=0.3))
    first, second = r.cuts
    assert first.end <= second.start
    assert s(first.end) > 9.5  # some padding after the speech...
    assert s(second.start) < 9.85  # ...and some before the next


def test_hysteresis_between_the_two_thresholds() -> None:
    # 0.45 after silence does not open a segment; 0.4 after speech does not close it
    r = run([(1.0, 0.45), (2.0, 0.9), (1.5, 0.4), (3.0, 0.1)])
    (c,) = r.cuts
    assert (s(c.start), s(c.end)) == pytest.approx((0.9, 4.6))


def test_segments_stream_out_before_finish_and_safe_until_tracks_them() -> None:
    r = run([(1.0, 0.0), (2.0, 1.0), (1.5, 0.0), (2.0, 1.0)])
    _, last = r.cuts
    assert r.emitted_at[0] < 6.5  # emitted while audio was still coming
    assert r.emitted_at[1] == float("inf") and last.reason == "end_of_stream"
    assert s(last.start) == pytest.approx(4.4)
    assert r.safe_until[at(4.0)] == pytest.approx(4.0 - 0.1)  # idle between segments
    assert r.safe_until[at(5.0)] == pytest.approx(4.4)  # held at the open segment's start
    assert r.seg.safe_until_s == pytest.approx(6.5)  # finished: nothing more can come
    assert s(last.end) == pytest.approx(6.5)


def test_finish_drops_an_open_segment_without_enough_speech() -> None:
    assert run([(1.0, 0.0), (0.1, 1.0), (0.2, 0.0)]).cuts == []


def test_memory_stays_bounded_on_a_long_stream() -> None:
    seg = AdaptiveSegmenter(SegmentSettings(), SR, F)
    frame = np.full(F, 0.1, np.float32)
    most = 0
    for i in range(round(60 * SR / F)):  # a 60 s monologue, then 10 s of silence
        seg.push(frame, 1.0 if i < 50 * SR / F else 0.0)
        most = max(most, seg.buffered_samples)
    assert most <= 10.0 * SR + F
    assert seg.buffered_samples <= 0.1 * SR + F


def test_bad_configuration_and_frames_are_rejected() -> None:
    with pytest.raises(ConfigError, match="neg_threshold"):  # rejected where settings are read
        load_settings(segment=SegmentSettings.model_construct(threshold=0.3, neg_threshold=0.5).model_dump())
    seg = AdaptiveSegmenter(SegmentSettings(), SR, F)
    with pytest.raises(BadInputError, match="expected 160"):
        seg.push(np.zeros(100, np.float32), 0.0)
