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

from monitoring.metrics import Metrics
from workers.errors import LiveDubError, StageError
from workers.settings import Settings

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared so runners and `doctor` need not guess."""

    languages: frozenset[str] | None = None  # None: any language
    sample_rate: int | None = None
    batchable: bool = False
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

    def close(self) -> None:
        self.backend.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self.metrics:
            self.metrics.model_loaded.labels(self.name, self.backend.name).set(0)

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
        return self._guarded(self._handle, record)

    def flush_sync(self, session_id: str) -> list[Out]:
        return self._guarded(self._flush, session_id)

    def _guarded(self, fn: Callable[[Any], list[Out]], arg: Any) -> list[Out]:
        m = self.metrics
        if m:
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
        elapsed = time.perf_counter() - started
        if m:
            m.stage_seconds.labels(self.name, self.backend.name).observe(elapsed)
            m.records_out.labels(self.name).inc(len(out))
        for obs in self.observers:
            obs(self.name, elapsed, arg)
        return out

    def _failed(self, e: BaseException) -> None:
        if self.metrics:
            self.metrics.records_failed.labels(self.name, type(e).__name__).inc()

    @abstractmethod
    def _handle(self, record: In) -> list[Out]:
        """Turn one input record into output records (runs in the stage's thread)."""

    def _flush(self, session_id: str) -> list[Out]:
        return []
