"""Streaming resampler: chunked output must match the continuous signal (no clicks at chunk edges)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from workers.errors import BadInputError
from workers.segment.resample import StreamResampler


def sine(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(round(rate * seconds)) / rate)).astype(np.float32)


def test_identity_when_rates_match() -> None:
    r = StreamResampler(16000, 16000)
    x = sine(16000, 0.1)
    np.testing.assert_array_equal(r.push(x), x)
    assert len(r.flush()) == 0


@pytest.mark.parametrize("src", [48000, 44100, 22050, 8000])
def test_chunked_stream_matches_the_continuous_signal(src: int) -> None:
    r = StreamResampler(src, 16000)
    x = sine(src, 2.0)
    sizes = np.random.default_rng(1).integers(1, src // 10, 200)
    edges = np.cumsum(sizes)
    edges = np.concatenate([[0], edges[edges < len(x)], [len(x)]])
    out = np.concatenate([r.push(x[a:b]) for a, b in itertools.pairwise(edges)] + [r.flush()])
    assert abs(len(out) - 32000) <= 1
    expected = sine(16000, 2.0)
    inner = slice(200, 31800)  # away from the stream's own start and end
    assert np.max(np.abs(out[inner] - expected[inner])) < 2e-3
    assert r.src_rate == src


def test_output_is_aligned_with_the_input_clock() -> None:
    """A click at 1.0 s comes out at 1.0 s: segment sample indices stay on the session clock."""
    r = StreamResampler(48000, 16000)
    x = np.zeros(96000, np.float32)
    x[48000] = 1.0
    out = np.concatenate([r.push(x[i : i + 4800]) for i in range(0, len(x), 4800)] + [r.flush()])
    assert abs(int(np.argmax(np.abs(out))) - 16000) <= 1


def test_rejects_bad_rates_and_stereo() -> None:
    with pytest.raises(BadInputError, match="positive"):
        StreamResampler(0, 16000)
    with pytest.raises(BadInputError, match="mono"):
        StreamResampler(48000, 16000).push(np.zeros((10, 2), np.float32))
