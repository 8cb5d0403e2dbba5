"""`create_app(settings, stage)`: the Faust app of one stage's worker.

One app id (= Kafka consumer group `livedub-<stage>`) per stage, so each stage
scales on its own up to the partition count. Tuned for latency: the producer
does not linger, commits are frequent, and the worker serves /metrics, /livez
and /readyz on `settings.http_port`.
"""

from __future__ import annotations

import ssl
import time
import weakref
from typing import Any

import faust
from mode.utils.queues import ThrowableQueue

from workers.settings import KafkaSettings, Settings

# Latency-oriented Faust/aiokafka settings (measured in the Kafka benchmark; see README).
LATENCY_TUNING: dict[str, Any] = {
    "producer_linger_ms": 0,  # send at once: records are few and large, batching only adds delay
    "producer_acks": 1,  # leader ack: one broker round trip per send
    "producer_max_request_size": 4_000_000,  # a 1080p JPEG frame can pass 1 MB
    "broker_commit_interval": 0.5,  # commit often: a restart replays at most half a second
    "broker_commit_every": 50,
    "stream_wait_empty": False,  # do not wait for buffers to drain on rebalance
    "stream_buffer_maxsize": 256,  # bounded in-worker buffer: backpressure to the fetcher
    "broker_max_poll_records": 50,
    "consumer_auto_offset_reset": "earliest",
    # A crashed worker's partitions move to a live one (or its restart) after 10 s, not Faust's 60 s;
    # heartbeats come from the event loop, which model calls never block (they run in an executor).
    "broker_session_timeout": 10.0,
    "broker_heartbeat_interval": 1.0,
    "topic_allow_declare": False,  # our topics are created with the right partitions by `livedub topics`
    "topic_disable_leader": True,
}


#: wall clock at which each message entered its stream's buffer, i.e. left the consumer. Faust's own
#: `Message.time_in` is stamped when the agent *takes* the message, which counts the wait behind a
#: busy stage as transport.
RECEIVED_AT: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


class _ReceiptStampingQueue(ThrowableQueue):
    """A stream buffer that notes when each event was delivered into it."""

    def put_nowait_enhanced(self, value: Any, **kwargs: Any) -> bool:
        RECEIVED_AT[value.message] = time.time()
        return super().put_nowait_enhanced(value, **kwargs)

    async def put(self, value: Any) -> None:
        if hasattr(value, "message"):
            RECEIVED_AT[value.message] = time.time()
        await super().put(value)


class LiveDubApp(faust.App):
    """faust.App whose stream buffers stamp the receipt time used for per-hop latency."""

    def FlowControlQueue(self, maxsize: int | None = None, *, clear_on_resume: bool = False) -> ThrowableQueue:
        return _ReceiptStampingQueue(maxsize=maxsize, flow_control=self.flow_control, clear_on_resume=clear_on_resume)


def group_id(stage: str, prefix: str = "livedub.") -> str:
    """Consumer group of a stage: `livedub-<stage>` for the default prefix, distinct per deployment."""
    return f"{prefix.rstrip('.-_') or 'livedub'}-{stage}"


def broker_credentials(kafka: KafkaSettings) -> Any:
    """Faust credentials for SASL/SCRAM or mTLS from settings (secrets never logged)."""
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
        if kafka.ssl_certfile:
            ctx.load_cert_chain(str(kafka.ssl_certfile), str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None)
        if kafka.security_protocol == "SSL":
            return faust.SSLCredentials(ctx)
    else:
        ctx = None
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
            mechanism=kafka.sasl_mechanism or "SCRAM-SHA-512",
            ssl_context=ctx,
        )
    return None


def create_app(settings: Settings, stage: str, **overrides: Any) -> faust.App:
    """A new Faust app for `stage` (never a module global: tests build several)."""
    datadir = settings.cache_dir / "faust" / stage
    datadir.mkdir(parents=True, exist_ok=True)
    conf: dict[str, Any] = {
        **LATENCY_TUNING,
        "broker": [f"kafka://{s.strip()}" for s in settings.kafka.bootstrap_servers.split(",")],
        "broker_credentials": broker_credentials(settings.kafka),
        "key_serializer": "raw",
        "value_serializer": "raw",
        "topic_partitions": settings.topics.partitions,
        "topic_replication_factor": settings.topics.replication,
        "web_enabled": True,
        "web_bind": "0.0.0.0",
        "web_port": settings.http_port,
        "web_host": "127.0.0.1",
        "datadir": str(datadir),
        "store": "memory://",
        **overrides,
    }
    return LiveDubApp(group_id(stage, settings.topics.prefix), **conf)
