"""Greedy Whisper decoding over the ONNX sessions an Optimum `ORTModelForSpeechSeq2Seq` opened.

transformers' `generate()` costs ~30 ms of Python per token on this class of CPU (logits
processors, past key/values converted to torch and back on every step) while one merged-decoder
step takes 8 ms in int8: the overhead, not the model, decided the latency (docs/bench/models.md).
This loop runs the same sessions (same files, providers and session options) with the past
key/values kept as `OrtValue`s between steps (`run_with_ort_values`: no host copies, on CPU or
GPU) and applies exactly the decoding rules faster-whisper and transformers apply for greedy
decoding without timestamps: prompt <|startoftranscript|> <|lang|> <|task|> <|notimestamps|>,
`suppress_tokens` on every step, `begin_suppress_tokens` on the first, stop at <|endoftext|>.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DecoderTokens:
    sot: int
    eot: int
    no_timestamps: int
    tasks: dict[str, int]
    languages: dict[str, int]  # "en" -> id of <|en|>
    suppress: tuple[int, ...]
    begin_suppress: tuple[int, ...]
    max_length: int

    @classmethod
    def from_generation_config(cls, gen: Any) -> DecoderTokens:
        langs = {k.strip("<|>"): v for k, v in (getattr(gen, "lang_to_id", None) or {}).items()}
        return cls(gen.decoder_start_token_id, gen.eos_token_id if isinstance(gen.eos_token_id, int)
                   else gen.eos_token_id[0], gen.no_timestamps_token_id, dict(getattr(gen, "task_to_id", None) or {}),
                   langs, tuple(gen.suppress_tokens or ()), tuple(gen.begin_suppress_tokens or ()),
                   int(gen.max_length or 448))


@dataclass(frozen=True)
class Decoded:
    tokens: list[int]
    language: str
    language_probability: float
    avg_logprob: float


def _softmax_log(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


class WhisperOnnxDecoder:
    """Encoder + merged decoder sessions -> greedy tokens (batch 1: one segment at a time)."""

    def __init__(self, encoder: Any, decoder: Any, tokens: DecoderTokens, device: str = "cpu") -> None:
        from onnxruntime import OrtValue

        self._ortvalue = OrtValue
        self.enc, self.dec, self.t = encoder, decoder, tokens
        self.device = "cuda" if device == "cuda" else "cpu"
        self.inputs = {i.name: i for i in decoder.get_inputs()}
        if "use_cache_branch" not in self.inputs:
            raise ValueError("expected a merged Whisper decoder (decoder_model_merged.onnx)")
        self.past_in = [n for n in self.inputs if n.startswith("past_key_values")]
        self.present_out = [o.name for o in decoder.get_outputs() if o.name.startswith("present")]
        self.self_out = [n for n in self.present_out if ".decoder." in n]
        first = self.inputs[self.past_in[0]]
        self.heads, self.head_dim = first.shape[1], first.shape[3]
        self.float_type = np.float16 if "float16" in first.type else np.float32
        self.enc_input = encoder.get_inputs()[0].name
        suppress = np.zeros(0, np.int64)
        self.suppress = np.asarray(tokens.suppress, np.int64) if tokens.suppress else suppress
        self.begin_suppress = np.asarray(tokens.begin_suppress, np.int64) if tokens.begin_suppress else suppress
        self.lang_ids = np.asarray(list(tokens.languages.values()), np.int64)
        self.lang_names = list(tokens.languages)

    def _value(self, a: np.ndarray) -> Any:
        return self._ortvalue.ortvalue_from_numpy(np.ascontiguousarray(a), self.device, 0)

    def encode(self, features: np.ndarray) -> Any:
        feats = features.astype(self.float_type, copy=False)
        (out,) = self.enc.run_with_ort_values(["last_hidden_state"], {self.enc_input: self._value(feats)})
        return out

    def _step(self, ids: list[int], enc: Any, past: dict[str, Any] | None) -> tuple[np.ndarray, dict[str, Any]]:
        feeds: dict[str, Any] = {"input_ids": self._value(np.asarray([ids], np.int64)),
                                 "encoder_hidden_states": enc,
                                 "use_cache_branch": self._value(np.asarray([past is not None]))}
        if past is None:
            empty = self._value(np.zeros((1, self.heads, 0, self.head_dim), self.float_type))
            feeds |= dict.fromkeys(self.past_in, empty)
            wanted = ["logits", *self.present_out]
        else:
            feeds |= past
            wanted = ["logits", *self.self_out]  # cross-attention keys/values are computed once
        outs = self.dec.run_with_ort_values(wanted, feeds)
        logits = outs[0].numpy()[0, -1].astype(np.float32)
        new = dict(zip(wanted[1:], outs[1:], strict=True))
        if past is not None:
            new = {**{k: v for k, v in past.items() if ".encoder." in k}, **{
                k.replace("present", "past_key_values"): v for k, v in new.items()}}
        else:
            new = {k.replace("present", "past_key_values"): v for k, v in new.items()}
        return logits, new

    def _prompt(self, language: str, task: str) -> list[int]:
        if not self.t.languages:  # an English-only model has no language or task tokens
            return [self.t.no_timestamps]
        if language not in self.t.languages:
            raise KeyError(language)
        return [self.t.languages[language], self.t.tasks[task], self.t.no_timestamps]

    def decode(self, features: np.ndarray, language: str | None, task: str = "transcribe") -> Decoded:
        """Greedy tokens of one 30 s window (features: (1, n_mels, 3000)).

        With the language given, the whole prompt goes in one first step (as transformers does);
        without, <|startoftranscript|> alone first: its distribution over the language tokens is the
        detection (as faster-whisper does), then the rest of the prompt in one step on its past.
        """
        enc = self.encode(features)
        lang_p = 1.0
        if language is not None:
            logits, past = self._step([self.t.sot, *self._prompt(language, task)], enc, None)
        else:
            logits, past = self._step([self.t.sot], enc, None)
            language = "en"
            if len(self.lang_ids):
                lp = _softmax_log(logits[self.lang_ids])
                best = int(np.argmax(lp))
                language, lang_p = self.lang_names[best], float(np.exp(lp[best]))
            logits, past = self._step(self._prompt(language, task), enc, past)
        out: list[int] = []
        logprob = 0.0
        limit = self.t.max_length // 2 - 4  # as faster-whisper: half the text context for the sample
        while len(out) < limit:
            if len(self.suppress):
                logits[self.suppress] = -np.inf
            if not out and len(self.begin_suppress):
                logits[self.begin_suppress] = -np.inf
            tok = int(np.argmax(logits))
            logprob += float(_softmax_log(logits)[tok])
            if tok == self.t.eot:
                break
            out.append(tok)
            logits, past = self._step([tok], enc, past)
        return Decoded(out, language, lang_p, logprob / max(1, len(out) + 1))
