"""The one retry policy, shared by the in-process runner and the Kafka agents (from `RetrySettings`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from workers.errors import ConfigError, LiveDubError, ModelLoadError
from workers.settings import RetrySettings

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often a retryable failure is tried again, and how long to wait in between."""

    retries: int = 2
    backoff_s: float = 0.1  # doubled after each failed attempt
    deadline_s: float | None = None  # a stage call on one record past this is abandoned (Kafka agents)
    max_attempts: int = 3  # lives a worker may lose on one record before it is dead-lettered on sight

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> RetryPolicy:
        return cls(settings.retries, settings.backoff_s, settings.deadline_s, settings.max_attempts)

    def delay(self, attempt: int) -> float:
        return self.backoff_s * 2**attempt

    async def run(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """Await `call()`, again up to `retries` times while it raises a retryable LiveDubError.

        Configuration and model-load errors are never retried; the last error is re-raised.
        """
        for attempt in range(self.retries + 1):
            try:
                return await call()
            except (ConfigError, ModelLoadError):
                raise
            except LiveDubError as e:
                if not e.retryable or attempt == self.retries:
                    raise
                log.warning("%s: %s (retry %d of %d)", what, e, attempt + 1, self.retries)
                await asyncio.sleep(self.delay(attempt))
        raise AssertionError("unreachable")
