"""Marian, NLLB, MMS-TTS and ECAPA on tiny random models laid out as the hub has them, the model
store, the ONNX session factory and `livedub models`."""

from __future__ import annotations

import numpy as np
import pytest

from workers.errors import ConfigError, ModelLoadError
from workers.models import tiny as tiny_models
from workers.models.store import Manifest, ModelStore


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A Hugging Face cache holding tiny Marian (en-es), NLLB and MMS-TTS (spa) models."""
    import huggingface_hub.constants as hf

    root = tmp_path_factory.mktemp("hub")
    cache = root / "cache"
    tiny_models.in_hub_cache("Helsinki-NLP/opus-mt-en-es", tiny_models.marian(root / "marian"), cache)
    tiny_models.in_hub_cache("facebook/nllb-200-distilled-600M", tiny_models.nllb(root / "nllb"), cache)
    tiny_models.in_hub_cache("facebook/mms-tts-spa", tiny_models.vits(root / "vits"), cache)
    before = hf.HF_HUB_CACHE
    hf.HF_HUB_CACHE = str(cache)
    yield root
    hf.HF_HUB_CACHE = before


@pytest.fixture
def store_settings(settings, tmp_path):
    return settings.model_copy(update={"cache_dir": tmp_path})


def _torch_translation(model_dir, text, **gen):
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir, **({"src_lang": gen.pop("src_lang")} if "src_lang" in gen else {}))
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    batch = tok([text], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, num_beams=1, do_sample=False,
                             max_new_tokens=2 * batch["input_ids"].shape[1] + 10, **gen)
    return tok.batch_decode(out, skip_special_tokens=True)[0].strip()


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_marian_from_the_hub_cache_translates_through_onnx_runtime(hub, store_settings, precision):
    from workers.translate.marian import Marian

    s = store_settings.model_copy(update={"translate": store_settings.translate.model_copy(
        update={"backend": "marian", "precision": precision})})
    mt = Marian(s)
    mt.load()
    assert mt.pairs() == frozenset({("en", "es")})  # only the pair whose model is here
    text = "Hello, how are you today?"
    got = mt.translate(text, "en", "es")
    if precision == "fp32":  # the export computes what the torch model computes
        assert got == _torch_translation(hub / "marian", text)
    art = mt.artifact("Helsinki-NLP/opus-mt-en-es")
    assert art.manifest.precision == precision and (art.path / "decoder_model_merged.onnx").is_file()
    assert not (art.path / "decoder_model.onnx").exists()  # the unmerged decoders are not kept
    with pytest.raises(ModelLoadError, match="livedub models pull Helsinki-NLP/opus-mt-de-en"):
        Marian(s.model_copy(update={"translate": s.translate.model_copy(update={"marian_pairs": ("de-en",)})})).load()


def _weight_bytes(path) -> int:
    """Bytes of the weights in an ONNX directory (a tiny model's files are mostly graph structure)."""
    import onnx

    total = 0
    for f in path.glob("*.onnx"):
        for init in onnx.load(str(f)).graph.initializer:
            total += len(init.raw_data) or 4 * len(init.float_data) + 8 * len(init.int64_data) + len(init.int32_data)
    return total


def _float_weight_matmuls(path) -> list[str]:
    import onnx

    found = []
    for f in path.glob("*.onnx"):
        m = onnx.load(str(f))

        def walk(graph, consts):
            consts = consts | {i.name for i in graph.initializer}
            for n in graph.node:
                if n.op_type == "MatMul" and any(i in consts for i in n.input):
                    found.append(n.name)
                for a in n.attribute:
                    if a.g is not None:
                        walk(a.g, consts)

        walk(m.graph, set())
    return found


def test_int8_quantises_every_weight_matmul(hub, store_settings):
    from workers.translate.marian import Marian

    sizes = {}
    for precision in ("fp32", "int8"):
        s = store_settings.model_copy(update={"translate": store_settings.translate.model_copy(
            update={"precision": precision})})
        art = Marian(s).artifact("Helsinki-NLP/opus-mt-en-es")
        sizes[precision] = _weight_bytes(art.path)
        if precision == "int8":
            assert _float_weight_matmuls(art.path) == []  # every weight MatMul runs in int8
    assert sizes["int8"] < 0.5 * sizes["fp32"], sizes  # the embeddings stay float (the measured recipe)


def test_nllb_uses_its_language_tokens(hub, store_settings):
    from workers.translate.nllb import Nllb, nllb_codes

    s = store_settings.model_copy(update={"translate": store_settings.translate.model_copy(
        update={"backend": "nllb", "precision": "fp32"})})
    mt = Nllb(s)
    mt.load()
    codes = mt.codes()
    assert codes["es"] == "spa_Latn" and codes["zh"] == "zho_Hans" and codes["ar"] == "arb_Arab"
    assert ("en", "es") in mt.pairs() and ("fr", "de") in mt.pairs()
    text = "The meeting starts at ten."
    ref = _torch_translation(hub / "nllb", text, src_lang="eng_Latn",
                             forced_bos_token_id=mt.model(mt.model_id)[1].convert_tokens_to_ids("spa_Latn"))
    assert mt.translate(text, "en", "es") == ref
    assert nllb_codes(["eng_Latn", "spa_Latn", "<s>"]) == {"en": "eng_Latn", "es": "spa_Latn"}


def test_mms_tts_speaks_from_the_hub_cache_with_weight_norm_folded(hub, store_settings):
    import onnx

    from workers.tts.mms import MmsTts

    tts = MmsTts(store_settings)
    tts.load()
    assert tts.voices() == frozenset({"es"})
    out = tts.synthesize("hola, buenos días", "es")
    assert out.sample_rate == 16000 and len(out.audio) > 1000 and np.isfinite(out.audio).all()
    # VITS samples its durations (a tiny random model a lot): halving must show on the mean of a few calls
    def mean_len(speed: float) -> float:
        return float(np.mean([len(tts.synthesize("hola, buenos días", "es", speed=speed).audio) for _ in range(6)]))

    assert mean_len(2.0) < 0.75 * mean_len(1.0)
    art = ModelStore(store_settings.cache_dir).get("facebook--mms-tts-spa", "onnx-fp32")
    ops = {n.op_type for n in onnx.load(str(art.path / "model.onnx")).graph.node}
    assert "ReduceL2" not in ops  # weight norm baked into the weights, not recomputed per call


def test_ecapa_loads_a_local_speechbrain_layout(store_settings, tmp_path):
    from workers.speaker.ecapa import Ecapa

    d = tiny_models.ecapa(tmp_path / "ecapa")
    s = store_settings.model_copy(update={"speaker": store_settings.speaker.model_copy(
        update={"backend": "ecapa", "ecapa_model": str(d)})})
    enc = Ecapa(s)
    t = np.arange(16000) / 16000
    e = enc.embed((0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    assert e.shape == (24,) and abs(float(np.linalg.norm(e)) - 1) < 1e-5


def test_pull_offline_says_so(store_settings, monkeypatch):
    import huggingface_hub.constants as hf

    from workers.models.recipes import pull

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="may be offline"):
        pull(ModelStore(store_settings.cache_dir), "Helsinki-NLP/opus-mt-xx-yy", progress=False)


# -- the model store --------------------------------------------------------------------------------

def test_the_store_builds_once_and_rebuilds_what_is_broken(tmp_path):
    store = ModelStore(tmp_path)
    calls = []

    def build(tmp):
        calls.append(tmp)
        (tmp / "w.bin").write_bytes(b"x" * 10)
        return Manifest("m", "v", "onnx", "fp32", "test")

    a = store.ensure("m", "v", build)
    assert store.ensure("m", "v", build).path == a.path and len(calls) == 1
    assert a.manifest.files == {"w.bin": 10}
    (a.path / "w.bin").write_bytes(b"x")  # truncated: no longer what the manifest says
    store.ensure("m", "v", build)
    assert len(calls) == 2 and [x.key for x in store.all()] == ["m/v"]

    def fail(tmp):
        (tmp / "half").write_bytes(b"1")
        raise ModelLoadError("export failed")

    with pytest.raises(ModelLoadError):
        store.ensure("m", "other", fail)
    assert store.get("m", "other") is None and not store.path("m", "other").exists()


# -- the ONNX session factory -------------------------------------------------------------------------

def test_providers_follow_the_device_setting(settings, monkeypatch):
    from workers import onnx

    assert onnx.providers(settings) == [("CPUExecutionProvider", {})]
    monkeypatch.setattr(onnx, "available_providers", lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                              "CPUExecutionProvider"])
    gpu = settings.model_copy(update={"device": "cuda"})
    names = [p for p, _ in onnx.providers(gpu)]
    assert names == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    trt = onnx.providers(gpu)[0][1]
    assert trt["trt_fp16_enable"] and trt["trt_engine_cache_path"].startswith(str(settings.cache_dir))
    no_trt = gpu.model_copy(update={"onnx": gpu.onnx.model_copy(update={"tensorrt": False})})
    assert [p for p, _ in onnx.providers(no_trt)] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx.ort_model_kwargs(gpu)["use_io_binding"] and not onnx.ort_model_kwargs(settings)["use_io_binding"]
    opts = onnx.session_options(settings.model_copy(update={"onnx": settings.onnx.model_copy(
        update={"intra_op_threads": 3, "graph_optimization": "basic"})}))
    assert opts.intra_op_num_threads == 3 and str(opts.graph_optimization_level).endswith("BASIC")


def test_int8_on_a_gpu_is_refused():
    from workers.models.recipes import precision_for

    assert precision_for("auto", "cpu") == "int8" and precision_for("auto", "cuda") == "fp16"
    with pytest.raises(ConfigError, match="CPU kernels only"):
        precision_for("int8", "cuda")


# -- `livedub models` -------------------------------------------------------------------------------

def test_models_command_line(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants as hf

    from streams.cli import main

    monkeypatch.setenv("LIVEDUB_CACHE_DIR", str(tmp_path))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "empty" in out and "whisper base (CTranslate2 fp16)" in out and "installed" in out
    assert main(["models", "export", "ge2e"]) == 0
    assert main(["models", "verify", "ge2e"]) == 0
    assert "cosine_vs_torch 1" in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    assert "ge2e/onnx-fp32" in capsys.readouterr().out
    assert main(["models", "export", "wav2lip"]) == 2  # no weights ship: a clear error, not a traceback
    assert "--checkpoint" in capsys.readouterr().err
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    assert main(["models", "pull", "Helsinki-NLP/opus-mt-xx-yy"]) == 2
    assert "offline" in capsys.readouterr().err
