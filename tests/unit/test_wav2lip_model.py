"""Wav2Lip in PyTorch: the public checkpoints' names and shapes, strict loading, the ONNX export
that the ONNX backend runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from workers.errors import ModelLoadError  # noqa: E402
from workers.lipsync.wav2lip_model import Wav2LipNet, export_onnx, load_checkpoint  # noqa: E402

EXPECTED = json.loads((Path(__file__).parents[1] / "data" / "wav2lip_state_dict.json").read_text())


def test_names_and_shapes_are_those_of_the_public_checkpoints():
    model = Wav2LipNet()
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == EXPECTED
    assert sum(p.numel() for p in model.parameters()) == 36_298_035  # what Wav2Lip's training prints


def test_a_dataparallel_training_checkpoint_loads_strictly(tmp_path):
    torch.manual_seed(0)
    sd = {f"module.{k}": torch.randn(shape) if shape else torch.tensor(7) for k, shape in EXPECTED}
    path = tmp_path / "wav2lip_gan.pth"
    torch.save({"state_dict": sd, "global_step": 1}, path)
    model = load_checkpoint(path)
    assert torch.equal(model.state_dict()["audio_encoder.0.conv_block.0.weight"],
                       sd["module.audio_encoder.0.conv_block.0.weight"])
    del sd["module.output_block.1.bias"]
    torch.save({"state_dict": sd}, path)
    with pytest.raises(ModelLoadError, match=r"output_block\.1\.bias"):
        load_checkpoint(path)
    sd["module.output_block.1.bias"] = torch.zeros(3)
    sd["module.extra.weight"] = torch.zeros(1)
    torch.save(sd, path)  # a bare state dict, with a key the generator does not have
    with pytest.raises(ModelLoadError, match=r"extra\.weight"):
        load_checkpoint(path)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = Wav2LipNet().eval()
    for m in model.modules():  # non-trivial batch-norm statistics, as in a trained model
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model, export_onnx(model, tmp_path_factory.mktemp("w2l") / "wav2lip.onnx")


def test_the_export_has_a_dynamic_batch_and_matches_torch(exported):
    import onnxruntime as ort

    model, path = exported
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        mel = rng.uniform(-4, 4, (batch, 1, 80, 16)).astype(np.float32)
        face = rng.uniform(0, 1, (batch, 6, 96, 96)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(mel), torch.from_numpy(face)).numpy()
        got = s.run(["pred"], {"mel": mel, "face": face})[0]
        assert got.shape == (batch, 3, 96, 96) and np.abs(got - ref).max() < 1e-4


def test_the_fp16_export_keeps_float32_inputs_and_outputs(exported, tmp_path):
    import onnx

    model, _ = exported
    path = export_onnx(model, tmp_path / "w2l16.onnx", fp16=True)
    g = onnx.load(str(path)).graph
    assert {i.type.tensor_type.elem_type for i in (*g.input, *g.output)} == {onnx.TensorProto.FLOAT}
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in g.initializer)


def test_the_onnx_backend_runs_the_export(exported, settings):
    from workers.lipsync.wav2lip import Wav2Lip
    from workers.media.frames import decode_frame
    from workers.media.reader import iter_video
    from workers.media.sample import make_sample

    _, path = exported
    s = settings.model_copy(update={"lipsync": settings.lipsync.model_copy(update={"wav2lip_onnx": path})})
    clip = settings.cache_dir / "w2l-sample.mp4"
    if not clip.exists():
        make_sample(clip, seconds=1.0)
    frames = [decode_frame(f) for f in iter_video(clip, "s")][:10]
    b = Wav2Lip(s)
    b.load()
    assert b.batch == 16  # dynamic batch read from the export
    out = b.animate(frames, np.zeros(len(frames), np.float32), b.new_track(),
                    np.zeros(6400, np.float32), 16000)
    assert len(out) == len(frames) and out[0].shape == frames[0].shape
    assert any(not np.array_equal(a, f) for a, f in zip(out, frames, strict=True))  # the face was redrawn
