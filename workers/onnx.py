"""The one ONNX Runtime session factory every ONNX model goes through (ours and Optimum's).

Providers in order TensorRT -> CUDA -> CPU on a GPU machine (CPU only otherwise), limited to
what the installed onnxruntime has; TensorRT with fp16 and its engine cache under the model
cache (engines take minutes to build: a restart must not rebuild them); graph optimisation level
and thread counts from `OnnxSettings`, kept small by default so several stages share a
machine's cores without oversubscription. `onnxruntime` (CPU) and `onnxruntime-gpu` are never
installed together (the `cpu` and `gpu` extras): both ship the same module.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from workers.errors import ModelLoadError
from workers.settings import Settings

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
          "all": "ORT_ENABLE_ALL"}


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def providers(settings: Settings, *, fp16: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """(provider, options) best first, for `settings.device`, limited to those installed."""
    available = set(available_providers())
    o = settings.onnx
    out: list[tuple[str, dict[str, Any]]] = []
    if settings.device == "cuda":
        if o.tensorrt and "TensorrtExecutionProvider" in available:
            cache = Path(settings.cache_dir) / "models" / "tensorrt-engines"
            cache.mkdir(parents=True, exist_ok=True)
            out.append(("TensorrtExecutionProvider", {
                "device_id": o.device_id, "trt_fp16_enable": fp16, "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(cache), "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(cache)}))
        if "CUDAExecutionProvider" in available:
            out.append(("CUDAExecutionProvider", {"device_id": o.device_id}))
        if not out:
            log.warning("LIVEDUB_DEVICE=cuda but onnxruntime has no GPU provider (install the gpu extra: "
                        "onnxruntime-gpu); using the CPU")
    out.append(("CPUExecutionProvider", {}))
    return out


def session_options(settings: Settings) -> Any:
    import onnxruntime as ort

    o = settings.onnx
    opts = ort.SessionOptions()
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[o.graph_optimization])
    opts.intra_op_num_threads = o.intra_op_threads
    opts.inter_op_num_threads = o.inter_op_threads
    return opts


def create_session(path: str | Path, settings: Settings, *, fp16: bool = True, intra_op_threads: int | None = None):
    """Open an ONNX model; raises ModelLoadError naming the file. The session's own `get_providers()`
    tells which provider it really got (onnxruntime falls back to the CPU when CUDA libraries fail)."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"ONNX model not found: {path}")
    opts = session_options(settings)
    if intra_op_threads is not None:
        opts.intra_op_num_threads = intra_op_threads
    provs = providers(settings, fp16=fp16)
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=[p for p, _ in provs],
                                       provider_options=[o for _, o in provs])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelLoadError(f"cannot load ONNX model {path}: {e}") from e
    if settings.device == "cuda" and session.get_providers()[0] == "CPUExecutionProvider":
        log.warning("%s runs on the CPU although LIVEDUB_DEVICE=cuda (the GPU provider failed to load)", path.name)
    return session


def ort_model_kwargs(settings: Settings, *, fp16: bool = True) -> dict[str, Any]:
    """Keyword arguments for Optimum's `ORTModel*.from_pretrained`: the same providers and options,
    IO binding on the GPU (inputs and outputs stay on the device between decoder steps)."""
    provs = providers(settings, fp16=fp16)
    return {"providers": [p for p, _ in provs], "provider_options": [o for _, o in provs],
            "session_options": session_options(settings), "use_io_binding": settings.device == "cuda"}
