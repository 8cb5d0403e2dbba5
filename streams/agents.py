"""Thin Faust agents: decode -> `step.handle(record)` -> send, per stage.

Everything else is bookkeeping that belongs at the Kafka edge: per-hop latency
(produce time to consume time), consumer lag, the dead-letter topic for a
record that fails to decode or process (with the error and its original bytes;
the worker keeps going), and when to ack: a record is acked (so its offset may
be committed) only after its outputs are sent and once the step no longer
retains it (workers.streaming.Step), which makes a restart at least once with
nothing lost. Stage logic stays in `workers/`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import faust

from monitoring.metrics import Metrics
from streams.app import RECEIVED_AT
from streams.codecs import SchemaSource, decode
from streams.topics import DeadLetter, Topics, record_key
from workers.errors import ConfigError, LiveDubError, ModelLoadError
from workers.records import Record
from workers.retry import with_retries
from workers.streaming import SESSION_IDLE_S, LipsyncStep, Step, record_time

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
    stream: Any = None  # the agent's (manually acked) stream
    clock: float = 0.0  # newest record time seen (stream time, for session expiry)
    last_handled: float = field(default_factory=time.monotonic)
    held: int = 0  # records handled but retained by the step (not acked yet)


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

    async def send(outs: list[Record]) -> None:
        for o in outs:  # stamped at send time: the next hop's latency is transport, not batching
            await sink.send(key=record_key(o), value=o.replace(produced_at=time.time()))

    async def process(msg: Any) -> Hashable | None:
        """Decode, handle and send; the step's retention key for the record, if it keeps it."""
        try:
            record = decode(msg.value, registry)
        except LiveDubError as e:
            metrics.records_failed.labels(stage, type(e).__name__).inc()
            await dead_letter(msg, e)
            return None
        metrics.hop_latency_seconds.labels(topics.hop(msg.topic), stage).observe(
            max(0.0, _received_at(msg) - _produced_at(record, msg)))
        state.clock = max(state.clock, record_time(record))
        try:
            outs = await with_retries(lambda: step.handle(record), RETRIES, stage, backoff_s=0.0)
        except (ConfigError, ModelLoadError):
            raise  # the worker cannot work: crash loudly, Kubernetes restarts it
        except LiveDubError as e:
            step.retained()  # a record that failed is not kept
            await dead_letter(msg, e)
            return None
        await send(outs)
        return step.retained()

    # Events of records the step retains (its state still depends on them), by retention key.
    held: dict[Hashable, list[Any]] = {}
    lock = asyncio.Lock()  # the agent and the expiry timer take turns on the step

    async def release(stream: faust.StreamT) -> None:
        for key in step.released():
            for event in held.pop(key, ()):
                await stream.ack(event)

    async def agent(stream: faust.StreamT) -> None:
        state.started = True
        # Manual acks: a record is acked only once its outputs (or its dead letter) are handed to
        # the producer (Faust flushes the producer before it commits acked offsets) and the step
        # no longer retains it (see workers.streaming.Step). With automatic acks the stream's
        # `finally` acks the in-flight record when SIGTERM cancels the agent mid-record; it is
        # committed on the way out and lost.
        manual = stream.noack()
        state.stream = manual
        async for event in manual.events():
            msg = event.message
            async with lock:
                key = await process(msg)  # cancelled on shutdown: not acked, processed again after a restart
                if key is None:
                    await manual.ack(event)
                else:
                    held.setdefault(key, []).append(event)
                await release(manual)
                state.last_handled = time.monotonic()
                state.processed[(msg.topic, msg.partition)] = msg.offset
                state.held = sum(len(v) for v in held.values())

    app.agent(source, name=f"livedub.{stage}")(agent)

    @app.timer(5.0)
    async def expire_sessions() -> None:
        """End sessions idle for SESSION_IDLE_S of stream time (their publisher died without end
        markers), so they stop holding memory and commits. Stream time is the newest record time
        seen, or the wall clock once the worker has been idle that long (it is caught up)."""
        if state.stream is None:
            return
        async with lock:
            idle = time.monotonic() - state.last_handled > SESSION_IDLE_S
            clock = time.time() if idle else state.clock
            await send(await step.expire(clock))
            await release(state.stream)
            state.held = sum(len(v) for v in held.values())

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
    """Wall clock when the consumer handed the message to the stream (not when the agent took it)."""
    return RECEIVED_AT.get(msg, time.time())


def _produced_at(record: Record, msg: Any) -> float:
    """The producer's wall clock for this record: its own field, else the Kafka timestamp."""
    return record_time(record, default=msg.timestamp or time.time())
