"""The Wav2Lip generator in PyTorch, with exactly the module and parameter names of the public
checkpoints (`wav2lip.pth`, `wav2lip_gan.pth`; Rudrabha/Wav2Lip models/wav2lip.py and conv.py),
so a user's file loads with `strict=True`; `load_checkpoint` also takes DataParallel saves
(`module.` prefixes) and the training script's {"state_dict": ...} wrapper. The expected names
and shapes are kept in tests/data/wav2lip_state_dict.json and checked by the tests.

Inputs: mel windows (B, 1, 80, 16) and faces (B, 6, 96, 96) (lower half masked, then the
reference); output (B, 3, 96, 96) in (0, 1), BGR like the input.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from workers.errors import ModelLoadError


class Conv2d(nn.Module):
    """Conv + BatchNorm + ReLU, with an in-place residual add before the ReLU."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, residual: bool = False) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class Conv2dTranspose(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, output_padding=0) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding),
                                        nn.BatchNorm2d(cout))
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _res(c: int, n: int) -> list[Conv2d]:
    return [Conv2d(c, c, kernel_size=3, stride=1, padding=1, residual=True) for _ in range(n)]


class Wav2LipNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2d(6, 16, kernel_size=7, stride=1, padding=3)),  # 96x96
            nn.Sequential(Conv2d(16, 32, kernel_size=3, stride=2, padding=1), *_res(32, 2)),  # 48
            nn.Sequential(Conv2d(32, 64, kernel_size=3, stride=2, padding=1), *_res(64, 3)),  # 24
            nn.Sequential(Conv2d(64, 128, kernel_size=3, stride=2, padding=1), *_res(128, 2)),  # 12
            nn.Sequential(Conv2d(128, 256, kernel_size=3, stride=2, padding=1), *_res(256, 2)),  # 6
            nn.Sequential(Conv2d(256, 512, kernel_size=3, stride=2, padding=1), *_res(512, 1)),  # 3
            nn.Sequential(Conv2d(512, 512, kernel_size=3, stride=1, padding=0),  # 1
                          Conv2d(512, 512, kernel_size=1, stride=1, padding=0)),
        ])
        self.audio_encoder = nn.Sequential(
            Conv2d(1, 32, kernel_size=3, stride=1, padding=1), *_res(32, 2),
            Conv2d(32, 64, kernel_size=3, stride=(3, 1), padding=1), *_res(64, 2),
            Conv2d(64, 128, kernel_size=3, stride=3, padding=1), *_res(128, 2),
            Conv2d(128, 256, kernel_size=3, stride=(3, 2), padding=1), *_res(256, 1),
            Conv2d(256, 512, kernel_size=3, stride=1, padding=0),
            Conv2d(512, 512, kernel_size=1, stride=1, padding=0),
        )
        up = {"kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}
        self.face_decoder_blocks = nn.ModuleList([
            nn.Sequential(Conv2d(512, 512, kernel_size=1, stride=1, padding=0)),
            nn.Sequential(Conv2dTranspose(1024, 512, kernel_size=3, stride=1, padding=0), *_res(512, 1)),  # 3
            nn.Sequential(Conv2dTranspose(1024, 512, **up), *_res(512, 2)),  # 6
            nn.Sequential(Conv2dTranspose(768, 384, **up), *_res(384, 2)),  # 12
            nn.Sequential(Conv2dTranspose(512, 256, **up), *_res(256, 2)),  # 24
            nn.Sequential(Conv2dTranspose(320, 128, **up), *_res(128, 2)),  # 48
            nn.Sequential(Conv2dTranspose(160, 64, **up), *_res(64, 2)),  # 96
        ])
        self.output_block = nn.Sequential(Conv2d(80, 32, kernel_size=3, stride=1, padding=1),
                                          nn.Conv2d(32, 3, kernel_size=1, stride=1, padding=0), nn.Sigmoid())

    def forward(self, audio_sequences: torch.Tensor, face_sequences: torch.Tensor) -> torch.Tensor:
        """4-D inputs as in Wav2Lip's inference: audio (B, 1, 80, 16), faces (B, 6, 96, 96)."""
        feats = []
        x = face_sequences
        for block in self.face_encoder_blocks:
            x = block(x)
            feats.append(x)
        x = self.audio_encoder(audio_sequences)
        for block in self.face_decoder_blocks:
            x = torch.cat((block(x), feats.pop()), dim=1)  # decoder output first, then the skip
        return self.output_block(x)


def clean_state_dict(obj: object) -> dict[str, torch.Tensor]:
    """The generator's weights from a checkpoint object: {"state_dict": ...} or a bare state dict,
    with DataParallel's `module.` prefixes removed."""
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not sd:
        raise ModelLoadError("not a Wav2Lip checkpoint: expected a state dict (or {'state_dict': ...})")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_checkpoint(path: Path, device: str = "cpu") -> Wav2LipNet:
    """A user's wav2lip.pth / wav2lip_gan.pth, strictly: every key, no extra ones."""
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:
        raise ModelLoadError(f"cannot read Wav2Lip checkpoint {path}: {e}") from e
    model = Wav2LipNet()
    try:
        model.load_state_dict(clean_state_dict(obj), strict=True)
    except RuntimeError as e:
        raise ModelLoadError(f"{path} does not match the Wav2Lip generator: {e}") from e
    return model.eval().to(device)


def export_onnx(model: Wav2LipNet, out: Path, *, fp16: bool = False, opset: int = 17) -> Path:
    """ONNX with a dynamic batch (inputs 'mel' (N,1,80,16), 'face' (N,6,96,96), output 'pred');
    fp16 weights and arithmetic with float32 inputs and outputs, for the CUDA / TensorRT providers."""
    model = model.eval().cpu()
    mel, face = torch.zeros(2, 1, 80, 16), torch.zeros(2, 6, 96, 96)
    dynamic = {"mel": {0: "batch"}, "face": {0: "batch"}, "pred": {0: "batch"}}
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, (mel, face), str(out), input_names=["mel", "face"], output_names=["pred"],
                          dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True, dynamo=False)
    if fp16:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        converted = convert_float_to_float16(onnx.load(str(out)), keep_io_types=True)
        onnx.save(converted, str(out))
    return out
