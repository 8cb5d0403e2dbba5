"""MMS-TTS (Massively Multilingual Speech; VITS through transformers) for languages Piper lacks.

One small VITS model per language (`facebook/mms-tts-<iso639-3>`), exported once to ONNX with
Optimum's exporter and run by the project's ONNX session factory. MMS voices are trained on
one speaker per language and read characters (no phonemiser), so no phoneme timings: the mouth
track comes from the audio envelope. Languages are those whose model is here (pulled, in the
hub cache or a local directory).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workers.errors import ModelLoadError, StageError
from workers.models.quantize import Int8Recipe
from workers.models.store import ModelStore
from workers.settings import Settings
from workers.stage import Capabilities
from workers.translate.languages import ISO1_TO_ISO3
from workers.translate.seq2seq import local_checkpoint, neural_unavailable
from workers.tts.stage import Synth
from workers.tts.voices import TableTts, VoiceTable, check_request

log = logging.getLogger(__name__)
THREADS = 2


class MmsVoice:
    def __init__(self, session: Any, tokenizer: Any, rate: int) -> None:
        self.session, self.tokenizer, self.rate = session, tokenizer, rate


class MmsTts(TableTts):
    name: ClassVar[str] = "mms"
    capabilities: ClassVar[Capabilities] = Capabilities(languages=None, devices=("cpu", "cuda"))

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)

    @classmethod
    def unavailable(cls) -> str | None:
        from workers.settings import load_settings

        reason = neural_unavailable()
        if reason:
            return reason
        backend = cls(load_settings())
        if not backend.local_languages():
            first = backend.model_id(backend.settings.tts.mms_languages[0])
            return (f"no MMS-TTS voice is here: `livedub models pull {first}` (one per language) where the hub "
                    "is reachable")
        return None

    def model_id(self, lang: str) -> str:
        return self.settings.tts.mms_model.format(iso3=ISO1_TO_ISO3.get(lang, lang), iso1=lang)

    def local_languages(self) -> list[str]:
        langs = self.settings.tts.mms_languages
        return [lang for lang in langs if local_checkpoint(self.settings, self.model_id(lang))]

    def _load(self) -> None:
        langs = self.local_languages()
        if not langs:
            first = self.model_id(self.settings.tts.mms_languages[0])
            raise ModelLoadError(f"no MMS-TTS voice is here for {', '.join(self.settings.tts.mms_languages)}: run "
                                 f"`livedub models pull {first}` (one per language) on a machine with hub access")
        self._table = VoiceTable("mms", {lang: self._voice(lang) for lang in langs})

    def _voice(self, lang: str) -> MmsVoice:
        from transformers import AutoTokenizer

        from workers.models.recipes import adopt, hub_checkpoint, onnx_variant, store_name
        from workers.onnx import create_session

        model_id = self.model_id(lang)
        store = ModelStore(self.settings.cache_dir)
        path = Path(model_id).expanduser()

        def checkpoint():
            return adopt(store, path.name, path) if path.is_dir() else hub_checkpoint(store, model_id)

        # fp32 on CPU: dynamic int8 of a VITS vocoder was slower here (convolutions), fp16 on GPU.
        precision = "fp16" if self.settings.device == "cuda" else "fp32"
        art = onnx_variant(store, store_name(path.name if path.is_dir() else model_id), checkpoint, precision,
                           recipe=Int8Recipe(), device=self.settings.device)
        try:
            tok = AutoTokenizer.from_pretrained(art.path, local_files_only=True)
            import json

            rate = int(json.loads((art.path / "config.json").read_text()).get("sampling_rate", 16000))
        except Exception as e:
            raise ModelLoadError(f"cannot load the MMS-TTS tokenizer of {art.path}: {e}") from e
        session = create_session(art.path / "model.onnx", self.settings, fp16=precision == "fp16",
                                 intra_op_threads=THREADS)
        log.info("mms voice %s (%s) on %s", art.key, lang, session.get_providers()[0])
        return MmsVoice(session, tok, rate)

    def synthesize(self, text: str, lang: str, speed: float = 1.0, variant: str = "") -> Synth:
        voice: MmsVoice = self.table().get(lang)  # one voice per language: `variant` is always ""
        if not check_request(text, speed):
            return Synth(np.zeros(0, np.float32), voice.rate)
        enc = voice.tokenizer(text, return_tensors="np")
        if enc["input_ids"].shape[1] == 0:
            return Synth(np.zeros(0, np.float32), voice.rate)
        feeds = {i.name: enc[i.name].astype(np.int64) for i in voice.session.get_inputs() if i.name in enc}
        try:
            wave = voice.session.run(["waveform"], feeds)[0][0]
        except Exception as e:
            raise StageError("tts", self.name, f"{type(e).__name__}: {e}") from e
        audio = np.asarray(wave, np.float32)
        if speed != 1.0:  # the speaking rate is a constant of the export: change it on the audio
            from workers.tts.fit import time_compress

            audio = time_compress(audio, voice.rate, speed)
        return Synth(audio, voice.rate)
