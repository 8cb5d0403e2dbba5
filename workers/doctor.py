"""`livedub doctor`: what can run on this machine, and what the default choice is."""

from __future__ import annotations

import shutil
import time

from workers.errors import LiveDubError
from workers.registry import BACKENDS, backend_class
from workers.settings import load_settings

TOOLS = {
    "ffmpeg": "media probing by hand (PyAV bundles its own libraries)",
    "apertium": "translation (apertium backend)",
    "espeak-ng": "speech synthesis for any language (espeak backend)",
    "java": "local Kafka broker and schema registry (livedub worker)",
}


def run_doctor(load: bool = False) -> int:
    """Print one line per backend and tool; exit 1 if a default backend cannot run."""
    settings = load_settings()
    bad_default = False
    print("backends (* = selected by settings):")
    for stage, backends in BACKENDS.items():
        chosen = getattr(settings, stage).backend
        for name in backends:
            mark = "*" if name == chosen else " "
            try:
                cls = backend_class(stage, name)
                reason = cls.unavailable()
            except Exception as e:  # an import failure is exactly what doctor reports
                reason = f"cannot import: {e}"
            status = "ok" if reason is None else f"unavailable: {reason}"
            if reason is None and load:
                status = _try_load(cls, settings)
            if mark == "*" and not status.startswith("ok"):
                bad_default = True
            print(f" {mark} {stage:<9} {name:<15} {status}")
    print("system tools:")
    for tool, why in TOOLS.items():
        path = shutil.which(tool)
        print(f"   {tool:<10} {path or 'missing'}  ({why})")
    if bad_default:
        print("a selected backend cannot run: install what is missing or choose another with LIVEDUB_<STAGE>__BACKEND")
    return 1 if bad_default else 0


def _try_load(cls: type, settings: object) -> str:
    started = time.perf_counter()
    try:
        backend = cls(settings)
        backend.load()
        extra = ""
        if hasattr(backend, "voices"):
            extra = f"; voices: {len(backend.voices())}"
        if hasattr(backend, "pairs"):
            extra = "; pairs: " + ", ".join(f"{s}->{t}" for s, t in sorted(backend.pairs()))
        backend.close()
    except LiveDubError as e:
        return f"load failed: {e}"
    return f"ok (loaded in {time.perf_counter() - started:.1f} s{extra})"
