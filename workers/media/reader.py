"""Reading media files with PyAV: probe, streaming audio, streaming video.

Audio and video share one clock: seconds from the start of the file
(`container.start_time`), so a frame's `pts_s` and an audio chunk's `pts` can be
compared directly whatever the streams' own start offsets. Both readers decode
packet by packet (constant memory) and survive corrupt packets: a packet that
fails to decode is skipped with a warning and, for audio, the gap it leaves is
filled with silence so that the clock the segmenter counts on stays right.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from workers.errors import BadInputError
from workers.records import VideoFrame

log = logging.getLogger(__name__)

GAP_TOLERANCE_S = 0.015  # timestamp jumps below this are jitter, not lost audio
MAX_DEMUX_ERRORS = 50  # consecutive demuxer errors after which a file is given up as unreadable
_WARN_FIRST = 5  # log the first few skipped packets of a file, then every 100th


@dataclass(frozen=True)
class MediaInfo:
    """What a file holds; fields of a stream it lacks are None."""

    path: Path
    duration_s: float | None
    has_audio: bool
    has_video: bool
    fps: float | None  # average frame rate
    width: int | None
    height: int | None
    audio_rate: int | None
    audio_channels: int | None
    video_codec: str | None
    audio_codec: str | None
    video_time_base: Fraction | None


@contextmanager
def open_input(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open a media file, translating ffmpeg's errors into BadInputError naming the file."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: no such file")
    if not path.is_file():
        raise BadInputError(f"{path} is not a file")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.InvalidDataError as e:
        raise BadInputError(f"{path} is not a media file ffmpeg can read") from e
    except (av.error.FFmpegError, OSError) as e:
        raise BadInputError(f"{path}: cannot open: {e}") from e
    try:
        if not container.streams.audio and not container.streams.video:
            raise BadInputError(f"{path} has no audio or video stream")
        yield container
    finally:
        container.close()


def file_start_s(container: av.container.InputContainer) -> float:
    """The file's time origin: the earliest stream start (0 when unknown)."""
    start = container.start_time
    return start / av.time_base if start is not None else 0.0


def probe(path: str | Path) -> MediaInfo:
    """Describe a media file; BadInputError if it is missing, not media or unreadable."""
    path = Path(path)
    with open_input(path) as c:
        a = c.streams.audio[0] if c.streams.audio else None
        v = c.streams.video[0] if c.streams.video else None
        duration: float | None = c.duration / av.time_base if c.duration is not None else None
        if duration is None:
            spans = [float(s.duration * s.time_base) for s in (a, v) if s is not None and s.duration]
            duration = max(spans) if spans else None
        fps = None
        if v is not None:
            rate = v.average_rate or v.guessed_rate or v.base_rate
            fps = float(rate) if rate else None
        return MediaInfo(
            path=path,
            duration_s=duration,
            has_audio=a is not None,
            has_video=v is not None,
            fps=fps,
            width=v.codec_context.width if v is not None else None,
            height=v.codec_context.height if v is not None else None,
            audio_rate=a.codec_context.sample_rate if a is not None else None,
            audio_channels=a.codec_context.layout.nb_channels if a is not None else None,
            video_codec=v.codec_context.name if v is not None else None,
            audio_codec=a.codec_context.name if a is not None else None,
            video_time_base=v.time_base if v is not None else None,
        )


class _Decoder:
    """Packet-by-packet decoding of one stream that skips what ffmpeg cannot decode."""

    def __init__(self, path: Path, kind: str, on_skip: Callable[[int, str], None] | None) -> None:
        self.path = path
        self.kind = kind
        self.on_skip = on_skip
        self.skipped = 0

    def skip(self, why: str) -> None:
        self.skipped += 1
        n = self.skipped
        if n <= _WARN_FIRST or n % 100 == 0:
            log.warning("%s: skipped corrupt %s data (%d so far): %s", self.path, self.kind, n, why)
        if self.on_skip:
            self.on_skip(n, why)

    def frames(self, container: av.container.InputContainer, stream: av.stream.Stream) -> Iterator:
        errors_in_row = 0
        while True:
            try:
                # A demuxer error ends this generator; calling demux() again resumes after the bad bytes.
                for packet in container.demux(stream):
                    try:
                        decoded = packet.decode()
                    except av.error.FFmpegError as e:
                        self.skip(f"packet at {_packet_time(packet)}: {e}")
                        continue
                    errors_in_row = 0
                    for frame in decoded:
                        if frame.is_corrupt:
                            self.skip(f"frame at {frame.time}: decoder flagged it corrupt")
                            continue
                        yield frame
                return
            except av.error.EOFError:
                return
            except av.error.FFmpegError as e:
                errors_in_row += 1
                self.skip(f"demuxer: {e}")
                if errors_in_row >= MAX_DEMUX_ERRORS:
                    log.error("%s: giving up after %d demuxer errors in a row", self.path, errors_in_row)
                    return


def _packet_time(packet: av.Packet) -> str:
    return f"{float(packet.pts * packet.time_base):.3f}s" if packet.pts is not None else "unknown time"


class AudioReader:
    """The first audio stream as mono float32 chunks at `rate` on the file-start clock.

    Iterating yields (pts_s, samples); `skipped` counts corrupt packets/frames
    and `padded_s` the silence inserted for gaps (late stream start, lost packets).
    """

    def __init__(
        self,
        path: str | Path,
        rate: int = 16000,
        chunk_s: float = 0.1,
        on_skip: Callable[[int, str], None] | None = None,
    ) -> None:
        if rate <= 0 or chunk_s <= 0:
            raise ValueError(f"rate and chunk_s must be positive, got {rate}, {chunk_s}")
        self.path = Path(path)
        self.rate = rate
        self.chunk = max(1, round(chunk_s * rate))
        self._decoder = _Decoder(self.path, "audio", on_skip)
        self.padded_s = 0.0

    @property
    def skipped(self) -> int:
        return self._decoder.skipped

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        with open_input(self.path) as c:
            if not c.streams.audio:
                raise BadInputError(f"{self.path} has no audio stream")
            stream = c.streams.audio[0]
            t0 = file_start_s(c)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=self.rate)
            buf = _Chunker(self.chunk)
            drop = 0  # samples still to drop where timestamps overlap what was already emitted
            for frame in self._decoder.frames(c, stream):
                if frame.pts is not None:
                    gap = float(frame.pts * frame.time_base) - t0 - buf.total / self.rate
                    if gap > GAP_TOLERANCE_S:
                        n = round(gap * self.rate)
                        self.padded_s += n / self.rate
                        yield from buf.push_zeros(n)
                    elif gap < -GAP_TOLERANCE_S:
                        drop = round(-gap * self.rate)
                try:
                    out = resampler.resample(frame)
                except ValueError as e:  # the stream changed layout or rate mid-file: start a new resampler
                    log.warning("%s: audio format changed mid-stream (%s); resampling afresh", self.path, e)
                    resampler = av.AudioResampler(format="flt", layout="mono", rate=self.rate)
                    out = resampler.resample(frame)
                for o in out:
                    samples = o.to_ndarray().reshape(-1)
                    if drop:
                        cut = min(drop, len(samples))
                        samples, drop = samples[cut:], drop - cut
                    yield from buf.push(samples)
            for o in resampler.resample(None):
                yield from buf.push(o.to_ndarray().reshape(-1))
            yield from buf.finish()


class _Chunker:
    """Re-slices a sample stream into fixed-size chunks stamped by sample count."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.total = 0  # samples accepted so far (the clock)
        self._emitted = 0
        self._parts: list[np.ndarray] = []
        self._held = 0

    def push(self, samples: np.ndarray) -> Iterator[tuple[float, np.ndarray]]:
        if not len(samples):
            return
        self._parts.append(np.asarray(samples, np.float32))
        self._held += len(samples)
        self.total += len(samples)
        while self._held >= self.size:
            joined = np.concatenate(self._parts)
            out, rest = joined[: self.size], joined[self.size :]
            self._parts, self._held = ([rest] if len(rest) else []), len(rest)
            yield self._stamp(out)

    def push_zeros(self, n: int) -> Iterator[tuple[float, np.ndarray]]:
        while n > 0:  # in chunk-sized pieces so a long gap never allocates a long array
            k = min(n, self.size)
            yield from self.push(np.zeros(k, np.float32))
            n -= k

    def finish(self) -> Iterator[tuple[float, np.ndarray]]:
        if self._held:
            out = np.concatenate(self._parts)
            self._parts, self._held = [], 0
            yield self._stamp(out)

    def _stamp(self, out: np.ndarray) -> tuple[float, np.ndarray]:
        start = self._emitted
        self._emitted += len(out)
        return start, out


def iter_audio(
    path: str | Path, rate: int = 16000, chunk_s: float = 0.1
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream the first audio stream as (pts_s, mono float32 samples at `rate`) chunks of ~chunk_s."""
    reader = AudioReader(path, rate, chunk_s)
    for start, samples in reader:
        yield start / rate, samples


class VideoReader:
    """The first video stream as VideoFrame records (bgr24) on the file-start clock.

    `skipped` counts frames dropped as corrupt; `on_skip(count, why)` is called for each.
    """

    def __init__(
        self, path: str | Path, session_id: str, on_skip: Callable[[int, str], None] | None = None
    ) -> None:
        self.path = Path(path)
        self.session_id = session_id
        self._decoder = _Decoder(self.path, "video", on_skip)

    @property
    def skipped(self) -> int:
        return self._decoder.skipped

    def __iter__(self) -> Iterator[VideoFrame]:
        with open_input(self.path) as c:
            if not c.streams.video:
                raise BadInputError(f"{self.path} has no video stream")
            stream = c.streams.video[0]
            stream.thread_type = "AUTO"
            t0 = file_start_s(c)
            rate = stream.average_rate or stream.guessed_rate
            step = 1.0 / float(rate) if rate else 1 / 25
            last: float | None = None
            for seq, frame in enumerate(self._decoder.frames(c, stream)):
                if frame.pts is not None:
                    pts = float(frame.pts * frame.time_base) - t0
                else:  # no timestamp (some AVI/raw streams): continue from the previous frame
                    pts = last + step if last is not None else 0.0
                last = pts
                img = frame.to_ndarray(format="bgr24")
                yield VideoFrame(
                    session_id=self.session_id,
                    seq=seq,
                    pts_s=pts,
                    width=img.shape[1],
                    height=img.shape[0],
                    encoding="bgr24",
                    data=img.tobytes(),
                )


def iter_video(
    path: str | Path, session_id: str, on_skip: Callable[[int, str], None] | None = None
) -> Iterator[VideoFrame]:
    """Stream the first video stream as bgr24 VideoFrames (seq 0..n, pts on the file-start clock)."""
    yield from VideoReader(path, session_id, on_skip)
