"""Small media files for tests, encoded with PyAV so they exercise real containers and codecs.

    make_clip(tmp_path / "a.mkv", seconds=2)           # video + audio, codecs chosen by extension
    make_clip(tmp_path / "v.mp4", audio=False)         # video only
    make_clip(tmp_path / "a.m4a", video=False)         # audio only
    sample_clip()                                      # the talking-face sample, made once per process

Video frames are a moving colour pattern (every frame differs, so dropped or
duplicated frames show); audio is a sine tone, stereo by default so readers
must downmix.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# (video codec, audio codec) per extension; together they cover H.264, MPEG-4, VP9, AAC, AC-3 and Opus.
CODECS: dict[str, tuple[str, str]] = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".mkv": ("libx264", "ac3"),
    ".webm": ("libvpx-vp9", "libopus"),
    ".avi": ("mpeg4", "ac3"),
    ".m4a": ("", "aac"),
    ".wav": ("", "pcm_s16le"),
    ".ogg": ("", "libopus"),
}
_VIDEO_OPTIONS = {
    "libx264": {"preset": "ultrafast"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
}


def pattern_frame(i: int, width: int, height: int) -> np.ndarray:
    """A BGR frame that differs visibly from its neighbours (moving gradient plus a frame-number bar)."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (x * 255 // max(width - 1, 1) + i * 8) % 256
    img[..., 1] = (y * 255 // max(height - 1, 1)) % 256
    img[..., 2] = (i * 37) % 256
    bar = min(width, (i % 10 + 1) * width // 10)
    img[: height // 8, :bar] = 255
    return img


def tone(seconds: float, rate: int, hz: float = 440.0, channels: int = 2, amp: float = 0.3) -> np.ndarray:
    """A sine tone, (channels, n) float32; the right channel is half as loud so a downmix is not trivial."""
    t = np.arange(round(seconds * rate)) / rate
    mono = (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    return np.stack([mono * (1.0 if c == 0 else 0.5) for c in range(channels)])


def make_clip(
    path: str | Path,
    *,
    seconds: float = 2.0,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
    video: bool = True,
    audio: bool = True,
    audio_rate: int | None = None,
    channels: int = 2,
    hz: float = 440.0,
    audio_start_s: float = 0.0,
    frame_times: Sequence[float] | None = None,
    vcodec: str | None = None,
    acodec: str | None = None,
    gop: int | None = None,
) -> Path:
    """Encode a test clip; codecs default by extension (CODECS). Returns the path.

    `audio_rate` defaults to 16 kHz (48 kHz for AC-3). `frame_times` gives explicit (e.g. irregular)
    frame timestamps; `audio_start_s` starts the audio stream that much after the video.
    """
    path = Path(path)
    dv, da = CODECS[path.suffix]
    vcodec, acodec = vcodec or dv, acodec or da
    if audio_rate is None:
        audio_rate = 48000 if acodec == "ac3" else 16000  # AC-3 has no 16 kHz mode
    width, height = size
    times = list(frame_times) if frame_times is not None else [i / fps for i in range(round(seconds * fps))]
    with av.open(str(path), "w") as out:
        vs = None
        if video:
            vs = out.add_stream(vcodec, rate=fps, options=_VIDEO_OPTIONS.get(vcodec, {}))
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            vs.codec_context.time_base = Fraction(1, 1000) if frame_times is not None else Fraction(1, fps)
            if gop:
                vs.codec_context.gop_size = gop
        as_ = None
        if audio:
            as_ = out.add_stream(acodec, rate=audio_rate)
            as_.layout = "stereo" if channels == 2 else "mono"
        if vs is not None:
            tb = vs.codec_context.time_base
            for i, t in enumerate(times):
                frame = av.VideoFrame.from_ndarray(pattern_frame(i, width, height), format="bgr24")
                frame.pts, frame.time_base = round(t / tb), tb
                out.mux(vs.encode(frame))
            out.mux(vs.encode(None))
        if as_ is not None:
            samples = tone(seconds - audio_start_s, audio_rate, hz, channels)
            start = round(audio_start_s * audio_rate)
            step = 1024
            for k in range(0, samples.shape[1], step):
                block = np.ascontiguousarray(samples[:, k : k + step])
                if channels == 2:
                    block = block.T.reshape(1, -1)  # packed interleaved
                    frame = av.AudioFrame.from_ndarray(block, format="flt", layout="stereo")
                else:
                    frame = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
                frame.sample_rate = audio_rate
                frame.pts, frame.time_base = start + k, Fraction(1, audio_rate)
                out.mux(as_.encode(frame))
            out.mux(as_.encode(None))
    return path


def packet_spans(path: str | Path, kind: str) -> list[tuple[int, int]]:
    """(byte offset, size) of each packet's payload, for the first `kind` ("audio"/"video") stream.

    Found by searching for the packet's bytes from the position the demuxer reports (which
    may be that of the container's block header rather than the payload).
    """
    data = Path(path).read_bytes()
    spans = []
    with av.open(str(path)) as c:
        stream = c.streams.audio[0] if kind == "audio" else c.streams.video[0]
        for p in c.demux(stream):
            if p.size and p.pos is not None and p.pos >= 0:
                at = data.find(bytes(p), p.pos)
                if at >= 0:
                    spans.append((at, p.size))
    return spans


def corrupt_packets(path: str | Path, kind: str, indices: Sequence[int], seed: int = 0) -> int:
    """Overwrite the given packets' payload with noise (the container stays intact); returns bytes hit."""
    spans = packet_spans(path, kind)
    rng = np.random.default_rng(seed)
    hit = 0
    with open(path, "r+b") as f:
        for i in indices:
            pos, size = spans[i]
            f.seek(pos)
            f.write(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
            hit += size
    return hit


@functools.cache
def _scratch() -> Path:
    d = Path(tempfile.mkdtemp(prefix="livedub-clips-"))
    atexit.register(shutil.rmtree, d, ignore_errors=True)
    return d


@functools.cache
def sample_clip(seconds: float = 8.0, size: int = 384) -> Path:
    """The talking-face sample (workers.media.sample), made once per test process and shared."""
    from workers.media.sample import make_sample

    path = _scratch() / f"sample-{seconds:g}s-{size}.mp4"
    make_sample(path, seconds=seconds, size=size)
    return path
