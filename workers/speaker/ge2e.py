"""GE2E speaker encoder (Resemblyzer's pretrained LSTM, shipped in its wheel), run by ONNX Runtime.

The torch model (3-layer LSTM over 40-band log-mels, 256-d output) is exported once to ONNX with
a dynamic number of partial utterances and frames; pre-processing (volume normalisation, long
silences trimmed, 1.6 s partials at 1.3 per second) is Resemblyzer's own, so embeddings match the
torch model (parity cosine >= 0.999, tested).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar

import numpy as np

from workers.errors import ModelLoadError
from workers.models.store import Artifact, Manifest, ModelStore
from workers.settings import Settings
from workers.speaker.base import SpeakerBackend
from workers.stage import Capabilities

ONNX_FILE = "ge2e.onnx"


def export_ge2e(out: Path) -> Path:
    """Resemblyzer's pretrained VoiceEncoder -> ONNX (input 'mels' (N, T, 40), output 'embeddings' (N, 256))."""
    import torch
    from resemblyzer import VoiceEncoder

    enc = VoiceEncoder(device="cpu", verbose=False).eval()
    mels = torch.zeros(2, 160, 40)
    with torch.no_grad():
        torch.onnx.export(enc, (mels,), str(out), input_names=["mels"], output_names=["embeddings"],
                          dynamic_axes={"mels": {0: "partials", 1: "frames"}, "embeddings": {0: "partials"}},
                          opset_version=17, dynamo=False)
    return out


def ge2e_onnx(settings: Settings) -> Artifact:
    def build(tmp: Path) -> Manifest:
        export_ge2e(tmp / ONNX_FILE)
        import resemblyzer

        return Manifest("ge2e", "onnx-fp32", "onnx", "fp32",
                        str(Path(resemblyzer.__file__).parent / "pretrained.pt"))

    return ModelStore(settings.cache_dir).ensure("ge2e", "onnx-fp32", build)


def partial_mels(wav: np.ndarray) -> np.ndarray:
    """Resemblyzer's pre-processing of a 16 kHz utterance: (n_partials, 160, 40) log-mels."""
    from resemblyzer import VoiceEncoder, audio

    wav = audio.preprocess_wav(wav)
    if len(wav) == 0:  # all of it was silence to Resemblyzer's VAD
        raise ModelLoadError("speaker/ge2e: no speech in the audio") from None
    wav_slices, mel_slices = VoiceEncoder.compute_partial_slices(len(wav), rate=1.3, min_coverage=0.75)
    if wav_slices[-1].stop >= len(wav):
        wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
    mel = audio.wav_to_mel_spectrogram(wav)
    return np.asarray([mel[s] for s in mel_slices], np.float32)


class Ge2e(SpeakerBackend):
    name: ClassVar[str] = "ge2e"
    capabilities: ClassVar[Capabilities] = Capabilities(devices=("cpu", "cuda"))

    @classmethod
    def unavailable(cls) -> str | None:
        for mod in ("resemblyzer", "torch", "librosa", "webrtcvad"):
            if importlib.util.find_spec(mod) is None:
                return f"{mod} is not installed (pip install 'livedub[models]')"
        return None

    def _load(self) -> None:
        from workers.onnx import create_session

        self.artifact = ge2e_onnx(self.settings)
        self.session = create_session(self.artifact.path / ONNX_FILE, self.settings)

    def _embed(self, audio16k: np.ndarray) -> np.ndarray:
        partials = self.session.run(["embeddings"], {"mels": partial_mels(audio16k)})[0]
        return partials.mean(axis=0)

    def embed_windows(self, windows: list[np.ndarray]) -> np.ndarray:
        """One embedding per raw 16 kHz window (no silence trimming: the window is what it is), in one
        batch: (n, 256), unit length. For speaker-change detection on short stretches of a stream."""
        from resemblyzer import audio
        from resemblyzer.hparams import audio_norm_target_dBFS, partials_n_frames

        self.load()
        mels = []
        for w in windows:
            mel = audio.wav_to_mel_spectrogram(audio.normalize_volume(np.asarray(w, np.float32),
                                                                      audio_norm_target_dBFS, increase_only=True))
            mel = mel[:partials_n_frames]
            mels.append(np.pad(mel, ((0, partials_n_frames - len(mel)), (0, 0))))
        out = self.session.run(["embeddings"], {"mels": np.asarray(mels, np.float32)})[0]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
