"""A frame's index painted into its top edge, so a receiver can tell which sent frame it got and when
(its delay), and from whom (an offset per speaker), after WebRTC has encoded, scaled and delayed it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workers.live.clients import RATE, Media

BITS, CELL = 10, 16  # 10 cells of 16x16 px along the top edge: indices 0-1023
FPS = 25
LEAD_S = 2.0  # silence and a still picture before the clip, and after it


def paint(img: np.ndarray, index: int) -> np.ndarray:
    img = img.copy()
    for b in range(BITS):
        img[:CELL, b * CELL:(b + 1) * CELL] = 255 if index >> b & 1 else 0
    return img


def read(img: np.ndarray, width: int = 384) -> int:
    """The barcode of a frame that may have come scaled (WebRTC lowers resolution under load)."""
    c = CELL * img.shape[1] / width
    m = max(1, round(c / 4))  # read each cell's middle only: the encoder blurs the edges
    return sum(1 << b for b in range(BITS)
               if float(img[m:round(c) - m, round(b * c) + m:round((b + 1) * c) - m].mean()) > 127)


def speaker_media(clip: Path, first: int = 0) -> Media:
    """The clip with LEAD_S of silence and still picture before and after; frame n carries `first` + n."""
    media = Media.from_file(clip, FPS)
    lead = np.zeros(round(LEAD_S * RATE), np.float32)
    n_lead = round(LEAD_S * FPS)
    frames = [media.frames[0]] * n_lead + media.frames + [media.frames[-1]] * n_lead
    assert first + len(frames) <= 1 << BITS, "more frames than the barcode can number"
    return Media(np.concatenate([lead, media.audio, lead]), [paint(f, first + n) for n, f in enumerate(frames)], FPS)
