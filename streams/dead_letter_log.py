"""Logging dead letters without letting a flood of bad records pay for a log line each.

A client sending 10,000 malformed records made the worker format and write 10,000 warnings
(a fifth of its time per bad record, through Faust's coloured formatter). The first dead letter
of each kind (error type) in a window is logged in full; the rest are counted and summed up in
one line when the window ends. Every dead letter is still counted in `livedub_dlq_records_total`
and kept, with its error, on the DLQ topic.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable


class DeadLetterLog:
    def __init__(self, log: logging.Logger, stage: str, window_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.stage, self.window_s, self.clock = log, stage, window_s, clock
        self.started = clock()
        self.logged: set[str] = set()
        self.quiet: Counter[str] = Counter()

    def __call__(self, kind: str, where: str, error: BaseException) -> None:
        now = self.clock()
        if now - self.started >= self.window_s:
            self.flush(now)
        if kind in self.logged:
            self.quiet[kind] += 1
            return
        self.logged.add(kind)
        self.log.warning("%s: %s -> DLQ: %s", self.stage, where, error)

    def tick(self) -> None:
        """From a timer: a window that has ended is summed up even if no dead letter follows."""
        if self.clock() - self.started >= self.window_s:
            self.flush()

    def flush(self, now: float | None = None) -> None:
        """Sum up what the window did not log, and start a new window."""
        now = self.clock() if now is None else now
        if self.quiet:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.quiet.items()))
            self.log.warning("%s: %d more dead letters in the last %.0f s (%s): see the DLQ topic", self.stage,
                             sum(self.quiet.values()), now - self.started, kinds)
        self.started, self.logged, self.quiet = now, set(), Counter()
