"""Thin Faust agents: decode -> `step.handle(record)` -> send, per stage.

Everything else is bookkeeping that belongs at the Kafka edge: per-hop latency
(produce time to consume time), consumer lag, and the dead-letter topic for a
record that fails to decode or process (with the error and its original bytes;
the worker keeps going). Stage logic stays in `workers/`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import faust

from monitoring.metrics import Metrics
from streams.codecs import SchemaSource, decode
from streams.topics import DeadLetter, Topics, record_key
from workers.errors import ConfigError, LiveDubError, ModelLoadError
from workers.records import Record
from workers.streaming import LipsyncStep, Step

log = logging.getLogger(__name__)

# stage -> (input hops, output hop)
WIRING: dict[str, tuple[tuple[str, ...], str]] = {
    "segment": (("session.control", "media.audio"), "segments"),
    "asr": (("segments",), "transcripts"),
    "translate": (("transcripts",), "translations"),
    "tts": (("translations",), "dubbed.speech"),
    "lipsync": (("session.control", "media.video", "dubbed.speech"), "dubbed.video"),
}
RETRIES = 2


@dataclass
class AgentState:
    """What /readyz and the lag gauge read."""

    processed: dict[tuple[str, int], int] = field(default_factory=dict)  # last offset handled per tp
    started: bool = False


def attach(
    app: faust.App,
    stage: str,
    step: Step,
    topics: Topics,
    registry: SchemaSource,
    codec_names: dict[str, str],
    metrics: Metrics,
) -> AgentState:
    """Wire `step` as the agent of `stage` on `app`; returns state for health and lag."""
    ins, out = WIRING[stage]
    in_topics = [topics.name(h) for h in ins]
    source = app.topic(*in_topics, key_serializer="raw", value_serializer="raw")
    out_name = topics.name(out)
    sink = app.topic(out_name, key_serializer="raw", value_serializer=codec_names[out_name])
    dlq = app.topic(topics.dlq, key_serializer="raw", value_serializer=codec_names[topics.dlq])
    state = AgentState()

    if isinstance(step, LipsyncStep):
        step.on_segment_done.append(
            lambda sp: metrics.e2e_latency_seconds.labels(sp.target_lang).observe(time.time() - sp.speech_end_at)
        )

    async def dead_letter(msg: Any, e: BaseException) -> None:
        metrics.dlq_records.labels(stage).inc()
        log.warning("%s: %s[%d]@%d -> DLQ: %s", stage, msg.topic, msg.partition, msg.offset, e)
        await dlq.send(key=msg.key, value=DeadLetter(
            stage=stage, topic=msg.topic, partition=msg.partition, offset=msg.offset, error=str(e),
            error_type=type(e).__name__, retryable=bool(getattr(e, "retryable", False)),
            original_key=msg.key, original_value=msg.value or b"",
        ))

    async def handle(record: Record) -> list[Record]:
        for attempt in range(RETRIES + 1):
            try:
                return await step.handle(record)
            except LiveDubError as e:
                if not e.retryable or attempt == RETRIES or isinstance(e, ConfigError | ModelLoadError):
                    raise
                log.warning("%s: %s (retry %d)", stage, e, attempt + 1)
        return []

    async def process(msg: Any) -> None:
        try:
            record = decode(msg.value, registry)
        except LiveDubError as e:
            metrics.records_failed.labels(stage, type(e).__name__).inc()
            await dead_letter(msg, e)
            return
        metrics.hop_latency_seconds.labels(topics.hop(msg.topic), stage).observe(
            max(0.0, _received_at(msg) - _produced_at(record, msg)))
        try:
            outs = await handle(record)
        except (ConfigError, ModelLoadError):
            raise  # the worker cannot work: crash loudly, Kubernetes restarts it
        except LiveDubError as e:
            await dead_letter(msg, e)
            return
        for o in outs:  # stamped at send time: the next hop's latency is transport, not batching
            await sink.send(key=record_key(o), value=o.replace(produced_at=time.time()))

    async def agent(stream: faust.StreamT) -> None:
        state.started = True
        # Manual acks: a record is acked only once its outputs (or its dead letter) are handed to
        # the producer, and Faust flushes the producer before it commits acked offsets. With
        # automatic acks the stream's `finally` acks the in-flight record when SIGTERM cancels the
        # agent mid-record; it is committed on the way out and lost.
        manual = stream.noack()
        async for event in manual.events():
            msg = event.message
            await process(msg)  # cancelled on shutdown: not acked, so processed again after a restart
            await manual.ack(event)
            state.processed[(msg.topic, msg.partition)] = msg.offset

    app.agent(source, name=f"livedub.{stage}")(agent)

    @app.timer(5.0)
    async def report_lag() -> None:
        metrics.queue_depth.labels(stage).set(app.monitor.messages_active)  # received, not yet acked
        consumer = app.consumer
        for tp in consumer.assignment():
            hw = consumer.highwater(tp)
            done = state.processed.get((tp.topic, tp.partition))
            if hw is not None and done is not None:
                metrics.consumer_lag.labels(stage, tp.topic, str(tp.partition)).set(max(0, hw - done - 1))

    return state


def _received_at(msg: Any) -> float:
    """Wall clock when the consumer fetched the message (Faust's monitor stamps it, monotonic), so
    waiting behind a busy stage is not counted as transport."""
    if msg.time_in is None:
        return time.time()
    return time.time() - (time.monotonic() - msg.time_in)


def _produced_at(record: Record, msg: Any) -> float:
    """The producer's wall clock for this record: its own field, else the Kafka timestamp."""
    at = getattr(record, "produced_at", None) or getattr(record, "at", None)
    return at if at else (msg.timestamp or time.time())
