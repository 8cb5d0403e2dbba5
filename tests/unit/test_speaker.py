"""Speaker embeddings: GE2E from Resemblyzer's shipped weights, run by ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from workers.speaker.base import cosine


@pytest.mark.slow
def test_ge2e_onnx_matches_the_torch_model_and_tells_voices_apart(settings):
    from resemblyzer import VoiceEncoder, preprocess_wav

    from workers.bench.speech_set import samples
    from workers.speaker.ge2e import Ge2e

    g = Ge2e(settings)
    ve = VoiceEncoder(device="cpu", verbose=False)
    data = samples(settings, ("en", "es"))
    emb = [g.embed(x.audio, 16000) for x in data]
    for x, e in zip(data[:4], emb, strict=False):
        assert cosine(e, ve.embed_utterance(preprocess_wav(x.audio))) >= 0.999
    en = [e for e, x in zip(emb, data, strict=True) if x.lang == "en"]  # the Piper voice
    es = [e for e, x in zip(emb, data, strict=True) if x.lang == "es"]  # an espeak voice
    same = np.mean([cosine(a, b) for i, a in enumerate(en) for b in en[i + 1:]])
    other = np.mean([cosine(a, b) for a in en for b in es])
    assert same > other + 0.2, (same, other)
    assert g.artifact.key == "ge2e/onnx-fp32"
