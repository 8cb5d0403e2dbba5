"""Dynamic int8 quantisation of ONNX models through Optimum's ORTQuantizer, with the graph
preparation that makes it pay off (both chosen by measurement, see docs/bench/models.md):

* activation x activation MatMuls (attention scores and values) are left in float: quantising
  them costs a dynamic quantisation of both inputs on every call and made Whisper's encoder
  slower, not faster (ORTQuantizer has no MatMulConstBOnly switch, so they are excluded by name);
* a Transpose of a weight (the output projection an exporter tied to the token embedding) is
  folded into a transposed copy of that weight, so both the embedding Gather and the projection
  MatMul can be quantised and no float copy of the embedding has to stay in the file;
* which operators, per-tensor or per-channel scales, signed or unsigned weights, reduced range:
  a recipe per model family, each chosen by measurement (scripts/tune_whisper_int8.py).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from workers.errors import ModelLoadError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Int8Recipe:
    """Which operators to quantise, how (per channel, signed or unsigned weights)."""

    operators: tuple[str, ...] = ("MatMul",)
    per_channel: bool = False
    unsigned_weights: bool = False  # QUInt8 weights (faster for Piper/VITS convolutions, see docs)
    reduce_range: bool = False

    def as_json(self) -> dict:
        """As it is stored in a model's manifest (lists, not tuples), so recipes compare equal."""
        return {"operators": list(self.operators), "per_channel": self.per_channel,
                "unsigned_weights": self.unsigned_weights, "reduce_range": self.reduce_range}


def _initializer_names(graph, outer: frozenset[str] = frozenset()) -> frozenset[str]:
    return outer | {i.name for i in graph.initializer}


def activation_matmuls(model) -> list[str]:
    """Names of MatMul nodes none of whose inputs is a weight, in the graph and its subgraphs."""
    out: list[str] = []

    def walk(graph, consts: frozenset[str]) -> None:
        consts = _initializer_names(graph, consts) | {n.output[0] for n in graph.node if n.op_type == "Constant"}
        for n in graph.node:
            if n.op_type == "MatMul" and not any(i in consts for i in n.input):
                out.append(n.name)
            for a in n.attribute:
                if a.g is not None and a.g.node:
                    walk(a.g, consts)

    walk(model.graph, frozenset())
    return out


def fold_weight_transposes(model) -> int:
    """Replace Transpose(initializer) nodes by a transposed initializer; returns how many."""
    import numpy as np
    from onnx import numpy_helper

    top = {i.name: i for i in model.graph.initializer}
    folded: dict[str, str] = {}

    def walk(graph) -> int:
        n_folded = 0
        keep = []
        for node in graph.node:
            if node.op_type == "Transpose" and node.input[0] in top:
                perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                out_name = node.output[0]
                if out_name not in folded:
                    arr = numpy_helper.to_array(top[node.input[0]])
                    t = np.ascontiguousarray(arr.transpose(perm) if perm else arr.T)
                    model.graph.initializer.append(numpy_helper.from_array(t, out_name))
                    folded[out_name] = node.input[0]
                n_folded += 1
                continue
            keep.append(node)
            for a in node.attribute:
                if a.g is not None and a.g.node:
                    n_folded += walk(a.g)
        if len(keep) != len(graph.node):
            del graph.node[:]
            graph.node.extend(keep)
        return n_folded

    return walk(model.graph)


def prepare(src: Path, dest: Path) -> list[str]:
    """Write `src` to `dest` with weight transposes folded; returns the MatMuls to leave in float."""
    import onnx

    model = onnx.load(str(src))
    n = fold_weight_transposes(model)
    if n:
        log.info("%s: folded %d weight transposes", src.name, n)
    _drop_unused_initializers(model)
    onnx.save(model, str(dest), save_as_external_data=model.ByteSize() > 1_900_000_000)
    return activation_matmuls(model)


def _drop_unused_initializers(model) -> None:
    used: set[str] = set()

    def walk(graph) -> None:
        for n in graph.node:
            used.update(n.input)
            for a in n.attribute:
                if a.g is not None:
                    walk(a.g)
        used.update(o.name for o in graph.output)

    walk(model.graph)
    keep = [i for i in model.graph.initializer if i.name in used]
    if len(keep) != len(model.graph.initializer):
        del model.graph.initializer[:]
        model.graph.initializer.extend(keep)


def quantize_file(src: Path, dest_dir: Path, recipe: Int8Recipe = Int8Recipe()) -> Path:
    """Dynamic int8 copy of one ONNX file in `dest_dir`, under the same name."""
    from onnxruntime.quantization import QuantType
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    dest_dir.mkdir(parents=True, exist_ok=True)
    stage_dir = dest_dir / ".prepared"
    stage_dir.mkdir(exist_ok=True)
    staged = stage_dir / src.name
    try:
        keep_float = prepare(src, staged)
        qc = AutoQuantizationConfig.avx2(is_static=False, per_channel=recipe.per_channel,
                                         reduce_range=recipe.reduce_range,
                                         operators_to_quantize=list(recipe.operators),
                                         nodes_to_exclude=keep_float)
        qc.weights_dtype = QuantType.QUInt8 if recipe.unsigned_weights else QuantType.QInt8
        ORTQuantizer(staged).quantize(qc, save_dir=dest_dir, file_suffix="")
    except Exception as e:  # onnx / onnxruntime errors
        raise ModelLoadError(f"quantising {src}: {type(e).__name__}: {e}") from e
    finally:
        shutil.rmtree(stage_dir, ignore_errors=True)
        (dest_dir / "ort_config.json").unlink(missing_ok=True)
    produced = (dest_dir / src.stem).with_suffix(".onnx")  # how ORTQuantizer names its output
    target = dest_dir / src.name
    if not produced.is_file():
        raise ModelLoadError(f"quantising {src} wrote no {produced}")
    if produced != target:
        produced.replace(target)
    return target


def copy_companions(src_dir: Path, dest_dir: Path) -> None:
    """Config, tokenizer and processor files a quantised model directory needs beside its ONNX files
    (everything but the models themselves and the store's manifest)."""
    for f in src_dir.iterdir():
        if f.is_file() and ".onnx" not in f.name and f.name != "livedub-model.json":
            shutil.copy2(f, dest_dir / f.name)
