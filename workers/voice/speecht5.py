"""Neural voice conversion with SpeechT5 (`microsoft/speecht5_vc`, speech-to-speech, and the
`microsoft/speecht5_hifigan` vocoder) through transformers: the synthesised speech re-spoken by a
decoder conditioned on the speaker's 512-d x-vector (speaker.backend=xvector gives it).

It needs both models pulled (`livedub models pull microsoft/speecht5_vc` and the vocoder) and torch;
it is slower than Praat (an autoregressive decoder) and meant for a GPU node pool. The decoder
chooses its own timing, so its output is time-fitted back to the input's length.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workers.errors import BadInputError, ModelLoadError, StageError
from workers.records import VoiceProfile
from workers.stage import Capabilities
from workers.voice.base import VoiceConverter
from workers.voice.stats import VoiceStats

RATE = 16000


def checkpoint(settings: Any, model_id: str) -> Path:
    """A local directory as given, else the pulled (or hub-cached) checkpoint; a clear error if neither."""
    from workers.models.recipes import hub_checkpoint
    from workers.models.store import ModelStore

    path = Path(model_id).expanduser()
    return path if path.is_dir() else hub_checkpoint(ModelStore(settings.cache_dir), model_id).path


class SpeechT5Converter(VoiceConverter):
    name: ClassVar[str] = "speecht5"
    capabilities: ClassVar[Capabilities] = Capabilities(devices=("cpu", "cuda"))

    @classmethod
    def unavailable(cls) -> str | None:
        for mod in ("torch", "transformers"):
            if importlib.util.find_spec(mod) is None:
                return f"{mod} is not installed (pip install 'livedub[models]')"
        from workers.settings import load_settings
        from workers.translate.seq2seq import local_checkpoint

        s = load_settings()
        for model in (s.voice.speecht5_model, s.voice.speecht5_vocoder):
            if not local_checkpoint(s, model):
                return f"{model!r} is not here: `livedub models pull {model}` where the hub is reachable"
        return None

    def _load(self) -> None:
        import torch
        from transformers import SpeechT5FeatureExtractor, SpeechT5ForSpeechToSpeech, SpeechT5HifiGan

        v = self.settings.voice
        self.device = "cuda" if self.settings.device == "cuda" else "cpu"
        try:
            model_dir, vocoder_dir = checkpoint(self.settings, v.speecht5_model), checkpoint(self.settings,
                                                                                             v.speecht5_vocoder)
            self.features = SpeechT5FeatureExtractor.from_pretrained(model_dir, local_files_only=True)
            dtype = torch.float16 if self.device == "cuda" else torch.float32
            self.model = SpeechT5ForSpeechToSpeech.from_pretrained(model_dir, local_files_only=True,
                                                                   dtype=dtype).to(self.device).eval()
            self.vocoder = SpeechT5HifiGan.from_pretrained(vocoder_dir, local_files_only=True,
                                                           dtype=dtype).to(self.device).eval()
        except ModelLoadError:
            raise
        except Exception as e:
            raise ModelLoadError(f"cannot load SpeechT5 voice conversion ({type(e).__name__}: {e})") from e
        self.dims = int(self.model.config.speaker_embedding_dim)

    def _convert(self, audio: np.ndarray, sample_rate: int, source: VoiceStats, target: VoiceProfile) -> np.ndarray:
        import soxr
        import torch

        from workers.tts.fit import time_compress

        if len(target.embedding) != self.dims:
            raise BadInputError(
                f"voice/speecht5 is conditioned on a {self.dims}-d x-vector, but the speaker's embedding has "
                f"{len(target.embedding)} dimensions: set LIVEDUB_SPEAKER__BACKEND=xvector")
        x = soxr.resample(audio, sample_rate, RATE) if sample_rate != RATE else audio
        inputs = self.features(audio=x, sampling_rate=RATE, return_tensors="pt")
        dtype = next(self.model.parameters()).dtype
        speaker = torch.tensor(target.embedding, dtype=dtype, device=self.device)[None]
        try:
            with torch.inference_mode():
                y = self.model.generate_speech(inputs["input_values"].to(self.device, dtype), speaker,
                                               vocoder=self.vocoder)
        except Exception as e:
            raise StageError("tts", self.name, f"voice conversion failed: {type(e).__name__}: {e}") from e
        y = y.float().cpu().numpy().reshape(-1)
        if len(y) < RATE // 100:
            return audio  # the decoder stopped at once: keep the synthesised voice rather than silence
        y = time_compress(y, RATE, len(y) / len(x))  # its timing back onto the mouth track's
        return soxr.resample(y, RATE, sample_rate) if sample_rate != RATE else y
