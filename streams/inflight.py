"""The record a worker is processing, noted on disk so that its next life knows which record it
died on (a poison pill). A hang inside a C extension that holds the GIL (the resampler fed a
sample rate of 2^62) leaves nothing in the process able to react, not even /livez: the liveness
probe restarts it, and without this note the same uncommitted record would hang it again, forever.

One small file per worker, rewritten in place before and after each record (two pwrites, no
fsync: the page cache survives the process being killed; a node crash loses only the count).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
SIZE = 512


@dataclass(frozen=True)
class Note:
    topic: str
    partition: int
    offset: int
    attempt: int


class InFlight:
    def __init__(self, path: Path | None) -> None:
        self.path, self._fd = path, None
        self.previous: Note | None = None  # what the last life was doing when it stopped
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.previous = _parse(path.read_bytes()) if path.exists() else None
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            log.warning("in-flight notes are off (%s): a record that kills the worker is retried on every restart",
                        e)
            self._fd = None
        if self.previous is not None:
            log.warning("the previous run stopped while processing %s[%d]@%d (attempt %d)", self.previous.topic,
                        self.previous.partition, self.previous.offset, self.previous.attempt)

    def begin(self, topic: str, partition: int, offset: int) -> int:
        """Note this record as in flight; returns its attempt number (1 unless a life died on it)."""
        p = self.previous
        attempt = 1
        if p is not None and (p.topic, p.partition, p.offset) == (topic, partition, offset):
            attempt, self.previous = p.attempt + 1, None  # the count now lives in the note just written
        self._write(f"{topic}\t{partition}\t{offset}\t{attempt}\n".encode())
        return attempt

    def done(self) -> None:
        """The record in flight was handled (processed or dead-lettered). A previous life's note is
        kept until its record comes (a stateful stage replays earlier records first)."""
        self._write(b"")

    def _write(self, text: bytes) -> None:
        if self._fd is not None:
            os.pwrite(self._fd, text.ljust(SIZE, b"\n")[:SIZE], 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _parse(data: bytes) -> Note | None:
    line = data.split(b"\n", 1)[0].decode(errors="replace")
    parts = line.split("\t")
    if len(parts) != 4:
        return None
    try:
        return Note(parts[0], int(parts[1]), int(parts[2]), int(parts[3]))
    except ValueError:
        return None
