"""What `livedub models` can import, export, quantise and verify, by name.

    whisper          the ASR model `asr.model` names (packaged base, a directory or a hub id)
    marian:en-es     the Marian model of a pair (`translate.marian_model`)
    nllb             the NLLB / M2M-100 model (`translate.nllb_model`)
    mms:es           the MMS-TTS voice of a language (`tts.mms_model`)
    piper            the packaged Piper voice(s)
    ge2e             the packaged GE2E speaker encoder (Resemblyzer)
    wav2lip          a Wav2Lip checkpoint (`--checkpoint wav2lip.pth`)

Each build step writes an artifact into the model store; `verify` compares a built model with
its source on fixed inputs and states the tolerance it held it to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workers.errors import ConfigError, ModelLoadError
from workers.models.store import Artifact, Manifest, ModelStore
from workers.settings import Settings

TARGETS = ("whisper", "marian:<src>-<tgt>", "nllb", "mms:<lang>", "piper", "ge2e", "wav2lip")


@dataclass
class Verification:
    target: str
    precision: str
    figures: dict[str, float]
    tolerance: str
    ok: bool


# -- seq2seq (whisper, marian, nllb, mms) -------------------------------------------------------

def _seq2seq(settings: Settings, target: str) -> tuple[str, Callable[[], Artifact], Callable[[str], Artifact]]:
    """(model kind, checkpoint(), onnx(precision)) of a transformers target."""
    from workers.models.recipes import adopt, hub_checkpoint, onnx_variant, store_name

    store = ModelStore(settings.cache_dir)
    if target == "whisper":
        from workers.asr.optimum_whisper import checkpoint, onnx_model

        return "whisper", lambda: checkpoint(settings), lambda p: onnx_model(settings, p)
    if target.startswith(("marian:", "mms:")) or target == "nllb":
        from workers.models.quantize import Int8Recipe
        from workers.translate.seq2seq import MT_INT8

        if target == "nllb":
            model_id, recipe, kind = settings.translate.nllb_model, MT_INT8, "mt"
        elif target.startswith("marian:"):
            src, _, tgt = target.split(":", 1)[1].partition("-")
            if not src or not tgt:
                raise ConfigError(f"{target!r}: name a pair, e.g. marian:en-es")
            model_id, recipe, kind = settings.translate.marian_model.format(src=src, tgt=tgt), MT_INT8, "mt"
        else:
            from workers.translate.languages import ISO1_TO_ISO3

            lang = target.split(":", 1)[1]
            model_id = settings.tts.mms_model.format(iso3=ISO1_TO_ISO3.get(lang, lang), iso1=lang)
            recipe, kind = Int8Recipe(operators=("MatMul", "Gemm", "Conv"), unsigned_weights=True), "vits"
        path = Path(model_id).expanduser()
        name = store_name(path.name if path.is_dir() else model_id)

        def ckpt() -> Artifact:
            return adopt(store, path.name, path) if path.is_dir() else hub_checkpoint(store, model_id)

        return kind, ckpt, lambda p: onnx_variant(store, name, ckpt, p, recipe=recipe, device=settings.device)
    raise ConfigError(f"unknown model target {target!r}; targets: {', '.join(TARGETS)}")


def _whisper_features(n_mels: int) -> np.ndarray:
    """Fixed input: a 2 s chirp with harmonics and noise, as log-mel features (reproducible)."""
    from transformers import WhisperFeatureExtractor

    t = np.arange(32000) / 16000
    rng = np.random.default_rng(0)
    wav = (0.3 * np.sin(2 * np.pi * (150 + 200 * t) * t) + 0.1 * np.sin(2 * np.pi * 900 * t)
           + 0.01 * rng.standard_normal(len(t)))
    fe = WhisperFeatureExtractor(feature_size=n_mels)
    return fe(wav.astype(np.float32), sampling_rate=16000, return_tensors="np").input_features


def _seq2seq_logits_onnx(model_dir: Path, inputs: dict[str, np.ndarray], decoder_ids: list[int],
                         settings: Settings) -> np.ndarray:
    from workers.onnx import create_session

    enc = create_session(model_dir / "encoder_model.onnx", settings)
    dec = create_session(model_dir / "decoder_model_merged.onnx", settings)
    feeds = {i.name: inputs[i.name] for i in enc.get_inputs() if i.name in inputs}
    hidden = enc.run(None, feeds)[0]
    d_in = {i.name: i for i in dec.get_inputs()}
    past = next(i for n, i in d_in.items() if n.startswith("past_key_values"))
    dtype = np.float16 if "float16" in past.type else np.float32
    dfeeds: dict[str, Any] = {"input_ids": np.asarray([decoder_ids], np.int64), "encoder_hidden_states": hidden,
                              "use_cache_branch": np.asarray([False])}
    if "encoder_attention_mask" in d_in:
        dfeeds["encoder_attention_mask"] = inputs["attention_mask"]
    for n in d_in:
        if n.startswith("past_key_values"):
            dfeeds[n] = np.zeros((1, past.shape[1], 0, past.shape[3]), dtype)
    return dec.run(["logits"], dfeeds)[0][0].astype(np.float32)


def _verify_seq2seq(settings: Settings, target: str, precision: str) -> Verification:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, WhisperForConditionalGeneration

    kind, ckpt, onnx = _seq2seq(settings, target)
    if kind == "vits":
        return _verify_vits(settings, target, precision, ckpt(), onnx(precision))
    c, art = ckpt(), onnx(precision)
    if kind == "whisper":
        model = WhisperForConditionalGeneration.from_pretrained(c.path).eval()
        feats = _whisper_features(model.config.num_mel_bins)
        inputs = {"input_features": feats}
        gen = model.generation_config
        prompt = [gen.decoder_start_token_id]
        if getattr(gen, "lang_to_id", None):
            prompt += [gen.lang_to_id["<|en|>"], gen.task_to_id["transcribe"]]
        prompt.append(gen.no_timestamps_token_id)
        with torch.no_grad():
            ref = model(input_features=torch.from_numpy(feats),
                        decoder_input_ids=torch.tensor([prompt])).logits[0].numpy()
    else:
        model = AutoModelForSeq2SeqLM.from_pretrained(c.path).eval()
        tok = AutoTokenizer.from_pretrained(c.path)
        enc = tok(["The meeting starts at ten o'clock tomorrow morning."], return_tensors="np")
        inputs = {k: v.astype(np.int64) for k, v in enc.items()}
        prompt = [model.config.decoder_start_token_id]
        with torch.no_grad():
            ref = model(**{k: torch.from_numpy(v) for k, v in inputs.items()},
                        decoder_input_ids=torch.tensor([prompt])).logits[0].numpy()
    got = _seq2seq_logits_onnx(art.path, inputs, prompt, settings)
    scale = float(np.abs(ref).max())
    rel = float(np.abs(got - ref).max() / scale)
    top1 = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
    tol = {"fp32": 1e-3, "fp16": 2e-2, "int8": 0.25}[precision]
    tolerance = f"max_rel_logit_diff <= {tol}" + (" and top-1 agreement = 1" if precision != "int8" else "")
    return Verification(target, precision, {"max_rel_logit_diff": rel, "top1_agreement": top1}, tolerance,
                        rel <= tol and (precision == "int8" or top1 == 1.0))


def _verify_vits(settings: Settings, target: str, precision: str, c: Artifact, art: Artifact) -> Verification:
    """VITS samples noise: compare the deterministic text encoder path via the waveform length
    distribution is not exact, so check the ONNX model runs and its output is finite and speech-length."""
    from transformers import AutoTokenizer

    from workers.onnx import create_session

    tok = AutoTokenizer.from_pretrained(c.path)
    s = create_session(art.path / "model.onnx", settings)
    enc = tok("hola, buenos días", return_tensors="np")
    wave = s.run(["waveform"], {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")})[0]
    ok = bool(np.isfinite(wave).all() and wave.shape[-1] > 0)
    return Verification(target, precision, {"samples": float(wave.shape[-1])}, "finite, non-empty waveform", ok)


# -- wav2lip and ge2e ---------------------------------------------------------------------------

def wav2lip_onnx(settings: Settings, checkpoint: Path | None, precision: str) -> Artifact:
    from workers.lipsync.wav2lip_model import export_onnx, load_checkpoint

    store = ModelStore(settings.cache_dir)
    found = store.get("wav2lip", f"onnx-{precision}")
    if found is not None and checkpoint is None:
        return found
    if checkpoint is None:
        raise ConfigError("wav2lip: give the checkpoint to export (--checkpoint wav2lip.pth or wav2lip_gan.pth); "
                          "no Wav2Lip weights ship with LiveDub")
    if found is not None:
        store.remove("wav2lip", f"onnx-{precision}")

    def build(tmp: Path) -> Manifest:
        export_onnx(load_checkpoint(checkpoint), tmp / "wav2lip.onnx", fp16=precision == "fp16")
        return Manifest("wav2lip", f"onnx-{precision}", "onnx", precision, str(checkpoint))

    return store.ensure("wav2lip", f"onnx-{precision}", build)


def _verify_wav2lip(settings: Settings, checkpoint: Path | None, precision: str) -> Verification:
    import torch

    from workers.lipsync.wav2lip_model import load_checkpoint
    from workers.onnx import create_session

    art = wav2lip_onnx(settings, None, precision)
    source = Path(checkpoint or art.manifest.source)
    model = load_checkpoint(source)
    rng = np.random.default_rng(0)
    mel = rng.uniform(-4, 4, (4, 1, 80, 16)).astype(np.float32)
    face = rng.uniform(0, 1, (4, 6, 96, 96)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(mel), torch.from_numpy(face)).numpy()
    got = create_session(art.path / "wav2lip.onnx", settings).run(["pred"], {"mel": mel, "face": face})[0]
    diff = float(np.abs(got - ref).max())
    tol = 1e-4 if precision == "fp32" else 1e-2
    return Verification("wav2lip", precision, {"max_abs_diff": diff}, f"max_abs_diff <= {tol} (outputs in 0..1)",
                        diff <= tol)


def _verify_ge2e(settings: Settings) -> Verification:
    from resemblyzer import VoiceEncoder, preprocess_wav

    from workers.speaker.ge2e import Ge2e

    g = Ge2e(settings)
    ve = VoiceEncoder(device="cpu", verbose=False)
    t = np.arange(48000) / 16000
    rng = np.random.default_rng(1)
    wav = (0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(len(t)))
    wav = wav.astype(np.float32)
    cos = float(g.embed(wav, 16000) @ ve.embed_utterance(preprocess_wav(wav)))
    return Verification("ge2e", "fp32", {"cosine_vs_torch": cos}, "cosine >= 0.999", cos >= 0.999)


# -- the commands' entry points -----------------------------------------------------------------

def build(settings: Settings, target: str, precision: str, checkpoint: Path | None = None) -> Artifact:
    """Build (or find) the artifact of `target` in `precision`."""
    if target == "wav2lip":
        return wav2lip_onnx(settings, checkpoint, precision)
    if target == "ge2e":
        from workers.speaker.ge2e import ge2e_onnx

        if precision != "fp32":
            raise ConfigError("ge2e is kept in fp32 (a 1.4 M-parameter LSTM: nothing to gain)")
        return ge2e_onnx(settings)
    if target == "piper":
        from workers.tts.piper import Piper, packaged_voices

        if precision == "fp32":
            raise ConfigError("the Piper voice ships in fp32; `quantize piper` makes the int8 one")
        p = Piper(settings.model_copy(update={"tts": settings.tts.model_copy(update={"piper_precision": "int8"})}))
        path = None
        for vf in packaged_voices():
            path = p._int8_model(vf, p._aligned_model(vf) or vf.path)
        if path is None:
            raise ModelLoadError("no Piper voice package is installed")
        return ModelStore(settings.cache_dir).get(path.parent.parent.name, "onnx-int8")  # type: ignore[return-value]
    _, ckpt, onnx = _seq2seq(settings, target)
    return ckpt() if precision == "checkpoint" else onnx(precision)


def verify(settings: Settings, target: str, precision: str, checkpoint: Path | None = None) -> Verification:
    if target == "wav2lip":
        return _verify_wav2lip(settings, checkpoint, precision)
    if target == "ge2e":
        return _verify_ge2e(settings)
    if target == "piper":
        raise ConfigError("piper int8 is judged by listening: `livedub bench --stage tts` (round-trip WER)")
    return _verify_seq2seq(settings, target, precision)
