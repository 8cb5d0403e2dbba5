"""The talking-face sample: real speech with pauses, a detectable moving face, H.264/AAC."""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import pytest

from tests.support.clips import sample_clip
from workers.errors import BadInputError
from workers.media.frames import decode_frame
from workers.media.reader import iter_audio, iter_video, probe
from workers.media.sample import face_frame, make_sample, speak


def test_sample_has_audio_video_and_length() -> None:
    info = probe(sample_clip())
    assert info.has_audio and info.has_video
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height) == (384, 384)
    assert info.fps == pytest.approx(25.0)
    assert 7.5 <= info.duration_s <= 10.0


def test_sample_face_is_detectable_and_moves() -> None:
    detector = dlib.get_frontal_face_detector()
    boxes = []
    for f in iter_video(sample_clip(), "s"):
        if f.seq in (0, 25, 50):
            img = decode_frame(f)
            found = detector(np.ascontiguousarray(img[:, :, ::-1]), 0)
            assert len(found) == 1, f"frame {f.seq}"
            boxes.append(found[0])
    assert len(boxes) == 3
    assert 100 < boxes[0].width() < 250
    assert not np.array_equal(face_frame(0.0), face_frame(1.0))  # the head moves (pan/zoom)


def test_sample_speech_has_pauses_between_sentences() -> None:
    audio = np.concatenate([s for _, s in iter_audio(sample_clip(), rate=16000, chunk_s=0.05)])
    frame = 320  # 20 ms
    energy = np.sqrt(np.mean(audio[: len(audio) // frame * frame].reshape(-1, frame) ** 2, axis=1))
    voiced = energy > 0.02
    assert voiced.mean() > 0.3  # much of it is speech
    first, last = np.argmax(voiced), len(voiced) - np.argmax(voiced[::-1])
    gaps = quiet = 0
    for v in voiced[first:last]:  # silences between the first and last speech
        quiet = 0 if v else quiet + 1
        gaps += quiet == 40  # 0.8 s of silence: the segmenter closes a segment here
    assert gaps >= 2  # three sentences, two long pauses


def test_espeak_speaks_other_languages_sentence_by_sentence() -> None:
    parts, rate = speak("Hallo zusammen. Bis bald.", lang="de")
    assert len(parts) == 2 and rate > 8000
    assert all(len(p) / rate > 0.3 and np.abs(p).max() > 0.05 for p in parts)


def test_unknown_language_needs_text(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no default sample text for language 'xx'"):
        make_sample(tmp_path / "s.mp4", lang="xx")
