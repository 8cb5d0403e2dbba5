"""An Apertium mode kept running between segments: its tools started once, in null-flush mode.

`apertium MODE` starts a dozen tools per call, each loading its dictionaries: ~0.15 s alone, 0.27 s
per segment in a busy call, the largest cost after Whisper's. Here the mode's own pipeline (its
`.mode` file) is started once with `-z` on every tool: a segment is written followed by a NUL and
its translation read up to the NUL that each tool passes on. The `apertium` wrapper's `-z` does not
do this reliably (its text deformatter does not flush), so the wrapper is bypassed and the text is
escaped as its deformatter would (one line, Apertium's reserved characters). A pipeline that does
not answer within its timeout is killed: the caller translates that segment the old way and the next
one starts a new pipeline.
"""

from __future__ import annotations

import os
import select
import shlex
import subprocess
import time
from pathlib import Path

RESERVED = set("\\[]^$/@<>{}")  # characters Apertium's stream format gives a meaning: escaped in text
END_BLANK = ".[]"  # what its text deformatter ends a text with (a sentence end, an empty superblank): the
# tools flush a token only at a boundary, and the generator gives the period back only if the text had one


class PipeError(RuntimeError):
    """The pipeline died, stalled or cannot start: translate this segment some other way."""


def commands(mode_file: Path, unknown_marks: bool = False) -> list[list[str]]:
    """The tools of a `.mode` file, each with `-z`; `$1` is the generator's flag (-n: no '*' marks on
    unknown words, as `apertium -u`; -g: marks), `$2` the tagger's optional flag (none)."""
    words = shlex.split(mode_file.read_text())
    tools: list[list[str]] = [[]]
    for w in words:
        if w == "|":
            tools.append([])
        elif w == "$1":
            tools[-1].append("-g" if unknown_marks else "-n")
        elif w != "$2":
            tools[-1].append(w)
    if any(not t for t in tools):
        raise PipeError(f"cannot read the pipeline of {mode_file}")
    return [[t[0], "-z", *t[1:]] for t in tools]


def escape(text: str) -> str:
    return "".join("\\" + ch if ch in RESERVED else ch for ch in " ".join(text.split()))


def unescape(text: str) -> str:
    out, i = [], 0
    text = text.replace(END_BLANK, "")
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


class ModePipeline:
    """One Apertium mode's tools, running; `translate` is not thread-safe (the backend locks)."""

    def __init__(self, mode_file: Path) -> None:
        self.procs: list[subprocess.Popen] = []
        try:
            for cmd in commands(mode_file):
                stdin = self.procs[-1].stdout if self.procs else subprocess.PIPE
                self.procs.append(subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE,
                                                   stderr=subprocess.DEVNULL))
        except OSError as e:
            self.close()
            raise PipeError(f"cannot start {mode_file.name}: {e}") from e
        for p in self.procs[:-1]:
            p.stdout.close()  # only the next tool holds each pipe: one dying ends the stream, never a hang

    def translate(self, text: str, timeout_s: float) -> str:
        first, last = self.procs[0], self.procs[-1]
        # Between segments a healthy pipeline is silent. When a tool dies, the tools after it see the end
        # of their input and flush a NUL; that can come before the dead tool can be waited for, so output
        # waiting unasked is how a death shows first.
        if any(p.poll() is not None for p in self.procs) or select.select([last.stdout], [], [], 0)[0]:
            raise PipeError("a tool of the pipeline exited")
        try:
            first.stdin.write((escape(text) + END_BLANK).encode() + b"\0")
            first.stdin.flush()
        except OSError as e:
            raise PipeError(f"the pipeline stopped taking input: {e}") from e
        out = bytearray()
        deadline = time.monotonic() + timeout_s
        while not out.endswith(b"\0"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([last.stdout], [], [], left)[0]:
                raise PipeError(f"no answer in {timeout_s:g} s")
            chunk = os.read(last.stdout.fileno(), 65536)
            if not chunk:
                raise PipeError("the pipeline ended")
            out += chunk
        answer = " ".join(unescape(out[:-1].decode("utf-8", "replace")).split())
        # a dead tool's neighbours flush what they had; Apertium passes unknown words through, so text
        # never translates to nothing
        if any(p.poll() is not None for p in self.procs) or (not answer and text.strip()):
            raise PipeError("a tool of the pipeline exited")
        return answer

    def close(self) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
            for f in (p.stdin, p.stdout):
                if f:
                    f.close()
        self.procs = []
