"""Every GPU path once, with figures: `python -m workers.bench.gpu_check --out docs/bench/gpu`.

Run by scripts/gpu_check.sh on a CUDA machine (it installs the GPU extra first). Each check is
independent: one that fails is recorded with its error and the others still run. Figures go to
`<out>/gpu_check.json`. `--device cpu` runs the same code on the CPU providers (a dry run that
shows the script works before GPU time is spent on it).

Checks: the providers onnxruntime really uses; faster-whisper float16; Whisper base through
Optimum exported in fp16 on the CUDA and TensorRT providers; Marian, NLLB (M2M-100) and VITS
(tiny models of the real architectures built locally, or the real ones when pulled) in fp16;
Wav2Lip fp16 frames per second, batched, on CUDA and TensorRT (target: >= 2,000 frames/s on an
H100-class GPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _settings(device: str, cache: Path, tensorrt: bool):
    from workers.settings import load_settings

    return load_settings(device=device, cache_dir=cache, onnx={"tensorrt": tensorrt, "intra_op_threads": 0})


def _speech(cache: Path) -> np.ndarray:
    """A real English sentence (the packaged Piper voice), 16 kHz."""
    from workers.bench.speech_set import spoken
    from workers.settings import load_settings

    text = "Thank you very much for your help with the presentation."
    return spoken(load_settings(cache_dir=cache), "en", text).audio


def check_providers(device: str, **_: Any) -> dict[str, Any]:
    import onnxruntime as ort

    out: dict[str, Any] = {"onnxruntime": ort.__version__, "available": ort.get_available_providers()}
    try:
        import torch

        out |= {"torch": torch.__version__, "torch_cuda": torch.version.cuda,
                "cuda_available": torch.cuda.is_available()}
        if torch.cuda.is_available():
            out["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    if device == "cuda" and "CUDAExecutionProvider" not in out["available"]:
        raise RuntimeError("onnxruntime has no CUDAExecutionProvider: is onnxruntime-gpu installed (not onnxruntime)?")
    return out


def check_faster_whisper(device: str, cache: Path, **_: Any) -> dict[str, Any]:
    from workers.asr.faster_whisper import FasterWhisper

    s = _settings(device, cache, False)
    s = s.model_copy(update={"asr": s.asr.model_copy(update={"compute_type": "auto"})})
    b = FasterWhisper(s)
    b.load()
    audio = _speech(cache)
    b.transcribe(audio, "en")
    times = []
    for _ in range(5):
        t = time.perf_counter()
        r = b.transcribe(audio, "en")
        times.append(time.perf_counter() - t)
    return {"compute_type": "float16" if device == "cuda" else "int8", "p50_s": float(np.median(times)),
            "audio_s": len(audio) / 16000, "text": r.text}


def check_optimum_whisper(device: str, cache: Path, tensorrt: bool, **_: Any) -> dict[str, Any]:
    from workers.asr.optimum_whisper import OptimumWhisper

    s = _settings(device, cache, tensorrt)
    s = s.model_copy(update={"asr": s.asr.model_copy(update={"backend": "optimum-whisper"})})
    b = OptimumWhisper(s)
    t = time.perf_counter()
    b.load()
    load_s = time.perf_counter() - t
    audio = _speech(cache)
    b.transcribe(audio, "en")
    times = []
    for _ in range(5):
        t = time.perf_counter()
        r = b.transcribe(audio, "en")
        times.append(time.perf_counter() - t)
    return {"precision": b.precision, "providers": b.model.providers, "load_s": load_s,
            "p50_s": float(np.median(times)), "text": r.text}


def _tiny_or_real(kind: str, root: Path) -> Path:
    from workers.models import tiny

    return getattr(tiny, kind)(root / kind)


def check_seq2seq_mt(device: str, cache: Path, tensorrt: bool, kind: str = "marian", **_: Any) -> dict[str, Any]:
    from optimum.onnxruntime import ORTModelForSeq2SeqLM
    from transformers import AutoTokenizer

    from workers.models.export import export_onnx
    from workers.onnx import ort_model_kwargs

    root = Path(tempfile.mkdtemp(dir=cache))
    src = _tiny_or_real(kind, root)
    precision = "fp16" if device == "cuda" else "fp32"
    export_onnx(src, root / "onnx", device=device, dtype=precision)
    s = _settings(device, cache, tensorrt)
    m = ORTModelForSeq2SeqLM.from_pretrained(root / "onnx", **ort_model_kwargs(s, fp16=precision == "fp16"))
    tok = AutoTokenizer.from_pretrained(root / "onnx")
    batch = tok(["The meeting starts at ten.", "Thank you very much."], return_tensors="pt", padding=True)
    if device == "cuda":
        batch = {k: v.to("cuda") for k, v in batch.items()}
    m.generate(**batch, max_new_tokens=16)
    t = time.perf_counter()
    for _ in range(5):
        m.generate(**batch, max_new_tokens=16)
    return {"model": f"tiny random {kind}", "precision": precision, "providers": m.providers,
            "p50_s": (time.perf_counter() - t) / 5}


def check_vits(device: str, cache: Path, tensorrt: bool, **_: Any) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from workers.models.export import export_onnx
    from workers.onnx import create_session

    root = Path(tempfile.mkdtemp(dir=cache))
    src = _tiny_or_real("vits", root)
    precision = "fp16" if device == "cuda" else "fp32"
    export_onnx(src, root / "onnx", device=device, dtype=precision)
    s = _settings(device, cache, tensorrt)
    sess = create_session(root / "onnx" / "model.onnx", s, fp16=precision == "fp16")
    enc = AutoTokenizer.from_pretrained(root / "onnx")("hola, buenos dias", return_tensors="np")
    feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    sess.run(["waveform"], feeds)
    t = time.perf_counter()
    for _ in range(5):
        sess.run(["waveform"], feeds)
    return {"model": "tiny random vits", "precision": precision, "providers": sess.get_providers(),
            "p50_s": (time.perf_counter() - t) / 5}


def check_wav2lip(device: str, cache: Path, tensorrt: bool, batches: tuple[int, ...] = (1, 32, 128),
                  **_: Any) -> dict[str, Any]:
    from workers.lipsync.wav2lip_model import Wav2LipNet, export_onnx
    from workers.onnx import create_session

    precision = "fp16" if device == "cuda" else "fp32"
    path = export_onnx(Wav2LipNet(), Path(tempfile.mkdtemp(dir=cache)) / "wav2lip.onnx", fp16=precision == "fp16")
    s = _settings(device, cache, tensorrt)
    sess = create_session(path, s, fp16=precision == "fp16")
    out: dict[str, Any] = {"precision": precision, "providers": sess.get_providers(), "weights": "random (speed only)"}
    rng = np.random.default_rng(0)
    for b in batches:
        mel = rng.uniform(-4, 4, (b, 1, 80, 16)).astype(np.float32)
        face = rng.uniform(0, 1, (b, 6, 96, 96)).astype(np.float32)
        sess.run(["pred"], {"mel": mel, "face": face})  # warm-up (TensorRT builds its engine here)
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < 3.0:
            sess.run(["pred"], {"mel": mel, "face": face})
            n += b
        out[f"frames_per_s_batch{b}"] = n / (time.perf_counter() - t)
    return out


CHECKS: dict[str, Callable[..., dict[str, Any]]] = {
    "providers": check_providers,
    "faster_whisper": check_faster_whisper,
    "optimum_whisper_cuda": lambda **kw: check_optimum_whisper(**{**kw, "tensorrt": False}),
    "optimum_whisper_tensorrt": lambda **kw: check_optimum_whisper(**{**kw, "tensorrt": True}),
    "marian": lambda **kw: check_seq2seq_mt(**{**kw, "kind": "marian"}),
    "nllb": lambda **kw: check_seq2seq_mt(**{**kw, "kind": "nllb"}),
    "vits": check_vits,
    "wav2lip_cuda": lambda **kw: check_wav2lip(**{**kw, "tensorrt": False}),
    "wav2lip_tensorrt": lambda **kw: check_wav2lip(**{**kw, "tensorrt": True}),
}


def run(out: Path, device: str, only: list[str] | None = None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(tempfile.mkdtemp(prefix="livedub-gpu-check-"))
    result: dict[str, Any] = {"device": device, "platform": platform.platform(), "checks": {}}
    for name, fn in CHECKS.items():
        if only and name not in only:
            continue
        started = time.perf_counter()
        try:
            figures = fn(device=device, cache=cache, tensorrt=False)
            result["checks"][name] = {"ok": True, "seconds": time.perf_counter() - started, **figures}
        except Exception as e:  # record and go on: one broken path must not hide the others' figures
            result["checks"][name] = {"ok": False, "seconds": time.perf_counter() - started,
                                      "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]}
        print(f"{name}: {json.dumps({k: v for k, v in result['checks'][name].items() if k != 'trace'}, default=str)}",
              flush=True)
        (out / "gpu_check.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m workers.bench.gpu_check")
    p.add_argument("--out", type=Path, default=Path("docs/bench/gpu"))
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--only", nargs="*", default=None, help=f"some of: {', '.join(CHECKS)}")
    args = p.parse_args()
    res = run(args.out, args.device, args.only)
    failed = [n for n, c in res["checks"].items() if not c["ok"]]
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
