"""Record size limits that must agree: what this worker produces, and what the broker takes.

A foreign client's 6 MB record (the broker took up to 8 MiB) could not be dead-lettered by a
worker whose producer allows 4 MB, and the worker stopped. Dead letters are now cut to fit
(streams.topics.DEAD_LETTER_MAX_VALUE); this check makes the rest explicit at start-up: every
topic the worker writes must accept the producer's largest request, and the producer must be able
to send a full dead letter. A mismatch is a ConfigError naming the topic and both sizes.
"""

from __future__ import annotations

from typing import Any

from streams.topics import DEAD_LETTER_MAX_VALUE, Topics
from workers.errors import ConfigError, TransportError

DEAD_LETTER_OVERHEAD = 64 * 1024  # the error text, names, key and framing around the value


def topic_limits(admin: Any, names: list[str], timeout: float = 30.0) -> dict[str, int]:
    """`max.message.bytes` of each topic (the broker's message.max.bytes unless the topic overrides it)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ConfigResource

    out = {}
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in names])
    for res, fut in futures.items():
        try:
            out[res.name] = int(fut.result(timeout=timeout)["max.message.bytes"].value)
        except KafkaException as e:
            raise TransportError(f"cannot read the config of topic {res.name!r}: {e}") from e
    return out


def check_limits(admin: Any, topics: Topics, stage: str, producer_max: int) -> dict[str, int]:
    """Raise ConfigError unless every topic `stage` writes takes `producer_max` bytes and a dead
    letter fits in `producer_max`; returns the topics' limits."""
    if producer_max < DEAD_LETTER_MAX_VALUE + DEAD_LETTER_OVERHEAD:
        raise ConfigError(f"the producer's max request size ({producer_max} bytes) cannot carry a dead letter "
                          f"({DEAD_LETTER_MAX_VALUE + DEAD_LETTER_OVERHEAD} bytes)")
    limits = topic_limits(admin, [topics.output(stage), topics.dlq])
    small = {t: n for t, n in limits.items() if n < producer_max}
    if small:
        raise ConfigError("topics that refuse what this worker may send (producer max request size "
                          f"{producer_max} bytes): " + ", ".join(f"{t} max.message.bytes={n}" for t, n in small.items())
                          + "; raise them (LIVEDUB_TOPICS__CONFIG) or the broker's message.max.bytes")
    return limits
