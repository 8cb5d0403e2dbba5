"""espeak-ng: robotic but intelligible speech in ~100 languages, as a fallback for any target.

Voices come from `espeak-ng --voices` at load, mapped to ISO 639-1 (a voice
counts for each language it lists, with its priority, and the best-ranked voice
wins, as espeak itself ranks them). Speed is espeak's words-per-minute scaled
from its default 175. Audio comes back as a WAV on stdout, parsed in memory.
espeak-ng gives no phoneme timings without MBROLA, so `phonemes` is None and
the mouth follows the energy envelope.

Variants (`-v es+f3`) change the voice's pitch, formants and breathiness; the
numbered male and female ones are offered for matching a speaker's voice (the
named ones are characters: robots, whispers, accents).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from workers.errors import BadInputError, ModelLoadError, StageError
from workers.settings import Settings
from workers.stage import Capabilities
from workers.translate.languages import to_iso1
from workers.tts.stage import Synth
from workers.tts.voices import TableTts, VoiceTable, check_request, parse_wav

log = logging.getLogger(__name__)

EXE = "espeak-ng"
DEFAULT_WPM = 175
MIN_WPM, MAX_WPM = 80, 450
TIMEOUT_S = 30.0
SAMPLE_RATE = 22050  # espeak-ng's native rate; the WAV header is what counts
_LINE = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$")
_OTHER = re.compile(r"\((\S+)\s+(\d+)\)")
VARIANTS = tuple(f"m{i}" for i in range(1, 8)) + tuple(f"f{i}" for i in range(1, 6))


@dataclass(frozen=True)
class EspeakVoice:
    tag: str  # what `-v` takes, e.g. "en-gb", "cmn"
    name: str  # e.g. "English_(Great_Britain)"
    file: str  # e.g. "gmw/en"


def parse_voices(listing: str) -> VoiceTable[EspeakVoice]:
    """`espeak-ng --voices` output -> table by ISO 639-1 language and by exact tag.

    For each language the voice with the lowest (best) priority for it wins; on
    a tie, one listing the bare language code ("en" over "en-us"), then the
    first listed. MBROLA voices ("mb/...") are skipped: their data is separate.
    """
    best: dict[str, tuple[tuple[int, int, int], EspeakVoice]] = {}
    by_tag: dict[str, EspeakVoice] = {}
    for order, line in enumerate(listing.splitlines()):
        m = _LINE.match(line)
        if m is None or m.group(5).startswith("mb/"):
            continue
        pty, tag, _, name, file, rest = m.groups()
        voice = EspeakVoice(tag, name, file)
        by_tag.setdefault(tag.lower(), voice)
        claims = [(tag, int(pty))] + [(t, int(p)) for t, p in _OTHER.findall(rest)]
        for claim, prio in claims:
            lang = to_iso1(claim)
            if lang is None:
                continue
            rank = (prio, 0 if claim.lower() == lang else 1, order)
            if lang not in best or rank < best[lang][0]:
                best[lang] = (rank, voice)
    return VoiceTable("espeak", {lang: v for lang, (_, v) in best.items()}, by_tag)


def words_per_minute(speed: float) -> int:
    return int(min(max(round(DEFAULT_WPM * speed), MIN_WPM), MAX_WPM))


class Espeak(TableTts):
    name: ClassVar[str] = "espeak"
    # Any of espeak's languages; `voices()` says which after load.
    capabilities: ClassVar[Capabilities] = Capabilities(languages=None, sample_rate=SAMPLE_RATE)

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._exe: str | None = None
        self._variants: tuple[str, ...] = ()

    @classmethod
    def unavailable(cls) -> str | None:
        if shutil.which(EXE) is None:
            return "espeak-ng is not installed (apt-get install espeak-ng)"
        return None

    def _load(self) -> None:
        exe = shutil.which(EXE)
        if exe is None:
            raise ModelLoadError(self.unavailable() or "espeak-ng missing")
        try:
            out = subprocess.run([exe, "--voices"], capture_output=True, text=True, timeout=TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ModelLoadError(f"cannot list voices with `{exe} --voices`: {e}") from e
        table = parse_voices(out.stdout)
        if out.returncode != 0 or not table.by_lang:
            raise ModelLoadError(f"`{exe} --voices` listed no usable voice ({out.returncode}): {out.stderr.strip()}")
        self._exe, self._table = exe, table
        self._variants = self._list_variants(exe)
        log.info("espeak-ng: %d languages, %d voice variants", len(table.by_lang), len(self._variants))

    @staticmethod
    def _list_variants(exe: str) -> tuple[str, ...]:
        """The VARIANTS this espeak-ng installation has (listed as files `!v/<name>`)."""
        try:
            out = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, timeout=TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            return ()
        files = {m.group(5).removeprefix("!v/") for m in map(_LINE.match, out.stdout.splitlines()) if m}
        return tuple(v for v in VARIANTS if v in files)

    def variants(self, lang: str) -> tuple[str, ...]:
        self.voice_for(lang)
        return ("", *self._variants)

    def voice_for(self, lang: str) -> EspeakVoice:
        return self.table().get(lang)

    def synthesize(self, text: str, lang: str, speed: float = 1.0, variant: str = "") -> Synth:
        voice = self.voice_for(lang)
        if variant and variant not in self._variants:
            raise BadInputError(f"tts/espeak has no voice variant {variant!r}; variants: {', '.join(self._variants)}")
        if not check_request(text, speed):
            return Synth(np.zeros(0, np.float32), SAMPLE_RATE)
        # Text on stdin (-b 1: UTF-8), so text starting with "-" is never taken for an option.
        # A variant goes after the voice's file: espeak-ng ignores it after a regional tag ("en-gb+f4").
        tag = f"{voice.file}+{variant}" if variant else voice.tag
        cmd = [self._exe or EXE, "--stdout", "-b", "1", "-v", tag, "-s", str(words_per_minute(speed))]
        try:
            out = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise StageError("tts", self.name, f"`{' '.join(cmd)}` timed out after {TIMEOUT_S:.0f} s",
                             retryable=True) from e
        except OSError as e:
            raise StageError("tts", self.name, f"cannot run `{' '.join(cmd)}`: {e}", retryable=True) from e
        if out.returncode != 0:
            err = out.stderr.decode("utf-8", "replace").strip()
            raise StageError("tts", self.name, f"`{' '.join(cmd)}` exited {out.returncode}: {err}")
        try:
            audio, rate = parse_wav(out.stdout)
        except BadInputError as e:
            raise StageError("tts", self.name, f"espeak-ng wrote no valid WAV: {e}") from e
        return Synth(audio, rate, None)
