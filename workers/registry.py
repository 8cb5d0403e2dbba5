"""Backend registry: (stage, backend name) -> class, imported lazily.

Adding a backend is one file plus one line here. Entries are import paths so
that listing backends (`livedub doctor`) never imports a heavy model library.
"""

from __future__ import annotations

import importlib

from monitoring.metrics import Metrics
from workers.errors import ConfigError
from workers.settings import Settings
from workers.stage import Backend, Stage

BACKENDS: dict[str, dict[str, str]] = {
    "segment": {
        "silero": "workers.segment.silero:SileroVad",
        "webrtc": "workers.segment.webrtc:WebRtcVad",
    },
    "asr": {
        "faster-whisper": "workers.asr.faster_whisper:FasterWhisper",
    },
    "translate": {
        "apertium": "workers.translate.apertium:Apertium",
    },
    "tts": {
        "auto": "workers.tts.auto:AutoTts",
        "piper": "workers.tts.piper:Piper",
        "espeak": "workers.tts.espeak:Espeak",
    },
    "lipsync": {
        "landmarks": "workers.lipsync.landmarks:LandmarkLipsync",
        "wav2lip": "workers.lipsync.wav2lip:Wav2Lip",
    },
}

STAGES: dict[str, str] = {
    "segment": "workers.segment.stage:SegmentStage",
    "asr": "workers.asr.stage:AsrStage",
    "translate": "workers.translate.stage:TranslateStage",
    "tts": "workers.tts.stage:TtsStage",
    "lipsync": "workers.lipsync.stage:LipsyncStage",
}

STAGE_ORDER: tuple[str, ...] = ("segment", "asr", "translate", "tts", "lipsync")


def _import(path: str) -> type:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def backend_class(stage: str, name: str) -> type[Backend]:
    try:
        path = BACKENDS[stage][name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS.get(stage, {}))) or "none"
        raise ConfigError(f"unknown {stage} backend {name!r}; available: {known}") from None
    return _import(path)


def create_stage(stage: str, settings: Settings, metrics: Metrics | None = None) -> Stage:
    """Build (not load) the stage named `stage` with the backend its settings choose."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; stages: {', '.join(STAGE_ORDER)}")
    name = getattr(settings, stage).backend
    backend = backend_class(stage, name)(settings)
    return _import(STAGES[stage])(backend, metrics)
