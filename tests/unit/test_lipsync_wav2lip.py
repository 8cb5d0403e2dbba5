"""Wav2Lip backend: mel features against librosa's values, and the pre/post-processing path run
through tiny ONNX graphs with Wav2Lip's signature (no real weights exist on this machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import chirp

from workers.errors import ModelLoadError
from workers.lipsync.wav2lip import Wav2Lip, mel_chunks, mel_filterbank, melspectrogram, weights_path
from workers.media.sample import face_frames
from workers.settings import Settings

onnx = pytest.importorskip("onnx")  # dev dependency: builds the stand-in graphs
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

# Reference values from librosa 0.10.2 running Wav2Lip's own audio.py on the same chirp
# (mel bands 0, 10, ..., 70, 79 of columns 0, 5, 10 and 20).
BANDS = [0, 10, 20, 30, 40, 50, 60, 70, 79]
LIBROSA = {
    0: [-0.9723, 0.5438, -0.5464, -0.5504, -0.5479, -0.542, -0.5472, -0.5498, -0.5499],
    5: [-4.0, -4.0, -3.4369, 0.7848, 1.8132, -4.0, -4.0, -4.0, -4.0],
    10: [-4.0, -4.0, -4.0, -4.0, -4.0, -0.1505, -0.1081, -4.0, -4.0],
    20: [-1.0059, -0.7253, -0.7465, -0.7268, -0.6727, -0.5533, -0.287, 0.6111, 0.5433],
}


def test_melspectrogram_matches_wav2lip_reference() -> None:
    t = np.arange(4000) / 16000
    wav = (0.3 * chirp(t, f0=100, t1=0.25, f1=6000) + 0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    mel = melspectrogram(wav)
    assert mel.shape == (80, 21) and mel.dtype == np.float32
    for col, expected in LIBROSA.items():
        assert mel[BANDS, col] == pytest.approx(expected, abs=2e-3)


def test_mel_filterbank_shape_and_tone_band() -> None:
    fb = mel_filterbank()
    assert fb.shape == (80, 401)
    t = np.arange(16000) / 16000
    mel = melspectrogram(0.5 * np.sin(2 * np.pi * 1000 * t))
    band = int(np.argmax(mel[:, 40]))
    centre = np.argmax(fb, axis=1)[band] * 16000 / 800
    assert abs(centre - 1000) < 60


def test_mel_chunks_one_window_per_frame() -> None:
    mel = np.tile(np.arange(90, dtype=np.float32), (80, 1))  # column index as value
    chunks = mel_chunks(mel, n_frames=30, fps=25.0)
    assert chunks.shape == (30, 80, 16)
    assert chunks[0, 0, 0] == 0 and chunks[1, 0, 0] == 3  # 80/25 = 3.2 mel frames per video frame
    assert chunks[29, 0, 0] == 90 - 16  # past the end: the last full window
    assert mel_chunks(np.zeros((80, 5), np.float32), 2, 25.0).shape == (2, 80, 16)


def tiny_wav2lip(path: Path, mode: str = "random", batch: int | str = "N", seed: int = 0) -> Path:
    """An ONNX graph with Wav2Lip's signature: mel (N,1,80,16), face (N,6,96,96) -> (N,3,96,96) in 0..1.

    mode "random": sigmoid(random 3x3 conv of the 6 channels + mean mel). "masked": returns the masked
    half of the input plus 0.1 * (mean mel + 4), so tests can see which pixels and which audio it got.
    """
    rng = np.random.default_rng(seed)
    w = np.zeros((3, 6, 3, 3), np.float32)
    if mode == "random":
        w[:] = rng.normal(0, 0.2, w.shape)
    else:
        for c in range(3):
            w[c, c, 1, 1] = 1.0  # channels 0-2: the masked face
    nodes = [
        helper.make_node("Conv", ["face", "w"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("ReduceMean", ["mel"], ["loud"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Add", ["loud", "four"], ["loud4"]),
        helper.make_node("Mul", ["loud4", "tenth"], ["lift"]),
        helper.make_node("Add", ["conv", "lift"], ["raw"]),
        helper.make_node("Sigmoid" if mode == "random" else "Identity", ["raw"], ["pred"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_wav2lip",
        [
            helper.make_tensor_value_info("mel_spectrogram", TensorProto.FLOAT, [batch, 1, 80, 16]),
            helper.make_tensor_value_info("video_frames", TensorProto.FLOAT, [batch, 6, 96, 96]),
        ],
        [helper.make_tensor_value_info("pred", TensorProto.FLOAT, [batch, 3, 96, 96])],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.float32(4.0), "four"),
            numpy_helper.from_array(np.float32(0.1), "tenth"),
        ],
    )
    # rename graph inputs used by the nodes
    graph.node[0].input[0] = "video_frames"
    graph.node[1].input[0] = "mel_spectrogram"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return list(face_frames(10, 256, 25.0))


def speech_then_silence(n_frames: int, rate: int = 22050) -> np.ndarray:
    """Loud noise for the first half of the frames' span, silence after."""
    n = round(n_frames / 25 * rate)
    audio = np.zeros(n, np.float32)
    audio[: n // 2] = np.random.default_rng(1).normal(0, 0.3, n // 2)
    return audio


def backend_for(model: Path, monkeypatch: pytest.MonkeyPatch) -> Wav2Lip:
    monkeypatch.setenv("LIVEDUB_LIPSYNC__WAV2LIP_ONNX", str(model))
    backend = Wav2Lip(Settings())
    backend.load()
    return backend


def test_unavailable_names_the_missing_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEDUB_LIPSYNC__WAV2LIP_ONNX", str(tmp_path / "w.onnx"))
    assert Wav2Lip.unavailable().startswith(f"no Wav2Lip ONNX weights at {tmp_path / 'w.onnx'} (none ship")
    with pytest.raises(ModelLoadError, match=r"w\.onnx"):
        Wav2Lip(Settings()).load()
    monkeypatch.delenv("LIVEDUB_LIPSYNC__WAV2LIP_ONNX")
    # the export `livedub models export wav2lip` writes into the model store
    assert weights_path(Settings(cache_dir=tmp_path)) == tmp_path / "models" / "wav2lip" / "onnx-fp32" / "wav2lip.onnx"


def test_random_graph_changes_only_the_face_crop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frames: list[np.ndarray]
) -> None:
    backend = backend_for(tiny_wav2lip(tmp_path / "w.onnx"), monkeypatch)
    track = backend.new_track()
    out = backend.animate(frames, np.zeros(len(frames)), track, speech_then_silence(len(frames)), 22050)
    assert len(out) == len(frames)
    for img, src, region in zip(out, frames, track.regions, strict=True):
        assert region is not None and img.shape == src.shape
        x0, y0, x1, y1 = region
        assert np.abs(img[y0:y1, x0:x1].astype(int) - src[y0:y1, x0:x1]).mean() > 5
        outside = img.copy()
        outside[y0:y1, x0:x1] = src[y0:y1, x0:x1]
        assert np.array_equal(outside, src)


def test_masked_half_and_audio_reach_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frames: list[np.ndarray]
) -> None:
    """With a graph that echoes the masked input, the lower half of each crop goes dark, lifted
    only while there is sound: proves mask row/channel layout and per-frame mel windows."""
    backend = backend_for(tiny_wav2lip(tmp_path / "m.onnx", mode="masked", batch=1), monkeypatch)
    assert backend.batch == 1  # a static-batch export is run frame by frame
    track = backend.new_track()
    out = backend.animate(frames, np.zeros(len(frames)), track, speech_then_silence(len(frames)), 22050)
    lower, upper_change = [], []
    for img, src, (x0, y0, x1, y1) in zip(out, frames, track.regions, strict=True):
        h, q = y1 - y0, (x1 - x0) // 4
        top = slice(y0 + h // 8, y0 + 3 * h // 8)
        upper_change.append(np.abs(img[top, x0:x1].astype(int) - src[top, x0:x1]).mean())
        lower.append(img[y0 + 5 * h // 8 : y0 + 7 * h // 8, x0 + q : x1 - q].mean())
    quiet = slice(-3, None)  # the last frames are silent: mel -4 lifts nothing
    assert max(upper_change[quiet]) < 6  # the upper half comes back as it went in
    assert max(lower[quiet]) < 30  # the lower half was masked to black
    assert min(lower[:3]) > max(lower[quiet]) + 20  # sound in the first frames' mel windows lifts them


def test_graph_with_wrong_signature_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    model = helper.make_model(
        helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "bad.onnx"))
    monkeypatch.setenv("LIVEDUB_LIPSYNC__WAV2LIP_ONNX", str(tmp_path / "bad.onnx"))
    with pytest.raises(ModelLoadError, match=r"does not look like Wav2Lip.*x\[1, 3, 8, 8\]"):
        Wav2Lip(Settings()).load()
