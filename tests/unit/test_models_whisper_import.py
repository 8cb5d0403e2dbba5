"""The CTranslate2 -> transformers Whisper importer: exact round trip on a tiny model, real base parity."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from workers.errors import ModelLoadError
from workers.models.ct2 import read_model_bin, read_model_dir
from workers.models.whisper_import import import_ct2_whisper


@pytest.fixture(scope="module")
def tiny_ct2(tmp_path_factory, settings):
    """A tiny random transformers Whisper (the real tokenizer), converted by CTranslate2's own converter."""
    import ctranslate2
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    from workers.asr.models import join_base
    from workers.models.whisper_import import tokenizer

    root = tmp_path_factory.mktemp("tiny-whisper")
    base = join_base(settings.cache_dir)
    tok = tokenizer(base)
    torch.manual_seed(0)
    cfg = WhisperConfig(vocab_size=len(tok), d_model=32, encoder_layers=2, decoder_layers=2,
                        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                        max_source_positions=1500, max_target_positions=448, num_mel_bins=80,
                        decoder_start_token_id=50258, eos_token_id=50257, pad_token_id=50257, bos_token_id=50257)
    model = WhisperForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # non-zero biases everywhere (k projections have none), so a swap would show
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_()
    hf = root / "hf"
    model.save_pretrained(hf)
    WhisperProcessor(WhisperFeatureExtractor(), tok).save_pretrained(hf)
    ct2 = root / "ct2"
    ctranslate2.converters.TransformersConverter(str(hf), copy_files=["tokenizer.json"]).convert(
        str(ct2), quantization="float16")
    return model, ct2, root


def test_a_converted_model_imports_back_to_the_same_weights(tiny_ct2):
    import torch
    from transformers import WhisperForConditionalGeneration

    model, ct2, root = tiny_ct2
    out = import_ct2_whisper(ct2, root / "imported")
    back = WhisperForConditionalGeneration.from_pretrained(out).eval()  # loads every key it expects
    want = {k: v.half().float() for k, v in model.state_dict().items()}  # what float16 storage keeps
    got = back.state_dict()
    assert set(got) == set(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    assert back.config.decoder_layers == 2 and back.config.d_model == 32 and back.config.tie_word_embeddings
    gen = back.generation_config
    assert gen.lang_to_id["<|es|>"] == 50262 and gen.task_to_id == {"transcribe": 50359, "translate": 50358}
    assert gen.no_timestamps_token_id == 50363 and gen.decoder_start_token_id == 50258


def test_a_broken_model_bin_is_refused_with_what_is_wrong(tiny_ct2):
    _, ct2, _ = tiny_ct2
    data = (ct2 / "model.bin").read_bytes()
    assert read_model_bin(data).spec == "WhisperSpec"
    with pytest.raises(ModelLoadError, match="truncated"):
        read_model_bin(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="trailing bytes"):
        read_model_bin(data + b"\0\0")
    with pytest.raises(ModelLoadError, match="unsupported CTranslate2 binary version"):
        read_model_bin(struct.pack("<I", 99) + data[4:])


@pytest.mark.slow
def test_the_packaged_base_decodes_as_ctranslate2_does(settings, tmp_path):
    """Same weights, same features: transformers' greedy tokens equal CTranslate2's, encoder to 1e-4."""
    import ctranslate2
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from tests.support.speech import speak
    from workers.asr.models import join_base

    src = join_base(settings.cache_dir)
    m = read_model_dir(src)
    assert len(m.variables) == 214 and m.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    out = import_ct2_whisper(src, tmp_path / "base")
    model = WhisperForConditionalGeneration.from_pretrained(out).eval()
    proc = WhisperProcessor.from_pretrained(out)
    ct = ctranslate2.models.Whisper(str(src), device="cpu", compute_type="float32")
    clips = {"en": "Hello, my name is Anna and I live in London with my family.",
             "es": "Buenos días, me llamo Juan y vivo en Madrid con mi familia.",
             "fr": "Bonjour, je m'appelle Marie et j'habite à Paris avec ma famille."}
    for lang, text in clips.items():
        f = proc(speak(text, 16000, voice=lang), sampling_rate=16000, return_tensors="pt").input_features
        prompt = [50258, proc.tokenizer.convert_tokens_to_ids(f"<|{lang}|>"), 50359, 50363]
        ct_ids = ct.generate(ctranslate2.StorageView.from_array(f.numpy()), [prompt], beam_size=1,
                             suppress_blank=True, suppress_tokens=[-1])[0].sequences_ids[0]
        with torch.no_grad():
            ids = model.generate(f, language=lang, task="transcribe", num_beams=1, do_sample=False)[0].tolist()
            enc = model.model.encoder(f).last_hidden_state.numpy()
        assert [t for t in ids if t < 50257] == ct_ids, lang
        ct_enc = np.array(ct.encode(ctranslate2.StorageView.from_array(f.numpy())))
        assert np.abs(ct_enc - enc).max() / np.abs(enc).max() < 1e-4
