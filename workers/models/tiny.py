"""Tiny randomly initialised models of the real architectures, saved as the hub has them.

The model hubs are unreachable here, so the hub-loading code of the Marian, NLLB/M2M-100,
MMS-TTS (VITS) and Whisper backends is exercised on these: real config classes, real
tokenizers (sentencepiece models trained on a few sentences, a character vocabulary for VITS),
`save_pretrained`, and a Hugging Face cache laid out as `snapshot_download` leaves it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

CORPUS = [
    "Hello, how are you today?", "The meeting starts at ten.", "Thank you very much for your help.",
    "Hola, ¿cómo estás hoy?", "La reunión empieza a las diez.", "Muchas gracias por tu ayuda.",
    "Bonjour, comment allez-vous?", "La réunion commence à dix heures.", "Merci beaucoup pour votre aide.",
]


def _spm(path: Path, vocab: int = 64) -> Path:
    import sentencepiece as spm

    text = path.with_suffix(".txt")
    text.write_text("\n".join(CORPUS * 20) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(path.with_suffix("")), vocab_size=vocab,
                                   character_coverage=1.0, model_type="unigram", bos_id=-1, eos_id=1,
                                   unk_id=2, pad_id=0, minloglevel=2)
    text.unlink()
    return path.with_suffix(".model")


def marian(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    out.mkdir(parents=True, exist_ok=True)
    work = out / ".spm"
    work.mkdir(exist_ok=True)
    model = _spm(work / "shared.model")
    shutil.copy(model, out / "source.spm")
    shutil.copy(model, out / "target.spm")
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model))
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    shutil.rmtree(work)
    tok = MarianTokenizer(str(out / "source.spm"), str(out / "target.spm"), str(out / "vocab.json"),
                          unk_token="<unk>", eos_token="</s>", pad_token="<pad>")
    tok.save_pretrained(out)
    torch.manual_seed(seed)
    cfg = MarianConfig(vocab_size=len(vocab), d_model=32, encoder_layers=2, decoder_layers=2,
                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                       max_position_embeddings=128, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                       decoder_start_token_id=tok.pad_token_id, forced_eos_token_id=tok.eos_token_id)
    MarianMTModel(cfg).eval().save_pretrained(out)
    return out


def nllb(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, NllbTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    model = _spm(out / "sentencepiece.bpe.model")
    from transformers import NllbTokenizer

    slow = NllbTokenizer(vocab_file=str(model))
    slow.save_pretrained(out)
    tok = NllbTokenizerFast.from_pretrained(out)
    tok.save_pretrained(out)
    torch.manual_seed(seed)
    cfg = M2M100Config(vocab_size=len(tok), d_model=32, encoder_layers=2, decoder_layers=2,
                       encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                       max_position_embeddings=128, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                       bos_token_id=tok.bos_token_id, decoder_start_token_id=tok.eos_token_id,
                       scale_embedding=True)
    M2M100ForConditionalGeneration(cfg).eval().save_pretrained(out)
    return out


def vits(out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    out.mkdir(parents=True, exist_ok=True)
    chars = list(" abcdefghijklmnopqrstuvwxyzáéíóúñü'-")
    (out / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}, ensure_ascii=False))
    tok = VitsTokenizer(str(out / "vocab.json"), language="spa", add_blank=True, phonemize=False)
    tok.save_pretrained(out)
    torch.manual_seed(seed)
    cfg = VitsConfig(vocab_size=len(chars), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     ffn_dim=32, flow_size=16, spectrogram_bins=65, upsample_initial_channel=32,
                     upsample_rates=[8, 8], upsample_kernel_sizes=[16, 16],
                     resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], prior_encoder_num_flows=2,
                     duration_predictor_num_flows=2, duration_predictor_filter_channels=16,
                     posterior_encoder_num_wavenet_layers=2, prior_encoder_num_wavenet_layers=2,
                     sampling_rate=16000)
    VitsModel(cfg).eval().save_pretrained(out)
    return out


def in_hub_cache(repo_id: str, src: Path, cache: Path, revision: str = "0" * 40) -> Path:
    """Lay `src` out as huggingface_hub's cache has a downloaded snapshot of `repo_id`."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / revision
    snap.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, snap / f.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snap


ECAPA_HPARAMS = """\
# A tiny ECAPA-TDNN in the layout of speechbrain/spkrec-ecapa-voxceleb (random weights).
n_mels: 80
pretrained_path: {path}
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [32, 32, 32, 32, 96]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 16
    lin_neurons: 24
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
"""


def ecapa(out: Path, seed: int = 0) -> Path:
    import torch
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = ECAPA_TDNN(80, channels=[32, 32, 32, 32, 96], kernel_sizes=[5, 3, 3, 3, 1], dilations=[1, 2, 3, 4, 1],
                       attention_channels=16, lin_neurons=24)
    torch.save(model.state_dict(), out / "embedding_model.ckpt")
    (out / "hyperparams.yaml").write_text(ECAPA_HPARAMS.format(path=out))
    return out


def speecht5_vc(out: Path, speaker_dims: int = 512, seed: int = 0) -> tuple[Path, Path]:
    """A tiny SpeechT5 speech-to-speech model and HiFi-GAN vocoder, as microsoft/speecht5_vc and
    microsoft/speecht5_hifigan are laid out (feature extractor config included)."""
    import torch
    from transformers import (
        SpeechT5Config,
        SpeechT5FeatureExtractor,
        SpeechT5ForSpeechToSpeech,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
    )

    torch.manual_seed(seed)
    model_dir, vocoder_dir = out / "speecht5_vc", out / "speecht5_hifigan"
    cfg = SpeechT5Config(
        vocab_size=16, hidden_size=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 4), conv_kernel=(10, 8, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        speech_decoder_prenet_units=16, speech_decoder_postnet_units=16, speech_decoder_postnet_layers=2,
        speaker_embedding_dim=speaker_dims, num_mel_bins=80, reduction_factor=2, max_speech_positions=600,
        max_text_positions=64)
    SpeechT5ForSpeechToSpeech(cfg).eval().save_pretrained(model_dir)
    SpeechT5FeatureExtractor().save_pretrained(model_dir)
    voc = SpeechT5HifiGanConfig(model_in_dim=80, upsample_initial_channel=16, upsample_rates=[4, 4, 4, 4],
                                upsample_kernel_sizes=[8, 8, 8, 8], resblock_kernel_sizes=[3],
                                resblock_dilation_sizes=[[1, 3]])
    SpeechT5HifiGan(voc).eval().save_pretrained(vocoder_dir)
    return model_dir, vocoder_dir
