"""probe / iter_audio / iter_video on clips PyAV encodes in several containers and codecs."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pytest

from tests.support.clips import corrupt_packets, make_clip, packet_spans
from workers.errors import BadInputError
from workers.media.frames import decode_frame
from workers.media.reader import AudioReader, VideoReader, iter_audio, iter_video, probe


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    return {ext: make_clip(d / f"a{ext}") for ext in (".mp4", ".mkv", ".webm", ".avi")}


@pytest.mark.parametrize(
    ("ext", "vcodec", "acodec"),
    [(".mp4", "h264", "aac"), (".mkv", "h264", "ac3"), (".webm", "vp9", "opus"), (".avi", "mpeg4", "ac3")],
)
def test_probe_reads_containers_and_codecs(
    clips: dict[str, Path], ext: str, vcodec: str, acodec: str
) -> None:
    info = probe(clips[ext])
    assert info.path == clips[ext]
    assert info.has_audio and info.has_video
    assert (info.video_codec, info.audio_codec) == (vcodec, acodec)
    assert (info.width, info.height) == (320, 240)
    assert info.fps == pytest.approx(25.0, abs=0.01)
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert info.audio_channels == 2
    assert info.audio_rate in (16000, 48000)
    assert info.video_time_base is not None and info.video_time_base > 0


def test_probe_not_media(tmp_path: Path) -> None:
    p = tmp_path / "notes.txt"
    p.write_text("this is not a video\n" * 20)
    with pytest.raises(BadInputError, match=r"notes\.txt is not a media file ffmpeg can read"):
        probe(p)


def test_probe_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"nope\.mp4: no such file"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(BadInputError, match="is not a file"):
        probe(tmp_path)


def test_audio_only_and_video_only(tmp_path: Path) -> None:
    audio = probe(make_clip(tmp_path / "a.m4a", video=False))
    assert audio.has_audio and not audio.has_video
    assert audio.fps is None and audio.width is None and audio.video_codec is None
    video = make_clip(tmp_path / "v.mp4", audio=False)
    info = probe(video)
    assert info.has_video and not info.has_audio and info.audio_rate is None
    with pytest.raises(BadInputError, match=r"v\.mp4 has no audio stream"):
        list(iter_audio(video))
    with pytest.raises(BadInputError, match=r"a\.m4a has no video stream"):
        list(iter_video(tmp_path / "a.m4a", "s"))


@pytest.mark.parametrize("ext", [".mp4", ".webm"])
def test_iter_audio_chunks_are_continuous_mono(clips: dict[str, Path], ext: str) -> None:
    chunks = list(iter_audio(clips[ext], rate=16000, chunk_s=0.1))
    assert all(s.dtype == np.float32 and s.ndim == 1 for _, s in chunks)
    assert all(len(s) == 1600 for _, s in chunks[:-1])
    pos = 0
    for pts, s in chunks:  # each chunk starts where the previous ended
        assert pts == pytest.approx(pos / 16000, abs=1e-9)
        pos += len(s)
    assert pos / 16000 == pytest.approx(2.0, abs=0.06)
    audio = np.concatenate([s for _, s in chunks])
    body = audio[1600:-1600]
    crossings = np.count_nonzero(np.diff(np.signbit(body))) / 2 / (len(body) / 16000)
    assert crossings == pytest.approx(440, rel=0.02)  # the tone survives decode + resample + downmix
    assert 0.15 < np.abs(body).max() < 0.45  # both channels mixed in (left 0.3, right 0.15)


def test_iter_audio_pads_a_late_stream_start(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "late.mkv", audio_start_s=0.5, acodec="pcm_s16le")
    reader = AudioReader(clip, rate=16000, chunk_s=0.1)
    audio = np.concatenate([s for _, s in reader])
    assert reader.padded_s == pytest.approx(0.5, abs=0.01)
    assert np.abs(audio[: int(0.49 * 16000)]).max() == 0.0
    assert np.abs(audio[int(0.52 * 16000) : int(0.6 * 16000)]).max() > 0.1


def test_iter_audio_skips_corrupt_packets_and_keeps_the_clock(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clip = make_clip(tmp_path / "c.mkv", acodec="aac")
    corrupt_packets(clip, "audio", range(10, 16))
    reader = AudioReader(clip, rate=16000, chunk_s=0.1)
    with caplog.at_level(logging.WARNING):
        chunks = list(reader)
    assert reader.skipped > 0
    assert "skipped corrupt audio" in caplog.text
    total = sum(len(s) for _, s in chunks) / 16000
    assert total == pytest.approx(2.0, abs=0.06)  # the lost packets became silence, not a shorter stream
    assert reader.padded_s >= 0.3


def test_iter_video_frames_and_timestamps(clips: dict[str, Path]) -> None:
    frames = list(iter_video(clips[".mkv"], "sess"))
    assert [f.seq for f in frames] == list(range(50))
    assert [f.pts_s for f in frames] == pytest.approx([i / 25 for i in range(50)], abs=1e-3)
    f = frames[7]
    assert (f.session_id, f.encoding, f.width, f.height) == ("sess", "bgr24", 320, 240)
    img = decode_frame(f)
    assert img.shape == (240, 320, 3)
    assert not np.array_equal(img, decode_frame(frames[8]))


def test_iter_video_keeps_variable_frame_rate(tmp_path: Path) -> None:
    times = [0.0, 0.04, 0.1, 0.12, 0.3, 0.5, 0.52, 0.9]
    clip = make_clip(tmp_path / "vfr.mkv", frame_times=times, seconds=1.0)
    assert [f.pts_s for f in iter_video(clip, "s")] == pytest.approx(times, abs=1e-3)


def test_iter_video_skips_corrupt_frames(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", audio=False)
    assert len(packet_spans(clip, "video")) == 50
    corrupt_packets(clip, "video", range(20, 24))
    seen: list[int] = []
    reader = VideoReader(clip, "s", on_skip=lambda n, why: seen.append(n))
    frames = list(reader)
    assert reader.skipped == len(seen) > 0
    assert 40 <= len(frames) < 50
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert all(b.pts_s > a.pts_s for a, b in itertools.pairwise(frames))


def test_iter_video_closes_early_without_reading_everything(clips: dict[str, Path]) -> None:
    it = iter_video(clips[".mp4"], "s")
    first = next(it)
    it.close()  # FileFrameSource closes readers it stops using
    assert first.seq == 0
