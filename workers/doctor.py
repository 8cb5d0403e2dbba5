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


ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu")


def onnxruntime_distributions() -> dict[str, str]:
    """Installed ONNX Runtime distributions -> version (both ship the module `onnxruntime`)."""
    from importlib import metadata

    out = {}
    for dist in ORT_DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def run_doctor(load: bool = False) -> int:
    """Print one line per backend and tool; exit 1 if a default backend cannot run."""
    settings = load_settings()
    bad_default = False
    print("backends (* = selected by settings):")
    for stage, backends in BACKENDS.items():
        chosen = getattr(settings, stage).backend
        for name in backends:
            mark = "*" if name == chosen else " "
            devices: tuple[str, ...] = ()
            try:
                cls = backend_class(stage, name)
                devices = cls.capabilities.devices
                reason = cls.unavailable()
            except Exception as e:  # an import failure is exactly what doctor reports
                reason = f"cannot import: {e}"
            status = "ok" if reason is None else f"unavailable: {reason}"
            if reason is None and load:
                status = _try_load(cls, settings)
            if devices and settings.device not in devices:
                status += f"; runs on {', '.join(devices)} only, not LIVEDUB_DEVICE={settings.device}"
            if mark == "*" and not status.startswith("ok"):
                bad_default = True
            print(f" {mark} {stage:<9} {name:<15} [{','.join(devices)}] {status}")
    dists = onnxruntime_distributions()
    try:
        from workers.onnx import available_providers

        provs = ", ".join(available_providers())
    except ImportError as e:
        provs = f"cannot import onnxruntime: {e}"
    print(f"onnx runtime: {', '.join(f'{d} {v}' for d, v in dists.items()) or 'not installed'} ({provs})")
    if len(dists) > 1:
        bad_default = True
        print("  both onnxruntime and onnxruntime-gpu are installed: they overwrite each other's module; "
              "keep one (scripts/install.sh --gpu swaps them)")
    print("system tools:")
    for tool, why in TOOLS.items():
        path = shutil.which(tool)
        print(f"   {tool:<10} {path or 'missing'}  ({why})")
    print_languages(settings)
    if bad_default:
        print("a selected backend cannot run: install what is missing or choose another with LIVEDUB_<STAGE>__BACKEND")
    return 1 if bad_default else 0


def print_languages(settings) -> None:
    """The language matrix of the selected backends: what is heard, and who reaches each target."""
    from workers.language_matrix import format_matrix, machine_matrix

    print("languages:")
    try:
        text = format_matrix(machine_matrix(settings), settings)
    except Exception as e:  # doctor reports what is broken instead of failing on it
        text = f"cannot tell: {e}"
    print("\n".join(f"  {line}" if line else "" for line in text.splitlines()))


def _try_load(cls: type, settings: object) -> str:
    started = time.perf_counter()
    try:
        backend = cls(settings)
        backend.load()
        extra = ""
        langs = backend.capabilities.languages
        if langs is not None:
            extra = f"; hears {', '.join(sorted(langs))}"
        if hasattr(backend, "voices"):
            extra = f"; voices: {len(backend.voices())}"
        if hasattr(backend, "pairs"):
            extra = "; pairs: " + ", ".join(f"{s}->{t}" for s, t in sorted(backend.pairs()))
        backend.close()
    except LiveDubError as e:
        return f"load failed: {e}"
    return f"ok (loaded in {time.perf_counter() - started:.1f} s{extra})"
