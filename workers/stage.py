"""Stage and backend base classes.

A *backend* wraps one model and implements only the model call. A *stage*
owns a backend and turns input records into output records; its public
`process()` adds what every stage needs the same way: timing, metrics, error
translation and a private single-thread executor, so blocking model calls never
stall the event loop and one stage handles one record at a time (per-session
order is preserved by construction). The in-process runners and the Faust
agents all drive stages through `process()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from monitoring.metrics import Metrics
from workers.errors import LiveDubError, StageError
from workers.records import SessionControl
from workers.settings import Settings

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared so the registry, sessions and `doctor` need not guess.

    `devices` is checked against LIVEDUB_DEVICE when a stage is built; `languages` (the
    languages a recogniser hears; None: any) before a session starts.
    """

    languages: frozenset[str] | None = None  # None: any language
    sample_rate: int | None = None
    devices: tuple[str, ...] = ("cpu",)

    def supports(self, lang: str) -> bool:
        return self.languages is None or lang in self.languages


class Backend(ABC):
    """One model behind one stage. `load()` is blocking and runs once per process."""

    name: ClassVar[str] = ""
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loaded = False

    @abstractmethod
    def _load(self) -> None:
        """Load weights / start tools. Raise ModelLoadError if impossible."""

    def load(self) -> None:
        if not self.loaded:
            self._load()
            self.loaded = True

    def close(self) -> None:
        """Release what `load()` took (subprocesses, sessions)."""

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot run on this machine, or None. Cheap: no model load."""
        return None


B = TypeVar("B", bound=Backend)


def warm_up_noise(seconds: float = 1.0, rate: int = 16000) -> np.ndarray:
    """What `Stage.warm_up` feeds a model: quiet noise, the same every time."""
    return np.random.default_rng(0).normal(0.0, 0.05, round(seconds * rate)).astype(np.float32)


class Stage(ABC, Generic[In, Out]):
    """Base of the five pipeline stages."""

    name: ClassVar[str] = ""

    def __init__(self, backend: Backend, metrics: Metrics | None = None) -> None:
        self.backend = backend
        self.metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stage-{self.name}")
        self.observers: list[Callable[[str, float, Any], None]] = []

    # -- lifecycle -------------------------------------------------------
    def load(self) -> None:
        started = time.perf_counter()
        self.backend.load()
        log.info("%s/%s loaded in %.2fs", self.name, self.backend.name, time.perf_counter() - started)
        if self.metrics:
            self.metrics.model_loaded.labels(self.name, self.backend.name).set(1)

    def warm_up(self) -> None:
        """One throw-away inference, so that a live session's first record does not pay the first
        call's costs (allocations, kernel choice, lazy subprocesses, voices measured): a client's
        first segments took up to 10 s on workers that had just started (README, "on a client's
        clock"). Called by a worker after `load()`, before it reports ready; counted in no metric."""

    def close(self) -> None:
        self.backend.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.metrics:
            self.metrics.model_loaded.labels(self.name, self.backend.name).set(0)

    # -- sessions ----------------------------------------------------------
    # Every driver (in-process runner, stream steps, benchmark) opens a session before its first
    # record and ends it after its last, so per-session state (a detected language, a face track,
    # a segmenter) never outlives its session, even when a session id is reused.
    def check_session(self, control: SessionControl) -> None:
        """Raise before any work if this stage cannot serve the session (languages, pairs)."""

    def open_session(self, control: SessionControl) -> None:
        """A session starts: set up per-session state."""

    def end_session(self, session_id: str) -> None:
        """A session ended (or was abandoned): drop its per-session state."""

    # -- processing ------------------------------------------------------
    async def process(self, record: In) -> list[Out]:
        """Process one record off the event loop; returns 0..n output records."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.process_sync, record)

    async def flush(self, session_id: str) -> list[Out]:
        """End of a session's stream: emit whatever is still held."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.flush_sync, session_id)

    def process_sync(self, record: In) -> list[Out]:
        return self._guarded(self._handle, record, count=True)

    def flush_sync(self, session_id: str) -> list[Out]:
        """Not a record: counted in no record metric and no service-time observer."""
        return self._guarded(self._flush, session_id, count=False)

    def _guarded(self, fn: Callable[[Any], list[Out]], arg: Any, *, count: bool) -> list[Out]:
        m = self.metrics
        if m and count:
            m.records_in.labels(self.name).inc()
        started = time.perf_counter()
        try:
            out = fn(arg)
        except LiveDubError as e:
            self._failed(e)
            raise
        except Exception as e:  # a library error: translate where caught
            self._failed(e)
            raise StageError(self.name, self.backend.name, f"{type(e).__name__}: {e}") from e
        if m:
            m.records_out.labels(self.name).inc(len(out))
        if not count:
            return out
        elapsed = time.perf_counter() - started
        if m:
            m.stage_seconds.labels(self.name, self.backend.name).observe(elapsed)
        for obs in self.observers:
            obs(self.name, elapsed, arg)
        return out

    def _failed(self, e: BaseException) -> None:
        if self.metrics:
            self.metrics.records_failed.labels(self.name, type(e).__name__).inc()
        e.counted = True  # the Kafka edge, which contains what escapes a step, does not count it again

    @abstractmethod
    def _handle(self, record: In) -> list[Out]:
        """Turn one input record into output records (runs in the stage's thread)."""

    def _flush(self, session_id: str) -> list[Out]:
        return []
