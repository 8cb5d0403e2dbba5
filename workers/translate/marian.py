"""Marian (OPUS-MT) translation: one small model per language pair, through Optimum / ONNX Runtime."""

from __future__ import annotations

from typing import ClassVar

from workers.stage import Capabilities
from workers.translate.seq2seq import Seq2SeqMt, local_checkpoint


class Marian(Seq2SeqMt):
    name: ClassVar[str] = "marian"
    capabilities: ClassVar[Capabilities] = Capabilities(languages=None, devices=("cpu", "cuda"))

    def model_id(self, source: str, target: str) -> str:
        return self.settings.translate.marian_model.format(src=source, tgt=target)

    def pairs(self) -> frozenset[tuple[str, str]]:
        """The configured pairs whose model is here (pulled, in the hub cache or a directory)."""
        out = set()
        for pair in self.settings.translate.marian_pairs:
            src, _, tgt = pair.partition("-")
            if local_checkpoint(self.settings, self.model_id(src, tgt)):
                out.add((src, tgt))
        return frozenset(out)

    def missing_models(self) -> str:
        first = self.settings.translate.marian_pairs[0].split("-")
        return (f"no Marian model is here for {', '.join(self.settings.translate.marian_pairs)}: run "
                f"`livedub models pull {self.model_id(*first)}` (one per pair) on a machine with hub access")

    def translate(self, text: str, source: str, target: str) -> str:
        return self.generate(self.model_id(source, target), text)
