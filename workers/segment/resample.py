"""Streaming resampling of a session's audio to the VAD's rate.

Chunks arrive at the capture rate (44.1/48 kHz typically). Resampling each chunk
on its own would restart the filter at every edge and click every 100 ms, which
VADs hear as onsets; soxr's stream keeps the filter state across chunks. Its
output is aligned with the input (no leading delay samples), so sample indices
stay on the session clock; the filter's few ms of look-ahead are held back
until the next push or `flush()`.
"""

from __future__ import annotations

import numpy as np

from workers.errors import BadInputError


class StreamResampler:
    """Mono float32 resampler for one stream; identity (no copy, no delay) when rates match."""

    def __init__(self, src_rate: int, dst_rate: int, quality: str = "HQ") -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise BadInputError(f"sample rates must be positive (got {src_rate} -> {dst_rate})")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._stream = None
        if src_rate != dst_rate:
            import soxr

            self._stream = soxr.ResampleStream(src_rate, dst_rate, 1, dtype="float32", quality=quality)

    def push(self, x: np.ndarray) -> np.ndarray:
        """Resample the next chunk; may return fewer samples than the rate ratio until flush()."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 1:
            raise BadInputError(f"expected mono audio, got shape {x.shape}")
        if self._stream is None:
            return x
        return self._stream.resample_chunk(x)

    def flush(self) -> np.ndarray:
        """End of stream: the samples still inside the filter."""
        if self._stream is None:
            return np.zeros(0, np.float32)
        return self._stream.resample_chunk(np.zeros(0, np.float32), last=True)
