"""One exception root for the whole project.

`retryable` tells a runner or a Kafka agent whether the same input may succeed
later (a busy subprocess, a broker hiccup) or never will (bad media, an
unsupported language), so it can retry or dead-letter without guessing.
"""

from __future__ import annotations


class LiveDubError(Exception):
    """Root of every error LiveDub raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ConfigError(LiveDubError):
    """Settings or command-line values that cannot work."""


class BadInputError(LiveDubError):
    """Media or records that cannot be processed (not a media file, corrupt, empty)."""


class UnsupportedLanguageError(LiveDubError):
    """A language or language pair no configured backend supports."""


class ModelLoadError(LiveDubError):
    """A model or system tool a backend needs is missing or broken."""


class StageError(LiveDubError):
    """A backend call failed; wraps the library error that caused it."""

    def __init__(self, stage: str, backend: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(f"{stage}/{backend}: {message}", retryable=retryable)
        self.stage = stage
        self.backend = backend


class TransportError(LiveDubError):
    """Broker or schema registry trouble; usually worth retrying."""

    retryable = True


class SchemaError(LiveDubError):
    """A record that does not match its Avro schema."""


class DeadlineError(LiveDubError):
    """A record's stage call ran past its deadline, or the worker died on it too often: given up."""
