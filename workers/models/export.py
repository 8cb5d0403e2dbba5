"""transformers checkpoints -> ONNX through Optimum's exporter (optimum-onnx).

Seq2seq models (Whisper, Marian, M2M-100/NLLB) export to an encoder and a merged decoder (one
graph with and without past key/values, `decoder_model_merged.onnx`), the layout
`ORTModelForSpeechSeq2Seq` / `ORTModelForSeq2SeqLM` load. The unmerged decoders the exporter also
writes are dropped: nothing loads them and they double the size on disk.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from workers.errors import ModelLoadError

log = logging.getLogger(__name__)

SEQ2SEQ_FILES = ("encoder_model.onnx", "decoder_model_merged.onnx")
TASKS = {
    "whisper": "automatic-speech-recognition-with-past",
    "marian": "text2text-generation-with-past",
    "m2m_100": "text2text-generation-with-past",
    "vits": "text-to-audio",
}


def model_type(src: Path) -> str:
    import json

    try:
        return json.loads((src / "config.json").read_text())["model_type"]
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"{src} is not a transformers checkpoint (config.json with model_type): {e}") from e


def export_onnx(src: Path, out: Path, *, device: str = "cpu", dtype: str = "fp32", opset: int = 18) -> list[Path]:
    """Export the checkpoint in `src` into `out`; returns the ONNX files kept."""
    from optimum.exporters.onnx import main_export

    mtype = model_type(src)
    task = TASKS.get(mtype)
    if task is None:
        raise ModelLoadError(f"no ONNX export recipe for model type {mtype!r}; known: {', '.join(TASKS)}")
    try:
        if mtype == "vits":
            _export_vits(src, out, device=device, dtype=dtype, opset=opset)
        else:
            main_export(str(src), output=str(out), task=task, opset=opset, device=device, dtype=dtype,
                        local_files_only=True, do_validation=False, library_name="transformers")
    except Exception as e:  # torch / onnx exporter errors
        raise ModelLoadError(f"exporting {src} ({mtype}) to ONNX: {type(e).__name__}: {e}") from e
    keep = SEQ2SEQ_FILES if task.endswith("-with-past") else ("model.onnx",)
    for f in out.glob("*.onnx"):
        if f.name not in keep:
            f.unlink()
    for f in out.glob("*.onnx_data"):
        if f.name.removesuffix("_data") not in keep:
            f.unlink()
    kept = [out / f for f in keep]
    missing = [str(f) for f in kept if not f.is_file()]
    if missing:
        raise ModelLoadError(f"the ONNX export of {src} did not write {', '.join(missing)}")
    return kept


def fold_weight_norm(model) -> int:
    """Bake weight normalisation into plain weights (VITS' flows and HiFi-GAN vocoder use it):
    exported as is, every call recomputes each normalised weight (ReduceL2, Div) in the graph."""
    from torch.nn.utils import parametrize

    n = 0
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            n += 1
    return n


def _export_vits(src: Path, out: Path, *, device: str, dtype: str, opset: int) -> None:
    import torch
    from optimum.exporters.onnx import onnx_export_from_model
    from transformers import AutoTokenizer, VitsModel

    model = VitsModel.from_pretrained(src, local_files_only=True).eval()
    log.info("vits: folded weight norm of %d modules", fold_weight_norm(model))
    if dtype == "fp16":
        model = model.half()
    model = model.to(device)
    tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
    with torch.no_grad():
        onnx_export_from_model(model, out, opset=opset, task="text-to-audio", do_validation=False,
                               preprocessors=[tok], device=device)


def copy_tree(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, dest / f.name)


def dir_size(path: Path, pattern: str = "*.onnx*") -> int:
    return sum(f.stat().st_size for f in path.glob(pattern) if f.is_file())
