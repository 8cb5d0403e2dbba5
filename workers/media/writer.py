"""Writing the dubbed output file with PyAV, streaming, in constant memory.

Video and audio arrive independently (frames as lip sync finishes them, audio as
the sink assembles it), so each goes to its own temp file while streaming: video
is encoded straight into a temp file of the output's container, audio to a temp
16-bit WAV. `close()` then muxes both into the final file: video packets are
copied (no second encode), audio is encoded once, and the two are interleaved by
timestamp. The final file appears atomically (rename); on error or `abort()`
every temp file is removed.
"""

from __future__ import annotations

import logging
import os
import wave
from collections.abc import Iterator
from fractions import Fraction
from heapq import merge
from pathlib import Path
from types import TracebackType

import av
import av.error
import cv2
import numpy as np

from workers.errors import BadInputError
from workers.media.reader import MediaInfo

log = logging.getLogger(__name__)

_H264 = ("libx264", "mpeg4")  # preferred first, fallback when PyAV's ffmpeg lacks libx264
# extension -> (video encoders, audio encoder, audio encoder when the output has no video)
_FORMATS: dict[str, tuple[tuple[str, ...], str]] = {
    ".mp4": (_H264, "aac"),
    ".m4v": (_H264, "aac"),
    ".mov": (_H264, "aac"),
    ".mkv": (_H264, "aac"),
    ".webm": (("libvpx-vp9",), "libopus"),
    ".avi": (("mpeg4",), "ac3"),
}
_AUDIO_ONLY: dict[str, str] = {
    ".wav": "pcm_s16le",
    ".m4a": "aac",
    ".mp4": "aac",
    ".mov": "aac",
    ".mkv": "aac",
    ".webm": "libopus",
    ".ogg": "libopus",
    ".opus": "libopus",
    ".mp3": "libmp3lame",
    ".flac": "flac",
}
_ENCODER_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"preset": "veryfast", "crf": "20"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "32", "b": "0"},
    "mpeg4": {"qscale": "3"},
}
_MAX_TB_DEN = 65535  # MPEG-4 part 2 cannot code a finer time base
_AUDIO_BLOCK = 4096  # samples per frame read back from the temp WAV


def _has_encoder(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # UnknownCodecError and friends
        return False
    return True


def _encoder_rate(codec: str, rate: int) -> int:
    """`rate` if the encoder takes it, else the nearest higher rate it supports (or its highest)."""
    rates = av.codec.Codec(codec, "w").audio_rates
    if not rates or rate in rates:
        return rate
    higher = [r for r in rates if r > rate]
    return min(higher) if higher else max(rates)


def _frame_rate(info: MediaInfo) -> Fraction:
    return Fraction(info.fps).limit_denominator(1001) if info.fps else Fraction(25)


def _video_time_base(info: MediaInfo, ext: str) -> Fraction:
    """The source's time base when every encoder can use it (keeps VFR timing exact), else 1/1000 s.

    AVI is constant-rate by design: its time base is one frame.
    """
    if ext == ".avi":
        return 1 / _frame_rate(info)
    tb = info.video_time_base
    if tb and 0 < tb.denominator <= _MAX_TB_DEN and tb <= Fraction(1, 10):
        return Fraction(tb)
    return Fraction(1, 1000)


class OutputWriter:
    """Write BGR frames (`write_video`) and mono float32 audio (`write_audio`) to `path`.

    Frames keep their timestamps (variable frame rate survives); odd frame sizes are
    padded by one replicated pixel to what 4:2:0 encoders need. Use as a context
    manager, or call `close()` (success) / `abort()` (failure) yourself.
    """

    def __init__(self, path: str | Path, info: MediaInfo, audio_rate: int = 24000) -> None:
        self.path = Path(path)
        self.info = info
        self.audio_rate = audio_rate
        ext = self.path.suffix.lower()
        if info.has_video and ext not in _FORMATS:
            raise BadInputError(
                f"{self.path}: cannot write video to {ext or 'no extension'}; "
                f"use one of {', '.join(sorted(_FORMATS))}"
            )
        if not info.has_video and ext not in _AUDIO_ONLY:
            raise BadInputError(
                f"{self.path}: cannot write audio to {ext or 'no extension'}; "
                f"use one of {', '.join(sorted(_AUDIO_ONLY))}"
            )
        if not self.path.parent.is_dir():
            raise BadInputError(f"{self.path}: folder {self.path.parent} does not exist")
        stem = f".{self.path.name}.{os.getpid()}"
        self._video_tmp = self.path.with_name(f"{stem}.video{ext}")
        self._audio_tmp = self.path.with_name(f"{stem}.audio.wav")
        self._final_tmp = self.path.with_name(f"{stem}.final{ext}")
        self._vout: av.container.OutputContainer | None = None
        self._vstream: av.VideoStream | None = None
        self._size: tuple[int, int] | None = None  # (width, height) of incoming frames
        self._last_pts = -1
        self._tb = _video_time_base(info, ext)
        self._wav: wave.Wave_write | None = None
        self.frames_written = 0
        self.samples_written = 0
        self._closed = False

    # -- streaming ---------------------------------------------------------
    def write_video(self, img: np.ndarray, pts_s: float) -> None:
        """Encode one BGR uint8 frame shown at `pts_s` (seconds; frames must come in order)."""
        self._check_open()
        if not self.info.has_video:
            raise BadInputError(f"{self.path}: writer was opened for audio only (info.has_video is False)")
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise BadInputError(f"{self.path}: frame must be HxWx3 uint8 BGR, got {img.shape} {img.dtype}")
        h, w = img.shape[:2]
        if self._size is None:
            self._open_video(w, h)
        elif (w, h) != self._size:
            raise BadInputError(
                f"{self.path}: frame {self.frames_written} is {w}x{h}, earlier frames were "
                f"{self._size[0]}x{self._size[1]}"
            )
        if w % 2 or h % 2:  # 4:2:0 needs even sizes: repeat the last row/column
            img = cv2.copyMakeBorder(img, 0, h % 2, 0, w % 2, cv2.BORDER_REPLICATE)
        pts = max(round(pts_s / self._tb), self._last_pts + 1)  # strictly increasing, as muxers require
        self._last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
        frame.pts, frame.time_base = pts, self._tb
        assert self._vout is not None and self._vstream is not None
        self._vout.mux(self._vstream.encode(frame))
        self.frames_written += 1

    def write_audio(self, samples: np.ndarray) -> None:
        """Append mono float32 samples at `audio_rate` (they follow the previous ones directly)."""
        self._check_open()
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise BadInputError(f"{self.path}: audio must be mono 1-D samples, got shape {samples.shape}")
        if self._wav is None:
            self._wav = wave.open(str(self._audio_tmp), "wb")  # noqa: SIM115 (open across calls; closed in close/abort)
            self._wav.setnchannels(1)
            self._wav.setsampwidth(2)
            self._wav.setframerate(self.audio_rate)
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
        self._wav.writeframes(pcm.tobytes())
        self.samples_written += len(samples)

    # -- finishing ---------------------------------------------------------
    def close(self) -> None:
        """Finish both temp files and mux them into `path`."""
        if self._closed:
            return
        try:
            self._finish_temps()
            has_video = self.frames_written > 0
            has_audio = self.samples_written > 0
            if not has_video and not has_audio:
                raise BadInputError(f"{self.path}: nothing was written (no frames, no audio)")
            if self.info.has_video and not has_video:
                log.warning("%s: no video frames were written; output has audio only", self.path)
            self._mux(has_video, has_audio)
            os.replace(self._final_tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._remove_temps()

    def abort(self) -> None:
        """Drop everything written so far, leaving no temp or partial file behind."""
        self._closed = True
        for closable in (self._vout, self._wav):
            try:
                if closable is not None:
                    closable.close()
            except Exception as e:  # already broken: we are cleaning up
                log.debug("%s: ignoring error while aborting: %s", self.path, e)
        self._vout = self._wav = None
        self._remove_temps()
        self._final_tmp.unlink(missing_ok=True)

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- internals ---------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise BadInputError(f"{self.path}: writer is already closed")

    def _open_video(self, w: int, h: int) -> None:
        ext = self.path.suffix.lower()
        codec = next((c for c in _FORMATS[ext][0] if _has_encoder(c)), None)
        if codec is None:
            raise BadInputError(f"{self.path}: this ffmpeg has none of the encoders {_FORMATS[ext][0]}")
        fps = _frame_rate(self.info)
        try:
            self._vout = av.open(str(self._video_tmp), "w")
            vs = self._vout.add_stream(codec, rate=fps, options=dict(_ENCODER_OPTIONS.get(codec, {})))
        except av.error.FFmpegError as e:
            raise BadInputError(f"{self.path}: cannot start {codec} encoder: {e}") from e
        vs.width, vs.height = w + w % 2, h + h % 2
        vs.pix_fmt = "yuv420p"
        vs.codec_context.time_base = self._tb
        vs.time_base = self._tb
        if codec == "mpeg4":
            vs.codec_context.bit_rate = max(1_000_000, int(w * h * float(fps) * 0.2))
        self._vstream = vs
        self._size = (w, h)

    def _finish_temps(self) -> None:
        if self._vout is not None:
            assert self._vstream is not None
            self._vout.mux(self._vstream.encode(None))
            self._vout.close()
            self._vout = None
        if self._wav is not None:
            self._wav.close()
            self._wav = None

    def _audio_codec(self, has_video: bool) -> str:
        ext = self.path.suffix.lower()
        return _FORMATS[ext][1] if has_video else _AUDIO_ONLY.get(ext) or _FORMATS[ext][1]

    def _mux(self, has_video: bool, has_audio: bool) -> None:
        ext = self.path.suffix.lower()
        options = {"movflags": "+faststart"} if ext in (".mp4", ".m4v", ".mov", ".m4a") else {}
        with av.open(str(self._final_tmp), "w", options=options) as out:
            sources: list[Iterator[tuple[float, int, av.Packet]]] = []
            vin = av.open(str(self._video_tmp)) if has_video else None
            try:
                if vin is not None:
                    vs_in = vin.streams.video[0]
                    vs_out = out.add_stream_from_template(vs_in)
                    vs_out.time_base = vs_in.time_base
                    vs_out.codec_context.framerate = _frame_rate(
                        self.info
                    )  # else muxers guess it from the tb
                    sources.append(_copied(vin, vs_in, vs_out))
                if has_audio:
                    codec = self._audio_codec(has_video)
                    # PyAV's encoder resamples the frames when the stream's rate differs
                    as_out = out.add_stream(codec, rate=_encoder_rate(codec, self.audio_rate))
                    as_out.layout = "mono"
                    sources.append(self._encoded_audio(as_out))
                for _, _, packet in merge(*sources, key=lambda x: (x[0], x[1])):
                    out.mux(packet)
            finally:
                if vin is not None:
                    vin.close()

    def _encoded_audio(self, stream: av.AudioStream) -> Iterator[tuple[float, int, av.Packet]]:
        """The temp WAV encoded block by block, as (time, order, packet) for interleaving."""
        tb = Fraction(1, self.audio_rate)
        with wave.open(str(self._audio_tmp), "rb") as wav:
            done = 0
            while block := wav.readframes(_AUDIO_BLOCK):
                pcm = np.frombuffer(block, "<i2").reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
                frame.sample_rate = self.audio_rate
                frame.pts, frame.time_base = done, tb
                done += pcm.shape[1]
                yield from _timed(stream.encode(frame), 1)
        yield from _timed(stream.encode(None), 1)

    def _remove_temps(self) -> None:
        for p in (self._video_tmp, self._audio_tmp):
            p.unlink(missing_ok=True)


def _timed(packets: list[av.Packet], order: int) -> Iterator[tuple[float, int, av.Packet]]:
    for p in packets:
        ts = p.dts if p.dts is not None else p.pts
        yield (float(ts * p.time_base) if ts is not None else 0.0), order, p


def _copied(
    vin: av.container.InputContainer, vs_in: av.VideoStream, vs_out: av.VideoStream
) -> Iterator[tuple[float, int, av.Packet]]:
    for packet in vin.demux(vs_in):
        if packet.dts is None and packet.pts is None:  # the demuxer's end-of-stream flush packet
            continue
        packet.stream = vs_out
        yield from _timed([packet], 0)
