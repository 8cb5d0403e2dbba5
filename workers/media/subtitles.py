"""Subtitles of a dubbed output: the source transcript and the translation, as SRT and WebVTT.

`livedub dub --subtitles` and `livedub subscribe --subtitles` write, next to each output
(`talk.es.mp4`), four UTF-8 files:

* `talk.es.srt`, `talk.es.vtt`: the translation (the text the dub speaks);
* `talk.es.source.srt`, `talk.es.source.vtt`: the source transcript (what ASR heard).

A cue is timed to its segment's span on the media clock (`start_s`/`end_s` of the Transcript or
DubbedSpeech, rounded to the millisecond). A text longer than two lines of `WIDTH` (42)
characters is cut, at word boundaries, into several cues that share the span in proportion to
their length; the lines of each cue are balanced (the narrowest wrapping that needs no more
lines), a word longer than a line stays whole. Cues never overlap: a cue that ends after the
next one starts (segments overlap by their padding) is clipped to the next one's start, and a
cue left empty by that is dropped. SRT: numbered from 1, `00:01:02,345 --> 00:01:03,000`; WebVTT:
the `WEBVTT` header, `00:01:02.345 --> 00:01:03.000`, `&`, `<`, `>` escaped. An empty text makes
no cue.

The tracks are written as the cues come (only the last segment's cues are held back, until the
next segment's start says where they must end), so memory stays constant however long the
session is; the files appear when the output is finished, and not at all after an abort.

The formatting is written here rather than taken from a library: `srt` (PyPI) composes SRT
only and `webvtt-py` writes WebVTT from a complete list of captions; neither wraps or balances
lines, splits a long text into cues or writes cue by cue, which is what this module is about,
and the two timestamp formats are one line each. A dependency would add nothing but an install.
"""

from __future__ import annotations

import logging
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

log = logging.getLogger(__name__)

WIDTH = 42  # characters per line (the common broadcast limit)
LINES = 2  # lines per cue
VTT_HEADER = "WEBVTT\n\n"


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    lines: tuple[str, ...]


def _clock(ms: int, sep: str) -> str:
    ms = max(0, ms)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt_time(ms: int) -> str:
    """`00:00:01,234`."""
    return _clock(ms, ",")


def vtt_time(ms: int) -> str:
    """`00:00:01.234`."""
    return _clock(ms, ".")


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)


def wrap(text: str, width: int = WIDTH, lines: int = LINES) -> list[tuple[str, ...]]:
    """`text` as cues' lines: at most `lines` lines each, of at most `width` characters (a longer word
    stays whole), balanced: the narrowest wrapping that needs no more lines than `width` does."""
    text = " ".join(text.split())
    if not text:
        return []
    wrapped = _wrap(text, width)
    for w in range(width - 1, 0, -1):
        narrower = _wrap(text, w)
        if len(narrower) != len(wrapped):
            break
        wrapped = narrower
    return [tuple(wrapped[i : i + lines]) for i in range(0, len(wrapped), lines)]


def cues(start_s: float, end_s: float, text: str, width: int = WIDTH, lines: int = LINES) -> list[Cue]:
    """One segment's cues: its text wrapped, the span shared in proportion to each cue's length."""
    blocks = wrap(text, width, lines)
    start, end = round(start_s * 1000), round(end_s * 1000)
    sizes = [len(" ".join(b)) for b in blocks]
    total, done, out = sum(sizes), 0, []
    for block, size in zip(blocks, sizes, strict=True):
        a = start + round((end - start) * done / total)
        done += size
        out.append(Cue(a, start + round((end - start) * done / total), block))
    return out


def srt_cue(index: int, cue: Cue) -> str:
    return f"{index}\n{srt_time(cue.start_ms)} --> {srt_time(cue.end_ms)}\n" + "\n".join(cue.lines) + "\n\n"


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt_cue(cue: Cue) -> str:
    return (f"{vtt_time(cue.start_ms)} --> {vtt_time(cue.end_ms)}\n"
            + "\n".join(_vtt_escape(line) for line in cue.lines) + "\n\n")


def subtitle_paths(out: Path) -> dict[str, tuple[Path, Path]]:
    """Track -> (.srt, .vtt) next to the output `out`: `talk.es.mp4` -> `talk.es.srt`, `talk.es.source.srt`."""
    base = out.with_suffix("")
    return {
        "translation": (base.with_name(base.name + ".srt"), base.with_name(base.name + ".vtt")),
        "source": (base.with_name(base.name + ".source.srt"), base.with_name(base.name + ".source.vtt")),
    }


class SubtitleTrack:
    """One text track, written cue by cue to an .srt and a .vtt file (temp files until `close`)."""

    def __init__(self, srt: Path, vtt: Path) -> None:
        self.paths = (srt, vtt)
        self._tmps = tuple(p.with_name(f".{p.name}.{os.getpid()}.tmp") for p in self.paths)
        self._files: tuple[TextIO, TextIO] | None = None
        self._held: list[Cue] = []  # the last segment's cues: their end waits for the next start
        self._last_end = 0  # end of the last cue written (ms)
        self.written = 0  # cues written

    def add(self, start_s: float, end_s: float, text: str) -> None:
        """A segment's text over [start_s, end_s); segments come in media order."""
        new = cues(start_s, end_s, text)
        if not new:
            return
        self._release(new[0].start_ms)
        self._held = new

    def close(self) -> None:
        """Write the held cues and put both files in place."""
        self._release(None)
        self._open()
        assert self._files is not None
        for f in self._files:
            f.close()
        for tmp, path in zip(self._tmps, self.paths, strict=True):
            os.replace(tmp, path)
        self._files = None
        log.info("wrote %s (%d cues)", ", ".join(map(str, self.paths)), self.written)

    def abort(self) -> None:
        if self._files is not None:
            for f in self._files:
                f.close()
            self._files = None
        for tmp in self._tmps:
            tmp.unlink(missing_ok=True)

    def _open(self) -> None:
        if self._files is None:
            srt, vtt = (open(t, "w", encoding="utf-8", newline="\n") for t in self._tmps)  # noqa: SIM115 (closed in close/abort)
            vtt.write(VTT_HEADER)
            self._files = (srt, vtt)

    def _release(self, next_start_ms: int | None) -> None:
        """Write the held cues, clipped so none ends after `next_start_ms` or starts before the last one's end."""
        self._open()
        assert self._files is not None
        srt, vtt = self._files
        for cue in self._held:
            start = max(cue.start_ms, self._last_end)
            end = cue.end_ms if next_start_ms is None else min(cue.end_ms, next_start_ms)
            if end <= start:
                log.debug("subtitle cue %r left empty by the next one; dropped", cue.lines)
                continue
            cue = Cue(start, end, cue.lines)
            self.written += 1
            srt.write(srt_cue(self.written, cue))
            vtt.write(vtt_cue(cue))
            self._last_end = end
        self._held = []


class Subtitles:
    """Both tracks of one output: `source` (the transcript) and `translation`."""

    def __init__(self, out: Path) -> None:
        paths = subtitle_paths(out)
        self.source = SubtitleTrack(*paths["source"])
        self.translation = SubtitleTrack(*paths["translation"])

    def close(self) -> None:
        self.source.close()
        self.translation.close()

    def abort(self) -> None:
        self.source.abort()
        self.translation.abort()
