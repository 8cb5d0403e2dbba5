"""Translation stage: transcript -> one translation per target language (fan-out)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Collection, Sequence

from workers.errors import UnsupportedLanguageError
from workers.records import SessionControl, Transcript, Translation, now
from workers.stage import Backend, Stage


def find_route(pairs: Collection[tuple[str, str]], source: str, target: str,
               pivots: Sequence[str] = ()) -> list[tuple[str, str]] | None:
    """The pairs to chain for source->target, or None: [] for the same language, the direct pair,
    else one pivot: the first of `pivots` that bridges, then any other, alphabetically.

    One pivot at most: every hop of rule-based MT loses meaning, and each adds a translation's latency.
    """
    if source == target:
        return []
    if (source, target) in pairs:
        return [(source, target)]
    bridges = {t for s, t in pairs if s == source and (t, target) in pairs}
    order = [p for p in pivots if p in bridges] + sorted(bridges - set(pivots))
    return [(source, order[0]), (order[0], target)] if order else None


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

        Pivots are tried in `translate.pivots` order, then any other shared language alphabetically.
        Raises a clear error naming the available pairs when there is no route.
        """
        if source == target:
            return []
        pairs = self.pairs()
        found = find_route(pairs, source, target, self.settings.translate.pivots)
        if found is None:
            avail = ", ".join(f"{s}->{t}" for s, t in sorted(pairs)) or "none installed"
            raise UnsupportedLanguageError(
                f"{self.name} cannot translate {source}->{target}; available pairs: {avail}")
        return found

    def check_pair(self, source: str, target: str) -> None:
        self.route(source, target)

    def translate_via(self, text: str, source: str, target: str) -> str:
        for a, b in self.route(source, target):
            text = self.translate(text, a, b)
        return text


class TranslateStage(Stage[Transcript, Translation]):
    name = "translate"
    backend: MtBackend

    def check_session(self, control: SessionControl) -> None:
        """A route for every target: from the given source, else from some source (detected later)."""
        for target in control.target_langs:
            if control.source_lang:
                self.backend.check_pair(control.source_lang, target)
            elif not any(t == target for _, t in self.backend.pairs()):
                pairs = ", ".join(f"{s}->{t}" for s, t in sorted(self.backend.pairs()))
                raise UnsupportedLanguageError(
                    f"{self.backend.name} cannot translate into {target!r}; available pairs: {pairs}")

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
                    speaker=tr.speaker,
                    voice=tr.voice,
                )
            )
        return out
