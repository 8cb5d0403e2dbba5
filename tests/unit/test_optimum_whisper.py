"""Whisper through Optimum / ONNX Runtime: the greedy loop, the backend on the packaged weights."""

from __future__ import annotations

import numpy as np
import pytest

from workers.asr.whisper_onnx import DecoderTokens, WhisperOnnxDecoder


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory, settings):
    """A tiny random Whisper (real tokenizer and generation config), exported and quantised."""
    import json

    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    from workers.asr.models import join_base
    from workers.models.ct2 import read_model_dir
    from workers.models.export import export_onnx
    from workers.models.quantize import quantize_file
    from workers.models.whisper_import import configs, tokenizer

    base = join_base(settings.cache_dir)
    tok = tokenizer(base)
    _, gen = configs(read_model_dir(base), json.loads((base / "config.json").read_text()),
                     json.loads((base / "vocabulary.json").read_text()))
    torch.manual_seed(1)
    cfg = WhisperConfig(vocab_size=len(tok), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                        decoder_start_token_id=50258, eos_token_id=50257, pad_token_id=50257, bos_token_id=50257)
    root = tmp_path_factory.mktemp("tiny-whisper-onnx")
    model = WhisperForConditionalGeneration(cfg).eval()
    gen.max_length = 24  # random weights never say <|endoftext|>: keep the comparison short
    model.generation_config = gen
    model.save_pretrained(root / "hf")
    WhisperProcessor(WhisperFeatureExtractor(), tok).save_pretrained(root / "hf")
    export_onnx(root / "hf", root / "fp32")
    for f in (root / "fp32").glob("*.onnx"):
        quantize_file(f, root / "int8")
    return model, root


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_greedy_loop_gives_the_tokens_transformers_generate_gives(tiny_onnx, precision):
    import onnxruntime as ort
    import torch
    from optimum.onnxruntime import ORTModelForSpeechSeq2Seq

    from workers.models.quantize import copy_companions

    model, root = tiny_onnx
    d = root / precision
    if precision != "fp32":
        copy_companions(root / "fp32", d)
    m = ORTModelForSpeechSeq2Seq.from_pretrained(d, provider="CPUExecutionProvider",
                                                 session_options=ort.SessionOptions())
    dec = WhisperOnnxDecoder(m.encoder.session, m.decoder.session, DecoderTokens.from_generation_config(
        model.generation_config))
    feats = np.random.default_rng(0).standard_normal((1, 80, 3000)).astype(np.float32)
    for lang in ("en", "de"):
        out = dec.decode(feats, lang)
        ref = m.generate(torch.from_numpy(feats), language=lang, task="transcribe", do_sample=False,
                         max_new_tokens=len(out.tokens) + 1)[0].tolist()
        ref_tokens = [t for t in ref[4:] if t != 50257]  # after <|sot|><|lang|><|task|><|notimestamps|>
        n = min(len(out.tokens), len(ref_tokens))
        assert n >= 4 and out.tokens[:n] == ref_tokens[:n], (lang, out.tokens, ref)
    detected = dec.decode(feats, None)
    assert detected.language in dec.t.languages and 0 < detected.language_probability <= 1


@pytest.mark.slow
def test_the_backend_transcribes_the_packaged_base_in_int8(settings):
    from workers.asr.optimum_whisper import OptimumWhisper
    from workers.bench.scores import wer
    from workers.bench.speech_set import samples

    s = settings.model_copy(update={"asr": settings.asr.model_copy(update={"backend": "optimum-whisper"})})
    b = OptimumWhisper(s)
    b.load()
    assert b.precision == "int8" and b.artifact.key == "whisper-base/onnx-int8"
    assert b.model.providers[0] == "CPUExecutionProvider"
    en = samples(s, ("en",))
    hyps = [b.transcribe(x.audio, None) for x in en]
    assert {h.language for h in hyps} == {"en"}
    assert wer([x.text for x in en], [h.text for h in hyps]) <= 0.05, [h.text for h in hyps]
    b.close()


@pytest.mark.slow
def test_the_translate_task_speaks_english_for_a_spanish_speaker(settings):
    from workers.asr.optimum_whisper import OptimumWhisper
    from workers.asr.stage import AsrStage
    from workers.bench.speech_set import PARALLEL, spoken
    from workers.records import SpeechSegment, float_to_pcm

    s = settings.model_copy(update={"asr": settings.asr.model_copy(update={"backend": "optimum-whisper",
                                                                          "task": "translate"})})
    stage = AsrStage(OptimumWhisper(s))
    stage.load()
    smp = spoken(s, "es", PARALLEL[1]["es"])  # "Muchas gracias por tu ayuda con la presentación."
    seg = SpeechSegment("s", 0, 0.0, 3.0, 16000, float_to_pcm(smp.audio), "pause", ("en",), None, 0.0)
    (tr,) = stage.process_sync(seg)
    assert tr.language == "en" and stage._languages["s"] == "es"  # English text, Spanish speaker kept
    assert {"thank", "help", "presentation"} & set(tr.text.lower().replace(".", " ").replace(",", " ").split()), tr.text
    stage.close()
