"""What SpeechBrain speaker encoders share: loading an `EncoderClassifier` from the hub, or from a
local directory in the same layout (hyperparams.yaml plus the checkpoint files), and embedding."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar

import numpy as np

from workers.errors import ModelLoadError
from workers.models.recipes import store_name
from workers.models.store import ModelStore
from workers.settings import Settings
from workers.speaker.base import SpeakerBackend
from workers.stage import Capabilities


class SpeechBrainSpeaker(SpeakerBackend):
    """A speechbrain `EncoderClassifier`; subclasses name the setting that holds the model id."""

    capabilities: ClassVar[Capabilities] = Capabilities(devices=("cpu", "cuda"))
    model_setting: ClassVar[str]
    dims: ClassVar[int]

    @classmethod
    def source(cls, settings: Settings) -> str:
        return getattr(settings.speaker, cls.model_setting)

    @classmethod
    def unavailable(cls) -> str | None:
        from workers.settings import load_settings

        for mod in ("speechbrain", "torch", "torchaudio"):
            if importlib.util.find_spec(mod) is None:
                return f"{mod} is not installed (pip install 'livedub[models]')"
        source = cls.source(load_settings())
        if Path(source).expanduser().is_dir():
            return None
        try:
            from huggingface_hub import try_to_load_from_cache

            if isinstance(try_to_load_from_cache(source, "hyperparams.yaml"), str):
                return None
        except Exception:
            pass
        env = f"LIVEDUB_SPEAKER__{cls.model_setting.upper()}"
        return (f"the {cls.name} model {source!r} is not here: `livedub models pull {source}` where the hub is "
                f"reachable, or set {env} to a local directory")

    def _load(self) -> None:
        from speechbrain.inference.speaker import EncoderClassifier

        source = self.source(self.settings)
        local = Path(source).expanduser()
        savedir = ModelStore(self.settings.cache_dir).path(store_name(local.name if local.is_dir() else source),
                                                            "speechbrain")
        try:
            self.model = EncoderClassifier.from_hparams(
                source=str(local) if local.is_dir() else source, savedir=str(savedir),
                run_opts={"device": "cuda" if self.settings.device == "cuda" else "cpu"})
        except Exception as e:
            raise ModelLoadError(
                f"cannot load the {self.name} speaker model {source!r} ({type(e).__name__}: {e}); offline, run "
                f"`livedub models pull {source}` where the hub is reachable, or give a local directory") from e

    def _embed(self, audio16k: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            e = self.model.encode_batch(torch.from_numpy(audio16k)[None])
        return e.reshape(-1).cpu().numpy()
