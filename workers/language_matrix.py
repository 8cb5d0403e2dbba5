"""Which languages this machine dubs from and into: what ASR hears x the MT routes x the TTS voices.

`language_matrix(hears, pairs, voices, pivots)` computes it from plain sets (tests call it with
made-up ones); `machine_matrix(settings)` gathers those sets from the configured backends without
loading a model (it lists Apertium's modes and espeak-ng's voices: two short subprocesses);
`format_matrix` renders it as a Markdown table, as `livedub doctor` prints it.

A target row lists the heard sources that reach it, directly or through the one pivot the MT stage
would use (`translate.pivots` order, `find_route`), and the engine that speaks it. Sources whose
only route needs two pivots are listed apart: the stage does not chain two (see `find_route`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from workers.errors import LiveDubError
from workers.settings import Settings
from workers.translate.stage import find_route


@dataclass(frozen=True)
class TargetRow:
    lang: str
    voice: str | None  # e.g. "piper", "espeak (fr-fr)"; None: no TTS voice, so no dub into it
    direct: tuple[str, ...]  # heard sources with a direct pair
    via: tuple[tuple[str, tuple[str, ...]], ...]  # (pivot, heard sources routed through it)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(sorted(self.direct + tuple(s for _, group in self.via for s in group)))


@dataclass(frozen=True)
class LanguageMatrix:
    hears: frozenset[str]  # what ASR can transcribe
    targets: tuple[TargetRow, ...]  # every language MT translates into, with or without a voice
    two_pivots: tuple[tuple[str, ...], ...] = ()  # shortest paths (src, a, b, tgt) the stage does not take
    notes: tuple[str, ...] = field(default=())  # what could not be gathered, and why
    voice_hints: Mapping[str, str] = field(default_factory=dict)  # target without a voice -> how to get one

    def row(self, lang: str) -> TargetRow | None:
        return next((r for r in self.targets if r.lang == lang), None)

    @property
    def sources(self) -> tuple[str, ...]:
        """Heard languages that reach at least one voiced target."""
        return tuple(sorted({s for r in self.targets if r.voice for s in r.sources}))

    @property
    def dub_targets(self) -> tuple[str, ...]:
        return tuple(r.lang for r in self.targets if r.voice and r.sources)


def language_matrix(hears: Iterable[str], pairs: Collection[tuple[str, str]], voices: Mapping[str, str],
                    pivots: Sequence[str] = ()) -> LanguageMatrix:
    """The matrix for ASR languages `hears`, MT `pairs` (ISO 639-1) and `voices` (language -> label)."""
    hears = frozenset(hears)
    mt_sources = sorted({s for s, _ in pairs} & hears)
    rows = []
    two = []
    for target in sorted({t for _, t in pairs}):
        direct, via = [], {}
        for source in mt_sources:
            if source == target:
                continue
            route = find_route(pairs, source, target, pivots)
            if route is None:
                path = _shortest_path(pairs, source, target)
                if path is not None and len(path) == 4 and target in voices:
                    two.append(tuple(path))
            elif len(route) == 1:
                direct.append(source)
            else:
                via.setdefault(route[0][1], []).append(source)
        rows.append(TargetRow(target, voices.get(target), tuple(direct),
                              tuple((p, tuple(group)) for p, group in sorted(via.items()))))
    return LanguageMatrix(hears, tuple(rows), tuple(two))


def _shortest_path(pairs: Collection[tuple[str, str]], source: str, target: str) -> list[str] | None:
    graph: dict[str, list[str]] = {}
    for s, t in sorted(pairs):
        graph.setdefault(s, []).append(t)
    prev: dict[str, str] = {source: source}
    queue = deque([source])
    while queue:
        lang = queue.popleft()
        if lang == target:
            path = [target]
            while path[-1] != source:
                path.append(prev[path[-1]])
            return path[::-1]
        for nxt in graph.get(lang, ()):
            if nxt not in prev:
                prev[nxt] = lang
                queue.append(nxt)
    return None


# -- gathering from this machine ---------------------------------------------------------------------

def asr_languages(settings: Settings) -> frozenset[str]:
    """What the configured Whisper hears, without loading it (English-only models: en)."""
    from workers.asr.models import english_only_name

    if english_only_name(settings.asr.model):
        return frozenset({"en"})
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES  # the multilingual models' language tokens
    except (ImportError, AttributeError):
        from workers.registry import backend_class

        asr = backend_class("asr", settings.asr.backend)(settings)
        try:
            return frozenset(asr.supported_languages())
        finally:
            asr.close()
    return frozenset(_LANGUAGE_CODES)


def mt_pairs(settings: Settings) -> tuple[frozenset[tuple[str, str]], str | None]:
    """The configured MT backend's pairs, or none and why."""
    from workers.registry import backend_class

    try:
        cls = backend_class("translate", settings.translate.backend)
        if (reason := cls.unavailable()) is not None:
            return frozenset(), reason
        mt = cls(settings)
        try:
            return mt.pairs(), None
        finally:
            mt.close()
    except LiveDubError as e:
        return frozenset(), str(e)


def tts_voices(settings: Settings) -> tuple[dict[str, str], list[str]]:
    """Language -> "engine (voice)" for the configured TTS; for `auto`, the engine it would pick."""
    from workers.registry import backend_class
    from workers.tts.auto import AutoTts

    cls = backend_class("tts", settings.tts.backend)
    parts = AutoTts.PARTS if issubclass(cls, AutoTts) else (cls,)
    voices: dict[str, str] = {}
    notes = []
    for part in parts:
        try:
            if (reason := part.unavailable()) is not None:
                raise LiveDubError(reason)
            for lang, label in _part_voices(part, settings).items():
                voices.setdefault(lang, label)
        except LiveDubError as e:
            notes.append(f"tts {part.name}: {e}")
    return voices, notes


def _part_voices(cls: type, settings: Settings) -> dict[str, str]:
    if cls.capabilities.languages is not None:  # Piper: its installed voice packages, known unloaded
        return {lang: cls.name for lang in cls.capabilities.languages}
    backend = cls(settings)
    if hasattr(backend, "local_languages"):  # MMS: the voices whose model is here, not loaded
        return {lang: cls.name for lang in backend.local_languages()}
    backend.load()  # espeak-ng: `--voices`
    try:
        out = {}
        for lang in backend.voices():
            tag = getattr(backend.voice_for(lang), "tag", lang) if hasattr(backend, "voice_for") else lang
            out[lang] = cls.name if tag.lower() == lang else f"{cls.name} ({tag.lower()})"
        return out
    finally:
        backend.close()


def machine_matrix(settings: Settings) -> LanguageMatrix:
    hears = asr_languages(settings)
    pairs, mt_reason = mt_pairs(settings)
    voices, notes = tts_voices(settings)
    m = language_matrix(hears, pairs, voices, settings.translate.pivots)
    if mt_reason:
        notes.insert(0, f"translate {settings.translate.backend}: {mt_reason}")
    if settings.asr.task == "translate":
        notes.append("asr.task=translate: Whisper writes English for every language it hears, so each of them "
                     "reaches the targets listed for en")
    hints = {}
    if settings.tts.backend in ("auto", "mms"):
        from workers.tts.mms import MmsTts

        mms = MmsTts(settings)
        hints = {r.lang: f"`livedub models pull {mms.model_id(r.lang)}` (mms)" for r in m.targets
                 if r.voice is None and r.lang in settings.tts.mms_languages}
    return LanguageMatrix(m.hears, m.targets, m.two_pivots, tuple(notes), hints)


# -- rendering ----------------------------------------------------------------------------------------

def format_matrix(m: LanguageMatrix, settings: Settings | None = None) -> str:
    """Markdown: what is heard, then one row per target language."""
    head = f"ASR hears {len(m.hears)} languages"
    if settings is not None:
        head = (f"asr {settings.asr.backend} ({settings.asr.model}) hears {len(m.hears)} languages; "
                f"mt {settings.translate.backend}, pivots {', '.join(settings.translate.pivots) or 'none'}; "
                f"tts {settings.tts.backend}")
    lines = [head, "",
             f"Sources (heard, and translated into a voiced target): {', '.join(m.sources) or 'none'}", "",
             "| target | voice | direct from | through a pivot |", "|---|---|---|---|"]
    for r in m.targets:
        via = "; ".join(f"{', '.join(group)} (via {p})" for p, group in r.via) or "-"
        voice = r.voice or "none: not a dub target" + (f"; {m.voice_hints[r.lang]}" if r.lang in m.voice_hints else "")
        lines.append(f"| {r.lang} | {voice} | {', '.join(r.direct) or '-'} | {via} |")
    if m.two_pivots:
        lines += ["", "Not routed (two pivots needed): " + ", ".join("->".join(p) for p in m.two_pivots)]
    lines += [f"note: {n}" for n in m.notes]
    return "\n".join(lines)
