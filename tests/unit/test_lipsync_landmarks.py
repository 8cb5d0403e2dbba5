"""Landmark lip sync on the sample's astronaut face: what changes, what must not, which face, how fast."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from workers.errors import ModelLoadError
from workers.lipsync.face import FaceModels, FaceTrack
from workers.lipsync.landmarks import LandmarkLipsync
from workers.lipsync.stage import LipsyncJob, LipsyncStage
from workers.media.frames import decode_frame, encode_frame
from workers.media.sample import face_frame, face_frames
from workers.records import DubbedSpeech, VideoFrame
from workers.settings import Settings

FPS = 25.0


@pytest.fixture(scope="module")
def backend() -> LandmarkLipsync:
    b = LandmarkLipsync(Settings())
    b.load()
    return b


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return list(face_frames(25, 384, FPS))


def silence(n_frames: int, rate: int = 16000) -> np.ndarray:
    return np.zeros(round(n_frames / FPS * rate), np.float32)


def animate(
    backend: LandmarkLipsync,
    frames: list[np.ndarray],
    openness: float | np.ndarray,
    track: FaceTrack | None = None,
) -> tuple[list[np.ndarray], FaceTrack]:
    track = track or backend.new_track()
    values = np.broadcast_to(np.asarray(openness, np.float32), (len(frames),))
    return backend.animate(frames, values, track, silence(len(frames)), 16000), track


def test_available_here() -> None:
    assert LandmarkLipsync.unavailable() is None


def test_missing_landmark_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no dlib 68-point landmark model at .*missing\.dat"):
        FaceModels(tmp_path / "missing.dat")


def test_openness_zero_leaves_frames_untouched(backend: LandmarkLipsync, frames: list[np.ndarray]) -> None:
    out, track = animate(backend, frames, 0.0)
    assert all(np.array_equal(a, b) for a, b in zip(out, frames, strict=True))
    assert track.speaker is not None  # a face was found: untouched because nothing was asked


def test_openness_one_opens_the_mouth_and_nothing_else(
    backend: LandmarkLipsync, frames: list[np.ndarray]
) -> None:
    out, track = animate(backend, frames, 1.0)
    for img, src, region in zip(out, frames, track.regions, strict=True):
        assert region is not None
        x0, y0, x1, y1 = region
        assert (x1 - x0) * (y1 - y0) < 0.35 * src.shape[0] * src.shape[1]  # a lower-face box, not the frame
        changed = np.abs(img.astype(int) - src).sum(axis=2) > 30
        assert changed[y0:y1, x0:x1].sum() > 800  # the mouth opened visibly (hundreds of pixels)
        outside = img.copy()
        outside[y0:y1, x0:x1] = src[y0:y1, x0:x1]
        assert np.array_equal(outside, src)  # pixel-identical outside the lower-face box
    # the change is around the mouth: below the eyes, within the face's width
    face = track.speaker
    assert face is not None
    ys, xs = np.nonzero(np.abs(out[-1].astype(int) - frames[-1]).sum(axis=2) > 30)
    assert ys.min() > face.points[36:48, 1].max()
    assert face.points[0, 0] - 5 < xs.mean() < face.points[16, 0] + 5


def test_openness_scales_the_opening(backend: LandmarkLipsync, frames: list[np.ndarray]) -> None:
    def changed(o: float) -> int:
        out, _ = animate(backend, frames[:3], o)
        return int((np.abs(out[2].astype(int) - frames[2]).sum(axis=2) > 30).sum())

    small, large = changed(0.3), changed(1.0)
    assert 0 < small < large


def test_tracks_instead_of_detecting_every_frame(backend: LandmarkLipsync, frames: list[np.ndarray]) -> None:
    track = backend.new_track()
    animate(backend, frames, 0.5, track)  # 25 frames = 1 s < detect_every_s (2 s)
    assert track.detections == 1
    animate(backend, frames + frames, 0.5, track)  # next 2 s: one scheduled re-detection
    assert track.detections == 2
    assert len({f.id for f in track.faces}) == 1 and track.speaker_id == 0  # same face kept throughout


def test_no_face_frames_pass_through_with_one_warning(
    backend: LandmarkLipsync, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    blank = [np.full((240, 320, 3), 120, np.uint8), rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)] * 5
    with caplog.at_level(logging.WARNING, logger="workers.lipsync.landmarks"):
        out, track = animate(backend, blank, 1.0)
    assert all(a is b or np.array_equal(a, b) for a, b in zip(out, blank, strict=True))
    assert track.regions == [None] * len(blank)
    assert len([r for r in caplog.records if "no face found" in r.getMessage()]) == 1


def test_face_lost_then_found_again(backend: LandmarkLipsync, frames: list[np.ndarray]) -> None:
    blank = [np.full_like(frames[0], 90) for _ in range(8)]
    clip = frames[:8] + blank + frames[8:25]
    out, track = animate(backend, clip, 1.0)
    assert all(r is not None for r in track.regions[:8])
    assert track.regions[8:16] == [None] * 8  # the track noticed the face was gone
    assert all(np.array_equal(a, b) for a, b in zip(out[8:16], blank, strict=True))
    back = [r is not None for r in track.regions[16:]]
    assert back.index(True) <= 6 and all(back[back.index(True) :])  # found again by a retry (every 0.2 s)
    assert track.detections <= 6  # retried now and then, not a full detection on every faceless frame


def canvas(t: float, small: np.ndarray | None = None) -> np.ndarray:
    """Two faces: a large one on the left (~134 px) and a small one on the right (~95 px)."""
    img = np.full((360, 640, 3), 200, np.uint8)
    img[10:350, 0:340] = face_frame(t, 340)
    img[60:300, 380:620] = face_frame(t, 240) if small is None else small
    return img


def animated_side(track: FaceTrack) -> list[str | None]:
    return [None if r is None else ("left" if r[0] < 340 else "right") for r in track.regions]


def test_two_still_faces_the_larger_is_animated(backend: LandmarkLipsync) -> None:
    frames = [canvas(i / FPS) for i in range(12)]
    out, track = animate(backend, frames, 1.0)
    assert len(track.faces) == 2
    assert animated_side(track) == ["left"] * 12
    assert np.array_equal(out[5][:, 380:], frames[5][:, 380:])  # the small face is left alone


def test_two_faces_the_speaking_one_is_animated(backend: LandmarkLipsync) -> None:
    n = 40
    # make the small face speak in the *source*: its mouth opens and closes every 8 frames
    talking = [face_frame(i / FPS, 240) for i in range(n)]
    talking, _ = animate(backend, talking, 0.5 + 0.5 * np.sin(np.arange(n) * 2 * np.pi / 8))
    frames = [canvas(i / FPS, talking[i]) for i in range(n)]
    out, track = animate(backend, frames, 1.0)
    sides = animated_side(track)
    switch = sides.index("right")
    assert switch <= 12  # decided after a few frames of evidence
    assert sides[switch:] == ["right"] * (n - switch)  # and the choice stays
    assert np.array_equal(out[-1][:, :340], frames[-1][:, :340])


def test_lipsync_stage_returns_dubbed_frames_in_order(
    backend: LandmarkLipsync, frames: list[np.ndarray]
) -> None:
    stage = LipsyncStage(backend)
    try:
        video = tuple(
            VideoFrame("s1", 100 + i, 2.0 + i / FPS, 384, 384, "bgr24", encode_frame(img, "bgr24"))
            for i, img in enumerate(frames[:10])
        )
        mouth = (0.0,) * 25 + (1.0,) * 25  # closed for the first 0.25 s, open after (mouth_rate 100 Hz)
        speech = DubbedSpeech("s1", 7, 2.0, 2.4, "es", "hola", 16000, b"\0\0" * 6400, 100.0, mouth, 1.0)
        out = stage.process_sync(LipsyncJob(speech, video, output_encoding="jpeg"))
    finally:
        stage.close()
    assert [f.frame_seq for f in out] == [100 + i for i in range(10)]
    assert [f.last_in_segment for f in out] == [False] * 9 + [True]
    assert all(
        (f.seq, f.target_lang, f.encoding, f.width, f.height) == (7, "es", "jpeg", 384, 384) for f in out
    )
    assert [f.pts_s for f in out] == pytest.approx([2.0 + i / FPS for i in range(10)])
    imgs = [decode_frame(f).astype(int) for f in out]
    assert np.abs(imgs[2] - frames[2]).mean() < 3  # 0.08 s: mouth closed, only JPEG noise
    assert np.abs(imgs[8] - frames[8]).max() > 100  # 0.32 s: mouth open


def test_ms_per_frame_at_384(backend: LandmarkLipsync, frames: list[np.ndarray]) -> None:
    track = backend.new_track()
    animate(backend, frames[:2], 0.7, track)  # detection happens here, not in the timing
    started = time.perf_counter()
    for _ in range(2):
        animate(backend, frames[2:22], np.linspace(0.2, 1.0, 20), track)
    ms = (time.perf_counter() - started) / 40 * 1000
    print(f"landmark lip sync: {ms:.1f} ms/frame at 384x384")
    assert ms < 40  # real time at 25 fps with room to spare (typically ~4 ms on one core)
