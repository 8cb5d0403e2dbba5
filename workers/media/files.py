"""The file ends of an in-process run: audio source, frame source and output sink.

Everything streams: the audio is read in small chunks, frames are read by a
second reader only when the lip-sync step asks for a segment's span, and the
sink copies the source audio around the dubbed spans as it goes, so memory
stays constant however long the input is.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import soxr

from workers.media.frames import decode_frame
from workers.media.reader import MediaInfo, iter_audio, iter_video
from workers.media.writer import OutputWriter
from workers.pipeline import FrameSource, Sink
from workers.records import AudioChunk, DubbedFrame, DubbedSpeech, VideoFrame, float_to_pcm, now

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
    """Writes one language's dubbed file: source audio outside dubbed spans, dubbed audio inside.

    The source audio comes from `original` ((pts, samples at `rate`) chunks, pulled only as
    far as the output has got), by default a reader of `info.path`.
    """

    def __init__(
        self, out: Path, info: MediaInfo, original: Iterator[tuple[float, np.ndarray]] | None = None,
        rate: int = OUT_RATE,
    ) -> None:
        self.out = out
        self.info = info
        self.rate = rate
        self.writer = OutputWriter(out, info, audio_rate=rate)
        self._src = original if original is not None else iter_audio(info.path, rate=rate, chunk_s=0.5)
        self._buf = np.zeros(0, np.float32)  # source audio read but not yet written or skipped
        self._pos = 0  # samples of output audio written so far

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

    def speech(self, speech: DubbedSpeech) -> None:
        start = round(speech.start_s * self.rate)
        if start > self._pos:
            self.writer.write_audio(self._source(start - self._pos))
            self._pos = start
        audio = speech.samples()
        if speech.sample_rate != self.rate:
            audio = soxr.resample(audio, speech.sample_rate, self.rate).astype(np.float32)
        end = round(speech.end_s * self.rate)
        skip = start - self._pos  # negative when segments overlap through padding: trim the overlap
        audio = audio[-skip:] if skip < 0 else audio
        audio = np.pad(audio, (0, max(0, end - self._pos - len(audio))))[: max(0, end - self._pos)]
        self._source(len(audio))  # the source speech this replaces
        self.writer.write_audio(audio)
        self._pos += len(audio)

    def frames(self, frames: list[VideoFrame | DubbedFrame]) -> None:
        for f in frames:
            self.writer.write_video(decode_frame(f), f.pts_s)

    def close(self) -> None:
        """Copy the rest of the source audio, then finish the file."""
        rest, self._buf = self._buf, np.zeros(0, np.float32)
        for samples in itertools.chain([rest], (samples for _, samples in self._src)):
            if not len(samples):
                continue
            self.writer.write_audio(samples)
            self._pos += len(samples)
        self.writer.close()
        log.info("wrote %s", self.out)

    def abort(self) -> None:
        self.writer.abort()
