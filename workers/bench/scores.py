"""Scores of text against references: WER (jiwer) and chrF (sacrebleu), on normalised text."""

from __future__ import annotations

import re
import unicodedata


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces (apostrophes kept inside words)."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = re.sub(r"[^\w' ]+", " ", text)
    return " ".join(w.strip("'") for w in text.split() if w.strip("'"))


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Word error rate over a corpus (0.0 = perfect), in [0, inf)."""
    import jiwer

    refs = [normalise(r) or "<empty>" for r in references]
    hyps = [normalise(h) for h in hypotheses]
    return float(jiwer.wer(refs, hyps))


def chrf(references: list[str], hypotheses: list[str]) -> float:
    """Corpus chrF (0-100) of hypotheses against one reference each."""
    import sacrebleu

    return float(sacrebleu.corpus_chrf(hypotheses, [references]).score)
