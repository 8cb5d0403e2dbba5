"""Rule-based MT with Apertium: each mode's pipeline kept running (workers/translate/apertium_pipe.py).

A process per call (`apertium MODE`) costs ~0.15 s alone and 0.27 s in a busy call; a running
pipeline answers in milliseconds. A pipeline that stalls or dies is killed after
`PIPE_TIMEOUT_S` and that segment goes through the command-line tool, which cannot wedge; the next
segment starts a new pipeline. Pairs are discovered at load from `apertium -l`, so installing a
Debian language-pair package (apertium-eng-cat, ...) adds pairs with no code; `PAIR_PACKAGES` are
the ones the install script and the images bring.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections import OrderedDict
from pathlib import Path
from typing import ClassVar

from workers.errors import ModelLoadError, StageError
from workers.settings import Settings
from workers.stage import Capabilities
from workers.translate.apertium_pipe import ModePipeline, PipeError
from workers.translate.languages import choose_modes
from workers.translate.stage import MtBackend

log = logging.getLogger(__name__)

# The Debian language-pair packages scripts/install.sh and both images install (tests/deploy checks
# the three agree). Debian 12 ships them all; with them, from English: es, ca and gl directly, pt, it
# and fr through es; and direct pairs among es, ca, fr, pt, gl and it, which measured better than a
# pivot through Spanish (6-10 chrF points on the bench sentences). Left out: pairs that only add a
# source (eu-en, ro-es, isl-eng, mkd-eng), eng-hbs (leaves most words in English), and Esperanto
# (Whisper does not hear it, so nothing here can check a dub into it).
PAIR_PACKAGES: tuple[str, ...] = (
    "apertium-eng-spa", "apertium-fr-es", "apertium-eng-cat", "apertium-en-gl", "apertium-es-pt",
    "apertium-spa-cat", "apertium-es-gl", "apertium-spa-ita", "apertium-fra-cat", "apertium-por-cat",
    "apertium-pt-gl", "apertium-cat-ita",
)
LIST_TIMEOUT_S = 20.0
# Apertium translates thousands of words a second; a segment taking this long is stuck, not slow.
TIMEOUT_S = 30.0
PIPE_TIMEOUT_S = 5.0  # a running pipeline answers a segment in milliseconds: this long means it stalled


class Apertium(MtBackend):
    """Apertium pairs installed on this machine, by ISO 639-1 code."""

    name: ClassVar[str] = "apertium"
    capabilities: ClassVar[Capabilities] = Capabilities(languages=None, devices=("cpu",))

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._exe: str | None = None
        self._modes: dict[tuple[str, str], str] = {}
        self._pipes: OrderedDict[str, ModePipeline] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()  # one segment in the pipelines at a time: they take milliseconds

    @classmethod
    def unavailable(cls) -> str | None:
        if shutil.which("apertium") is None:
            return "apertium is not installed (apt-get install apertium apertium-eng-spa)"
        return None

    def _load(self) -> None:
        exe = shutil.which("apertium")
        if exe is None:
            raise ModelLoadError(self.unavailable() or "apertium missing")
        try:
            out = subprocess.run([exe, "-l"], capture_output=True, text=True, timeout=LIST_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ModelLoadError(f"cannot list apertium modes with `{exe} -l`: {e}") from e
        if out.returncode != 0:
            raise ModelLoadError(f"`{exe} -l` failed ({out.returncode}): {out.stderr.strip()}")
        modes = choose_modes(out.stdout.split())
        if not modes:
            raise ModelLoadError(
                f"no usable apertium language pair installed (modes: {out.stdout.split() or 'none'}); "
                "install one, e.g. apt-get install apertium-eng-spa"
            )
        self._exe, self._modes = exe, modes
        log.info("apertium pairs: %s", ", ".join(f"{s}->{t} ({m})" for (s, t), m in sorted(modes.items())))

    def pairs(self) -> frozenset[tuple[str, str]]:
        self.load()
        return frozenset(self._modes)

    def mode(self, source: str, target: str) -> str:
        """The Apertium mode that translates source->target; raises UnsupportedLanguageError if none."""
        self.check_pair(source, target)
        return self._modes[(source, target)]

    def translate(self, text: str, source: str, target: str) -> str:
        mode = self.mode(source, target)
        if not text.strip():
            return ""
        if self.settings.translate.apertium_pipelines:
            try:
                return self._piped(mode, text)
            except PipeError as e:
                log.warning("apertium %s pipeline: %s; this segment through the command line, a new pipeline "
                            "next", mode, e)
        return self._spawned(mode, text)

    def _piped(self, mode: str, text: str) -> str:
        with self._lock:
            pipe = self._pipes.get(mode)
            if pipe is None:
                while len(self._pipes) >= self.settings.translate.apertium_pipelines:  # least recently used goes
                    self._pipes.popitem(last=False)[1].close()
                # the data directory of the tool `apertium -l` listed: <prefix>/share/apertium/modes
                modes = Path(self._exe or "/usr/bin/apertium").resolve().parents[1] / "share" / "apertium" / "modes"
                pipe = self._pipes[mode] = ModePipeline(modes / f"{mode}.mode")
            self._pipes.move_to_end(mode)
            try:
                return pipe.translate(text, PIPE_TIMEOUT_S)
            except PipeError:
                del self._pipes[mode]
                pipe.close()
                raise

    def close(self) -> None:
        for pipe in self._pipes.values():
            pipe.close()
        self._pipes.clear()
        super().close()

    def _spawned(self, mode: str, text: str) -> str:
        # -u: no '*' marks on unknown words (they pass through untranslated, as a listener expects).
        cmd = [self._exe or "apertium", "-u", "-f", "txt", mode]
        try:
            out = subprocess.run(cmd, input=text, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            raise StageError(
                "translate", self.name, f"`{' '.join(cmd)}` timed out after {TIMEOUT_S:.0f} s", retryable=True
            ) from e
        except OSError as e:  # fork/exec failure: out of processes or memory, worth another try
            raise StageError("translate", self.name, f"cannot run `{' '.join(cmd)}`: {e}", retryable=True) from e
        if out.returncode != 0:
            raise StageError(
                "translate", self.name, f"`{' '.join(cmd)}` exited {out.returncode}: {out.stderr.strip()}"
            )
        return " ".join(out.stdout.split())
