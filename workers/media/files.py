"""The file ends of an in-process run: audio source, frame source and output sink.

Everything streams: the audio is read in small chunks, frames are read by a
second reader only when the lip-sync step asks for a segment's span, and the
sink copies the source audio around the dubbed spans (and ducks it under the
dub inside them) as it goes, so memory stays constant however long the input is.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import soxr

from workers.media.frames import decode_frame
from workers.media.reader import MediaInfo, iter_audio, iter_video
from workers.media.subtitles import Subtitles
from workers.media.writer import OutputWriter
from workers.pipeline import FrameSource, Sink
from workers.records import AudioChunk, DubbedFrame, DubbedSpeech, Transcript, VideoFrame, float_to_pcm, now
from workers.settings import OutputSettings

log = logging.getLogger(__name__)

ASR_RATE = 16000
OUT_RATE = 24000


async def audio_chunks(
    path: Path, session_id: str, chunk_s: float, pace: bool = False
) -> AsyncIterator[AudioChunk]:
    """The file's audio as AudioChunks; with `pace`, released at real-time speed like a live call."""
    loop = asyncio.get_running_loop()
    it = iter_audio(path, rate=ASR_RATE, chunk_s=chunk_s)
    t0 = loop.time()
    seq = 0
    while (item := await loop.run_in_executor(None, next, it, None)) is not None:
        pts, samples = item
        end = pts + len(samples) / ASR_RATE
        if pace and (wait := t0 + end - loop.time()) > 0:
            await asyncio.sleep(wait)
        yield AudioChunk(session_id, seq, pts, ASR_RATE, float_to_pcm(samples), captured_at=now())
        seq += 1


class FileFrameSource(FrameSource):
    """A second, lazy reader of the input's video: frames are decoded when asked for."""

    def __init__(self, path: Path, session_id: str) -> None:
        self._it: Iterator[VideoFrame] = iter_video(path, session_id)
        self._head: VideoFrame | None = None

    def until(self, t_s: float) -> Iterator[VideoFrame]:
        while True:
            if self._head is None:
                self._head = next(self._it, None)
                if self._head is None:
                    return
            if self._head.pts_s >= t_s:
                return
            frame, self._head = self._head, None
            yield frame

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close:
            close()


class FileSink(Sink):
    """Writes one language's dubbed file: the source audio, with the dub mixed in over each dubbed span.

    Outside the dubbed spans the source audio is copied sample for sample (room sound, laughter
    stay as they are). Inside a span the source is ducked under the dub by `output.duck_db`
    (-30 dB by default: its voice is not heard over the dub; -inf: silence), with raised-cosine
    gain ramps of `output.duck_ramp_s` inside the span's edges, so neither edge clicks. Spans
    that touch or overlap stay ducked across the joint. The last `duck_ramp_s` of a span is held
    back until the next span (or the end) says whether to ramp back up, so memory stays bounded.

    The source audio comes from `original` ((pts, samples at `rate`) chunks, pulled only as
    far as the output has got), by default a reader of `info.path`. With `subtitles`, the
    source transcript (`transcript()`) and the translation (each speech's text) are also
    written as SRT and WebVTT next to `out` (workers/media/subtitles.py).
    """

    def __init__(
        self, out: Path, info: MediaInfo, original: Iterator[tuple[float, np.ndarray]] | None = None,
        rate: int = OUT_RATE, *, output: OutputSettings | None = None, subtitles: bool = False,
    ) -> None:
        output = output or OutputSettings()
        self.out = out
        self.info = info
        self.rate = rate
        self.duck = duck_gain(output.duck_db)
        self.ramp = round(output.duck_ramp_s * rate)  # samples per ramp
        self.writer = OutputWriter(out, info, audio_rate=rate)
        self.subtitles = Subtitles(out) if subtitles else None
        self._src = original if original is not None else iter_audio(info.path, rate=rate, chunk_s=0.5)
        self._buf = np.zeros(0, np.float32)  # source audio read but not yet written or skipped
        self._pos = 0  # samples of output audio written so far
        # the held end of the last span: (source, dub) samples that follow _pos, ducked flat until
        # the next span says whether to ramp up (a gap follows) or stay ducked (it touches)
        self._held: tuple[np.ndarray, np.ndarray] | None = None

    def _source(self, n: int) -> np.ndarray:
        """The next n samples of source audio (zeros past its end)."""
        while len(self._buf) < n:
            item = next(self._src, None)
            if item is None:
                self._buf = np.concatenate([self._buf, np.zeros(n - len(self._buf), np.float32)])
                break
            self._buf = np.concatenate([self._buf, item[1]])
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _emit(self, samples: np.ndarray) -> None:
        self.writer.write_audio(samples)
        self._pos += len(samples)

    def _release(self, ramp_up: bool) -> None:
        """Write the held end of the last span: ramping the source back up, or staying ducked."""
        if self._held is None:
            return
        src, dub = self._held
        self._held = None
        gain = duck_ramp(len(src), self.duck)[::-1] if ramp_up else self.duck
        self._emit((src * gain + dub).astype(np.float32))

    def transcript(self, tr: Transcript) -> None:
        if self.subtitles is not None:
            self.subtitles.source.add(tr.start_s, tr.end_s, tr.text)

    def speech(self, speech: DubbedSpeech) -> None:
        if self.subtitles is not None:
            self.subtitles.translation.add(speech.start_s, speech.end_s, speech.text)
        start = round(speech.start_s * self.rate)
        end = round(speech.end_s * self.rate)
        cursor = self._pos + (len(self._held[0]) if self._held is not None else 0)  # audio decided so far
        if end <= cursor:  # wholly inside what the previous spans already cover
            return
        touches = self._held is not None and start <= cursor
        self._release(ramp_up=not touches)
        if start > self._pos:  # the gap before the span: the source as it is
            self._emit(self._source(start - self._pos))
        audio = speech.samples()
        if speech.sample_rate != self.rate:
            audio = soxr.resample(audio, speech.sample_rate, self.rate).astype(np.float32)
        skip = start - self._pos  # negative when segments overlap through padding: trim the overlap
        audio = audio[-skip:] if skip < 0 else audio
        n = end - self._pos
        dub = np.pad(audio, (0, max(0, n - len(audio))))[:n]
        src = self._source(n)  # the source under the dub
        down = 0 if touches else min(self.ramp, n // 2)
        up = min(self.ramp, n - down)
        gain = np.full(n - up, self.duck, np.float32)
        gain[:down] = duck_ramp(down, self.duck)
        self._emit((src[: n - up] * gain + dub[: n - up]).astype(np.float32))
        self._held = (src[n - up :], dub[n - up :])

    def frames(self, frames: list[VideoFrame | DubbedFrame]) -> None:
        for f in frames:
            self.writer.write_video(decode_frame(f), f.pts_s)

    def close(self) -> None:
        """Copy the rest of the source audio, then finish the file (and the subtitles)."""
        self._release(ramp_up=True)
        rest, self._buf = self._buf, np.zeros(0, np.float32)
        for samples in itertools.chain([rest], (samples for _, samples in self._src)):
            if not len(samples):
                continue
            self._emit(samples)
        self.writer.close()
        log.info("wrote %s", self.out)
        if self.subtitles is not None:
            self.subtitles.close()

    def abort(self) -> None:
        self.writer.abort()
        if self.subtitles is not None:
            self.subtitles.abort()


def duck_gain(duck_db: float) -> float:
    """The linear gain of `duck_db` (-inf: 0, silence)."""
    return 0.0 if math.isinf(duck_db) else 10.0 ** (duck_db / 20.0)


def duck_ramp(n: int, duck: float) -> np.ndarray:
    """n gains falling from 1 towards `duck` along a raised cosine (reversed: rising back)."""
    if n <= 0:
        return np.zeros(0, np.float32)
    x = (np.arange(n) + 0.5) / n
    return (duck + (1.0 - duck) * 0.5 * (1.0 + np.cos(np.pi * x))).astype(np.float32)
