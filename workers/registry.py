"""Backend registry: (stage, backend name) -> class, imported lazily.

Adding a backend is one file plus one line here. Entries are import paths so
that listing backends (`livedub doctor`) never imports a heavy model library.
Which stages exist, and their classes, come from the topology (workers/topology.py).
"""

from __future__ import annotations

import logging

from monitoring.metrics import Metrics
from workers.errors import ConfigError
from workers.settings import Settings
from workers.stage import Backend, Stage
from workers.topology import DEFAULT, Topology, import_path

log = logging.getLogger(__name__)

BACKENDS: dict[str, dict[str, str]] = {
    "segment": {
        "silero": "workers.segment.silero:SileroVad",
        "webrtc": "workers.segment.webrtc:WebRtcVad",
    },
    "asr": {
        "faster-whisper": "workers.asr.faster_whisper:FasterWhisper",
        "optimum-whisper": "workers.asr.optimum_whisper:OptimumWhisper",
    },
    "translate": {
        "apertium": "workers.translate.apertium:Apertium",
        "marian": "workers.translate.marian:Marian",
        "nllb": "workers.translate.nllb:Nllb",
    },
    "tts": {
        "auto": "workers.tts.auto:AutoTts",
        "piper": "workers.tts.piper:Piper",
        "espeak": "workers.tts.espeak:Espeak",
        "mms": "workers.tts.mms:MmsTts",
    },
    "lipsync": {
        "landmarks": "workers.lipsync.landmarks:LandmarkLipsync",
        "wav2lip": "workers.lipsync.wav2lip:Wav2Lip",
    },
    # not a pipeline stage: the stages use it (voice matching, speaker turns)
    "speaker": {
        "ge2e": "workers.speaker.ge2e:Ge2e",
        "ecapa": "workers.speaker.ecapa:Ecapa",
        "xvector": "workers.speaker.xvector:XVector",
    },
    # not a pipeline stage: the TTS stage uses it (the dub moved towards the speaker's voice)
    "voice": {
        "praat": "workers.voice.praat:PraatConverter",
        "speecht5": "workers.voice.speecht5:SpeechT5Converter",
    },
}


def backend_class(stage: str, name: str) -> type[Backend]:
    try:
        path = BACKENDS[stage][name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS.get(stage, {}))) or "none"
        raise ConfigError(f"unknown {stage} backend {name!r}; available: {known}") from None
    return import_path(path)


def check_device(stage: str, backend: type[Backend] | Backend, device: str, *, strict: bool) -> None:
    """A backend asked to run on a device it cannot use: an error for a worker (it would hold a GPU
    it never uses), a warning in one process (the stage just runs on the CPU)."""
    devices = backend.capabilities.devices
    if device in devices:
        return
    msg = (f"{stage} backend {backend.name!r} runs on {', '.join(devices)} only, but LIVEDUB_DEVICE={device}; "
           f"choose a {device} backend with LIVEDUB_{stage.upper()}__BACKEND or set LIVEDUB_DEVICE={devices[0]}")
    if strict:
        raise ConfigError(msg)
    log.warning("%s: it will run on the CPU", msg)


def create_backend(kind: str, settings: Settings) -> Backend:
    """The backend of a kind that is not a stage of its own (e.g. `speaker`), as settings choose."""
    cls = backend_class(kind, getattr(settings, kind).backend)
    check_device(kind, cls, settings.device, strict=False)
    return cls(settings)


def create_stage(stage: str, settings: Settings, metrics: Metrics | None = None, *,
                 topology: Topology = DEFAULT, strict_device: bool = False) -> Stage:
    """Build (not load) the stage named `stage` with the backend its settings choose."""
    spec = topology.spec(stage)
    name = getattr(settings, stage).backend
    cls = backend_class(stage, name)
    check_device(stage, cls, settings.device, strict=strict_device)
    return spec.stage_class()(cls(settings), metrics)
