"""The one ONNX Runtime session factory every ONNX backend uses.

Chooses execution providers from the device setting (TensorRT, then CUDA, then
CPU on GPU machines; CPU only otherwise), and keeps thread counts small so
several stages can share a machine's cores without oversubscription.
"""

from __future__ import annotations

import logging
from pathlib import Path

from workers.errors import ModelLoadError

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def providers_for(device: str) -> list[str]:
    """Execution providers to request, best first, limited to those installed."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    wanted = [*GPU_PROVIDERS, "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    chosen = [p for p in wanted if p in available]
    if device == "cuda" and not any(p in available for p in GPU_PROVIDERS):
        log.warning("device=cuda but onnxruntime has no GPU provider (install onnxruntime-gpu); using CPU")
    return chosen


def create_session(path: str | Path, device: str = "cpu", intra_op_threads: int = 1):
    """Open an ONNX model with graph optimisation on; raises ModelLoadError naming the file."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"ONNX model not found: {path}")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers_for(device))
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelLoadError(f"cannot load ONNX model {path}: {e}") from e
