"""Choose Whisper's int8 recipe by measurement: quantise the fp32 ONNX export (encoder + merged
decoder) with each candidate, then WER on the evaluation set (language given), p50 latency of a
segment and size. Writes docs/bench/whisper-int8-recipes.json.

    .venv/bin/python scripts/tune_whisper_int8.py [--out docs/bench/whisper-int8-recipes.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from workers.asr.optimum_whisper import onnx_model
from workers.asr.whisper_onnx import DecoderTokens, WhisperOnnxDecoder
from workers.bench.scores import wer
from workers.bench.speech_set import samples
from workers.models.quantize import Int8Recipe, copy_companions, quantize_file
from workers.settings import load_settings

CANDIDATES = {
    "matmul, per-tensor": Int8Recipe(("MatMul",), per_channel=False),
    "matmul, per-channel": Int8Recipe(("MatMul",), per_channel=True),
    "matmul, per-channel, unsigned weights": Int8Recipe(("MatMul",), per_channel=True, unsigned_weights=True),
    "matmul, per-channel, reduced range": Int8Recipe(("MatMul",), per_channel=True, reduce_range=True),
    "matmul + gather, per-tensor": Int8Recipe(("MatMul", "Gather"), per_channel=False),
    "matmul + gather, per-channel": Int8Recipe(("MatMul", "Gather"), per_channel=True),
    "matmul + gather, per-channel, reduced range": Int8Recipe(("MatMul", "Gather"), per_channel=True,
                                                              reduce_range=True),
}


def evaluate(model_dir: Path, data, threads: int = 2) -> dict:
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSpeechSeq2Seq
    from transformers import WhisperProcessor

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    m = ORTModelForSpeechSeq2Seq.from_pretrained(model_dir, provider="CPUExecutionProvider", session_options=so)
    proc = WhisperProcessor.from_pretrained(model_dir)
    dec = WhisperOnnxDecoder(m.encoder.session, m.decoder.session,
                             DecoderTokens.from_generation_config(m.generation_config))
    hyps, times = [], []
    for s in data:
        f = proc(s.audio, sampling_rate=16000, return_tensors="np").input_features
        t = time.perf_counter()
        hyps.append(proc.tokenizer.decode(dec.decode(f, s.lang).tokens, skip_special_tokens=True))
        times.append(time.perf_counter() - t)
    en = [i for i, s in enumerate(data) if s.lang == "en"]
    return {"wer": wer([s.text for s in data], hyps),
            "wer_en": wer([data[i].text for i in en], [hyps[i] for i in en]),
            "wer_other": wer([s.text for i, s in enumerate(data) if i not in en],
                             [h for i, h in enumerate(hyps) if i not in en]),
            "p50_s": float(np.median(times)),
            "size_mb": sum(p.stat().st_size for p in model_dir.glob("*.onnx")) / 1e6}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=Path("docs/bench/whisper-int8-recipes.json"))
    p.add_argument("--only", nargs="*", default=None, help="candidate names to run (default: all)")
    args = p.parse_args()
    settings = load_settings()
    data = samples(settings)
    fp32 = onnx_model(settings, "fp32").path
    result = json.loads(args.out.read_text()) if args.only and args.out.is_file() else {}
    if not args.only:
        result["fp32"] = evaluate(fp32, data)
        print("fp32", result["fp32"], flush=True)
    for name, recipe in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        d = Path(tempfile.mkdtemp(prefix="whisper-int8-"))
        try:
            for f in sorted(fp32.glob("*.onnx")):
                quantize_file(f, d, recipe)
            copy_companions(fp32, d)
            result[name] = {"recipe": recipe.as_json(), **evaluate(d, data)}
        finally:
            shutil.rmtree(d, ignore_errors=True)
        print(name, result[name], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
