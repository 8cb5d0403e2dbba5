"""OutputWriter: round trips through real encoders, timing, odd sizes, audio-only outputs, cleanup."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.support.clips import make_clip, pattern_frame
from workers.errors import BadInputError
from workers.media.frames import decode_frame
from workers.media.reader import MediaInfo, iter_audio, iter_video, probe
from workers.media.writer import OutputWriter


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> MediaInfo:
    return probe(make_clip(tmp_path_factory.mktemp("src") / "src.mp4"))


def click_track(seconds: float, rate: int, at_s: float) -> np.ndarray:
    audio = np.zeros(round(seconds * rate), np.float32)
    i = round(at_s * rate)
    audio[i : i + rate // 100] = 0.8  # a 10 ms pulse marks a known instant
    return audio


def onset(audio: np.ndarray, rate: int) -> float:
    return float(np.argmax(np.abs(audio) > 0.3)) / rate


@pytest.mark.parametrize(
    ("ext", "vcodec", "acodec"), [(".mp4", "h264", "aac"), (".mkv", "h264", "aac"), (".webm", "vp9", "opus")]
)
def test_round_trip_keeps_frames_rate_and_audio(
    tmp_path: Path, source: MediaInfo, ext: str, vcodec: str, acodec: str
) -> None:
    out = tmp_path / f"out{ext}"
    with OutputWriter(out, source, audio_rate=24000) as w:
        for f in iter_video(source.path, "s"):
            w.write_video(decode_frame(f), f.pts_s)
        w.write_audio(click_track(2.0, 24000, at_s=1.0))
    info = probe(out)
    assert (info.video_codec, info.audio_codec) == (vcodec, acodec)
    assert info.has_video and info.has_audio
    assert info.fps == pytest.approx(25.0, abs=0.01)
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    frames = list(iter_video(out, "s"))
    assert len(frames) == 50
    assert frames[-1].pts_s == pytest.approx(1.96, abs=1e-3)
    first = decode_frame(frames[0]).astype(int)
    assert np.abs(first - pattern_frame(0, 320, 240)).mean() < 6  # the picture survived encoding
    audio = np.concatenate([s for _, s in iter_audio(out, rate=24000)])
    assert onset(audio, 24000) == pytest.approx(1.0, abs=0.01)  # audio stays in sync with the video clock
    assert not list(tmp_path.glob(".*"))  # temp files are gone


def test_variable_frame_rate_is_kept(tmp_path: Path, source: MediaInfo) -> None:
    times = [0.0, 0.04, 0.1, 0.12, 0.3, 0.5, 0.52, 0.9]
    out = tmp_path / "vfr.mp4"
    with OutputWriter(out, source) as w:
        for i, t in enumerate(times):
            w.write_video(pattern_frame(i, 320, 240), t)
    assert [f.pts_s for f in iter_video(out, "s")] == pytest.approx(times, abs=1e-3)


def test_odd_frame_size_is_padded_to_even(tmp_path: Path, source: MediaInfo) -> None:
    out = tmp_path / "odd.mp4"
    with OutputWriter(out, replace(source, width=321, height=241)) as w:
        for i in range(5):
            w.write_video(pattern_frame(i, 321, 241), i / 25)
    info = probe(out)
    assert (info.width, info.height) == (322, 242)
    assert len(list(iter_video(out, "s"))) == 5


@pytest.mark.parametrize(("ext", "codec"), [(".wav", "pcm_s16le"), (".m4a", "aac"), (".mp4", "aac")])
def test_audio_only_output(tmp_path: Path, source: MediaInfo, ext: str, codec: str) -> None:
    out = tmp_path / f"dub{ext}"
    with OutputWriter(out, replace(source, has_video=False), audio_rate=22050) as w:
        w.write_audio(click_track(1.0, 22050, at_s=0.25)[:11025])
        w.write_audio(click_track(1.0, 22050, at_s=0.25)[11025:])
    info = probe(out)
    assert not info.has_video and info.has_audio and info.audio_codec == codec
    assert info.duration_s == pytest.approx(1.0, abs=0.05)
    audio = np.concatenate([s for _, s in iter_audio(out, rate=22050)])
    assert onset(audio, 22050) == pytest.approx(0.25, abs=0.01)


def test_error_inside_context_leaves_no_files(tmp_path: Path, source: MediaInfo) -> None:
    out = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="boom"), OutputWriter(out, source) as w:
        w.write_video(pattern_frame(0, 320, 240), 0.0)
        w.write_audio(np.zeros(2400, np.float32))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_bad_calls_are_named(tmp_path: Path, source: MediaInfo) -> None:
    with pytest.raises(BadInputError, match=r"\.xyz"):
        OutputWriter(tmp_path / "out.xyz", source)
    w = OutputWriter(tmp_path / "out.mp4", source)
    w.write_video(pattern_frame(0, 320, 240), 0.0)
    with pytest.raises(BadInputError, match="frame 1 is 160x120, earlier frames were 320x240"):
        w.write_video(pattern_frame(1, 160, 120), 0.04)
    with pytest.raises(BadInputError, match="mono"):
        w.write_audio(np.zeros((2, 100), np.float32))
    w.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BadInputError, match="nothing was written"), OutputWriter(tmp_path / "e.mp4", source):
        pass
