"""Both VAD backends on real (espeak-ng) speech versus silence and background noise."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.speech import make_noise, make_speech
from workers.errors import BadInputError
from workers.registry import backend_class
from workers.segment.silero import SileroVad
from workers.segment.stage import VadBackend
from workers.segment.webrtc import WebRtcVad
from workers.settings import load_settings

SR = 16000
SPEECH = [0.5, "The quick brown fox jumps over the lazy dog.", 0.7, "Speech works best when clean.", 0.5]


@pytest.fixture(scope="module", params=["silero", "webrtc"])
def vad(request: pytest.FixtureRequest) -> VadBackend:
    backend = backend_class("segment", request.param)(load_settings())
    backend.load()
    yield backend
    backend.close()


def probs(vad: VadBackend, audio: np.ndarray) -> np.ndarray:
    state, n = vad.new_state(), vad.frame_samples
    return np.array([vad.speech_prob(audio[i : i + n], state) for i in range(0, len(audio) - n + 1, n)])


def test_registry_names_and_framing() -> None:
    assert backend_class("segment", "silero") is SileroVad
    assert backend_class("segment", "webrtc") is WebRtcVad
    assert (SileroVad.frame_samples, WebRtcVad.frame_samples) == (512, 480)
    assert SileroVad.unavailable() is None
    assert WebRtcVad.unavailable() is None


def test_speech_frames_score_high_and_pauses_low(vad: VadBackend) -> None:
    audio, spans = make_speech(SPEECH, SR)
    p = probs(vad, audio)
    centres = (np.arange(len(p)) + 0.5) * vad.frame_samples / SR
    inside = np.zeros(len(p), bool)
    far = np.ones(len(p), bool)  # frames well clear of any speech (VADs hang over a little)
    for a, b in spans:
        inside |= (centres > a) & (centres < b)
        far &= (centres < a - 0.15) | (centres > b + 0.25)
    assert np.mean(p[inside] >= 0.5) > 0.8
    assert np.mean(p[far] >= 0.5) < 0.05


@pytest.mark.parametrize("level_db", [-90.0, -45.0])
def test_silence_and_quiet_noise_are_not_speech(vad: VadBackend, level_db: float) -> None:
    p = probs(vad, make_noise(3.0, SR, level_db, seed=3))
    assert np.mean(p >= 0.5) < 0.05


def test_sessions_do_not_share_state(vad: VadBackend) -> None:
    audio, _ = make_speech(["Hello there, my friend."], SR)
    n = vad.frame_samples
    probe = audio[: 4 * n]
    before = probs(vad, probe)
    probs(vad, audio)  # another session's stream in between
    np.testing.assert_array_equal(probs(vad, probe), before)


def test_wrong_frame_length_is_rejected(vad: VadBackend) -> None:
    with pytest.raises(BadInputError, match=str(vad.frame_samples)):
        vad.speech_prob(np.zeros(100, np.float32), vad.new_state())
