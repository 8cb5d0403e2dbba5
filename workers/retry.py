"""The one retry policy, shared by the in-process runner and the Kafka agents."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from workers.errors import ConfigError, LiveDubError, ModelLoadError

log = logging.getLogger(__name__)
T = TypeVar("T")


async def with_retries(call: Callable[[], Awaitable[T]], retries: int, what: str, backoff_s: float = 0.1) -> T:
    """Await `call()`, again up to `retries` times while it raises a retryable LiveDubError.

    Configuration and model-load errors are never retried; the last error is re-raised.
    """
    for attempt in range(retries + 1):
        try:
            return await call()
        except (ConfigError, ModelLoadError):
            raise
        except LiveDubError as e:
            if not e.retryable or attempt == retries:
                raise
            log.warning("%s: %s (retry %d of %d)", what, e, attempt + 1, retries)
            await asyncio.sleep(backoff_s * 2**attempt)
    raise AssertionError("unreachable")
