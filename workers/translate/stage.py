"""Translation stage: transcript -> one translation per target language (fan-out)."""

from __future__ import annotations

from abc import abstractmethod

from workers.errors import UnsupportedLanguageError
from workers.records import Transcript, Translation, now
from workers.stage import Backend, Stage


class MtBackend(Backend):
    """A machine translator for a set of language pairs (ISO 639-1 codes)."""

    @abstractmethod
    def pairs(self) -> frozenset[tuple[str, str]]:
        """The (source, target) pairs installed and usable."""

    @abstractmethod
    def translate(self, text: str, source: str, target: str) -> str:
        """Translate one segment's text; only called for pairs in `pairs()`."""

    def route(self, source: str, target: str) -> list[tuple[str, str]]:
        """Pairs to chain for source->target: direct, else through one pivot language (en->es->fr).

        Raises a clear error naming the available pairs when there is no route.
        """
        if source == target:
            return []
        pairs = self.pairs()
        if (source, target) in pairs:
            return [(source, target)]
        for pivot in sorted({t for s, t in pairs if s == source}):
            if (pivot, target) in pairs:
                return [(source, pivot), (pivot, target)]
        avail = ", ".join(f"{s}->{t}" for s, t in sorted(pairs)) or "none installed"
        raise UnsupportedLanguageError(f"{self.name} cannot translate {source}->{target}; available pairs: {avail}")

    def check_pair(self, source: str, target: str) -> None:
        self.route(source, target)

    def translate_via(self, text: str, source: str, target: str) -> str:
        for a, b in self.route(source, target):
            text = self.translate(text, a, b)
        return text


class TranslateStage(Stage[Transcript, Translation]):
    name = "translate"
    backend: MtBackend

    def _handle(self, tr: Transcript) -> list[Translation]:
        out = []
        for target in tr.target_langs:
            text = self.backend.translate_via(tr.text, tr.language, target)
            out.append(
                Translation(
                    session_id=tr.session_id,
                    seq=tr.seq,
                    start_s=tr.start_s,
                    end_s=tr.end_s,
                    text=text,
                    source_lang=tr.language,
                    target_lang=target,
                    speech_end_at=tr.speech_end_at,
                    produced_at=now(),
                )
            )
        return out
