"""One stage's Kafka edge: decode -> `step.handle(record)` -> send, plus what belongs at that edge.

`StageAgent` holds the logic and no Faust: per-hop latency (produce stamp to delivery),
the dead-letter topic for a record that fails to decode or process (with the error and its
original bytes; the worker goes on), retries by the one retry policy, session expiry, and when
to ack: a record is acked (so its offset may be committed) only after its outputs are sent and
once the step no longer retains it (workers.streaming.Step), which makes a restart at least
once with nothing lost. `attach()` wires it into a Faust app (agent and timers). Stage logic
stays in `workers/`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import faust

from monitoring.metrics import Metrics
from streams.app import RECEIVED_AT
from streams.codecs import STREAM_RECORD_TYPES, SchemaSource, decode
from streams.dead_letter_log import DeadLetterLog
from streams.inflight import InFlight
from streams.marks import OutputMarks
from streams.ordered_acks import OrderedAcks
from streams.topics import DEAD_LETTER_MAX_VALUE, DeadLetter, Topics, record_key
from workers.errors import ConfigError, DeadlineError, LiveDubError, ModelLoadError
from workers.records import Record
from workers.retry import RetryPolicy
from workers.streaming import SESSION_IDLE_S, LipsyncStep, Step, record_time
from workers.validation import validate

log = logging.getLogger(__name__)

Ack = Callable[[Any], Awaitable[Any]]


class Output(ABC):
    """Where an agent sends records (a Faust topic in a worker, a list in unit tests)."""

    @abstractmethod
    async def send(self, key: bytes | None, value: Record) -> None: ...


class FaustOutput(Output):
    def __init__(self, topic: faust.TopicT) -> None:
        self.topic = topic

    async def send(self, key: bytes | None, value: Record) -> None:
        await self.topic.send(key=key, value=value)


@dataclass
class AgentState:
    """What /readyz and the lag gauge read."""

    processed: dict[tuple[str, int], int] = field(default_factory=dict)  # last offset handled per tp
    started: bool = False
    stream: Any = None  # the agent's (manually acked) stream
    clock: float = 0.0  # newest record time seen (stream time, for session expiry)
    last_handled: float = field(default_factory=time.monotonic)
    held: int = 0  # records handled but retained by the step (not acked yet)
    wedged_since: float | None = None  # monotonic time a stage call was abandoned and still runs (/livez fails)


class StageAgent:
    """Drives one step from consumed messages (anything with topic/partition/offset/key/value/timestamp)."""

    def __init__(self, stage: str, step: Step, topics: Topics, registry: SchemaSource, metrics: Metrics,
                 out: Output, dlq: Output, retry: RetryPolicy, idle_s: float = SESSION_IDLE_S,
                 inflight: InFlight | None = None) -> None:
        self.stage, self.step, self.topics, self.registry, self.metrics = stage, step, topics, registry, metrics
        self.out, self.dlq, self.retry, self.idle_s = out, dlq, retry, idle_s
        self.inflight = inflight or InFlight(None)
        self.state = AgentState()
        self.wedged: asyncio.Future | None = None  # the abandoned call, still holding the stage's thread
        self.marks = OutputMarks()  # what this stage wrote before a restart (streams/marks.py)
        self.dead_letter_log = DeadLetterLog(log, stage)
        # Set once the marks of the current assignment are read back; records wait for it (Faust
        # resumes the flow before its on_partitions_assigned signal has run). None: no read-back.
        self.recovered: asyncio.Event | None = None
        # Events of records the step retains (its state still depends on them), by retention key.
        self.held: dict[Hashable, list[Any]] = {}
        self.acks = OrderedAcks()  # never past a retained record (streams/ordered_acks.py)
        self.lock = asyncio.Lock()  # the agent and the expiry timer take turns on the step
        if isinstance(step, LipsyncStep):
            step.on_segment_done.append(
                lambda sp: metrics.e2e_latency_seconds.labels(sp.target_lang).observe(time.time() - sp.speech_end_at))

    # -- one message ------------------------------------------------------------------------
    async def on_event(self, event: Any, ack: Ack) -> None:
        """Handle one consumed event; ack it now, or once the step releases it."""
        msg = event.message
        self.acks.consumed(event)
        async with self.lock:
            key = await self.process(msg)  # cancelled on shutdown: not acked, processed again after a restart
            if key is None:
                await self.acks.ack(event, ack, _without_bytes)
            else:
                self.held.setdefault(key, []).append(_without_bytes(event))
            await self._release(ack)
            self.state.last_handled = time.monotonic()
            self.state.processed[(msg.topic, msg.partition)] = msg.offset

    async def process(self, msg: Any) -> Hashable | None:
        """Decode, handle and send; the step's retention key for the record, if it keeps it."""
        attempt = self.inflight.begin(msg.topic, msg.partition, msg.offset)
        try:
            if attempt > self.retry.max_attempts:
                self.metrics.records_failed.labels(self.stage, DeadlineError.__name__).inc()
                await self.dead_letter(msg, DeadlineError(
                    f"the worker stopped {attempt - 1} times while processing this record: not tried again"))
                return None
            return await self._process(msg)
        finally:
            self.inflight.done()

    async def _call(self, record: Record) -> list[Record]:
        """The step on `record`, within the deadline. Past it the call is abandoned (a thread cannot be
        stopped: it runs on, its result is dropped) and the next record waits for it to return."""
        if self.wedged is not None:
            await asyncio.wait({self.wedged})
        task = asyncio.ensure_future(self.retry.run(lambda: self.step.handle(record), self.stage))
        done, _ = await asyncio.wait({task}, timeout=self.retry.deadline_s)
        if task in done:
            return task.result()
        self.wedged, self.state.wedged_since = task, time.monotonic()

        def unwedge(t: asyncio.Future) -> None:
            self.wedged, self.state.wedged_since = None, None
            if not t.cancelled() and t.exception() is not None:
                log.warning("%s: the abandoned call ended with %r", self.stage, t.exception())

        task.add_done_callback(unwedge)
        raise DeadlineError(f"{self.stage}: no result within {self.retry.deadline_s:g} s: abandoned")

    async def _process(self, msg: Any) -> Hashable | None:
        if self.recovered is not None and not self.recovered.is_set():
            await self.recovered.wait()
        try:
            record = validate(decode(msg.value, self.registry), self.expected(msg.topic))
        except LiveDubError as e:  # cheap: nothing of the stage has run (workers/validation.py)
            self.metrics.records_failed.labels(self.stage, type(e).__name__).inc()
            await self.dead_letter(msg, e)
            return None
        self.metrics.hop_latency_seconds.labels(self.topics.hop(msg.topic), self.stage).observe(
            max(0.0, _received_at(msg) - _produced_at(record, msg)))
        self.state.clock = max(self.state.clock, record_time(record))
        streams = self.step.output_streams(record)
        if streams is not None and self.marks.done(record.session_id, record.seq, streams):
            self.metrics.replays_suppressed.labels(self.stage).inc()  # finished before a restart: no model call
            return None
        try:
            outs = await self._call(record)
        except (ConfigError, ModelLoadError):
            raise  # the worker cannot work: crash loudly, Kubernetes restarts it
        except Exception as e:  # a defect of ours or a library's: contained, counted, dead-lettered
            self.step.retained()  # a record that failed is not kept
            if not isinstance(e, LiveDubError):
                log.exception("%s: unexpected error on %s[%d]@%d", self.stage, msg.topic, msg.partition, msg.offset)
            if not getattr(e, "counted", False):  # the stage counts its own failures
                self.metrics.records_failed.labels(self.stage, type(e).__name__).inc()
            await self.dead_letter(msg, e)
            return None
        await self.send(outs)
        return self.step.retained()

    def expected(self, topic: str) -> tuple[type[Record], ...]:
        """The record type the topology puts on `topic` (anything else there is a dead letter)."""
        try:
            return (STREAM_RECORD_TYPES[self.topics.topology.hop_records[self.topics.hop(topic)]],)
        except (LiveDubError, KeyError):
            return ()

    async def send(self, outs: list[Record]) -> None:
        fresh = self.marks.fresh(outs)
        if len(fresh) < len(outs):
            self.metrics.replays_suppressed.labels(self.stage).inc(len(outs) - len(fresh))
        for o in fresh:  # stamped at send time: the next hop's latency is transport, not batching
            await self.out.send(record_key(o), o.replace(produced_at=time.time()))

    async def dead_letter(self, msg: Any, e: BaseException) -> None:
        self.metrics.dlq_records.labels(self.stage).inc()
        self.dead_letter_log(type(e).__name__, f"{msg.topic}[{msg.partition}]@{msg.offset}", e)
        await self.dlq.send(msg.key, DeadLetter(
            stage=self.stage, topic=msg.topic, partition=msg.partition, offset=msg.offset, error=str(e),
            error_type=type(e).__name__, retryable=bool(getattr(e, "retryable", False)),
            original_key=msg.key, original_value=(msg.value or b"")[:DEAD_LETTER_MAX_VALUE],
            original_size=len(msg.value or b""),
        ))

    async def _release(self, ack: Ack) -> None:
        for key in self.step.released():
            for event in self.held.pop(key, ()):
                await self.acks.ack(event, ack, _without_bytes)
        self.state.held = sum(len(v) for v in self.held.values())

    # -- timers -----------------------------------------------------------------------------
    async def expire(self, ack: Ack, *, wall: float | None = None, mono: float | None = None) -> None:
        """End sessions idle for `idle_s` of stream time (their publisher died without end markers),
        so they stop holding memory and commits. Stream time is the newest record time seen, or the
        wall clock once the worker itself has been idle that long (it is caught up)."""
        async with self.lock:
            mono = time.monotonic() if mono is None else mono
            idle = mono - self.state.last_handled > self.idle_s
            clock = (time.time() if wall is None else wall) if idle else self.state.clock
            try:
                outs = await self.step.expire(clock, self.idle_s)
            except (ConfigError, ModelLoadError):
                raise
            except Exception as e:  # a timer never stops the worker: what it could not end is logged, counted
                log.exception("%s: session expiry failed: %s", self.stage, e)
                self.metrics.records_failed.labels(self.stage, f"expiry:{type(e).__name__}").inc()
                outs = []
            await self.send(outs)
            await self._release(ack)

    def report_lag(self, assignment: Any, highwater: Callable[[Any], int | None]) -> None:
        for tp in assignment:
            hw = highwater(tp)
            done = self.state.processed.get((tp.topic, tp.partition))
            if hw is not None and done is not None:
                self.metrics.consumer_lag.labels(self.stage, tp.topic, str(tp.partition)).set(max(0, hw - done - 1))


def attach(app: faust.App, stage: str, step: Step, topics: Topics, registry: SchemaSource,
           codec_names: dict[str, str], metrics: Metrics, retry: RetryPolicy,
           inflight: InFlight | None = None,
           recover: Callable[[list[int]], list[Record]] | None = None,
           idle_s: float = SESSION_IDLE_S) -> StageAgent:
    """Wire `step` as the agent of `stage` on `app` (inputs and output from the topology).

    `recover(partitions)`: what the stage already wrote on those partitions since its oldest
    uncommitted input (streams/recover.py), read on every assignment before records flow."""
    source = app.topic(*topics.inputs(stage), key_serializer="raw", value_serializer="raw")
    out_name = topics.output(stage)
    out = FaustOutput(app.topic(out_name, key_serializer="raw", value_serializer=codec_names[out_name]))
    dlq = FaustOutput(app.topic(topics.dlq, key_serializer="raw", value_serializer=codec_names[topics.dlq]))
    agent = StageAgent(stage, step, topics, registry, metrics, out, dlq, retry, idle_s=idle_s, inflight=inflight)

    async def consume(stream: faust.StreamT) -> None:
        agent.state.started = True
        # Manual acks: a record is acked only once its outputs (or its dead letter) are handed to
        # the producer (Faust flushes the producer before it commits acked offsets) and the step
        # no longer retains it. With automatic acks the stream's `finally` acks the in-flight record
        # when SIGTERM cancels the agent mid-record; it is committed on the way out and lost.
        manual = stream.noack()
        agent.state.stream = manual
        async for event in manual.events():
            await agent.on_event(event, manual.ack)

    app.agent(source, name=f"livedub.{stage}")(consume)

    @app.on_partitions_revoked.connect
    async def forget_acks(sender: Any, revoked: Any, **kwargs: Any) -> None:
        agent.acks.forget((tp.topic, tp.partition) for tp in revoked)

    if recover is not None:
        agent.recovered = asyncio.Event()

        @app.on_partitions_revoked.connect
        async def hold_records(sender: Any, revoked: Any, **kwargs: Any) -> None:
            agent.recovered.clear()  # the next assignment's marks first

        @app.on_partitions_assigned.connect
        async def recover_marks(sender: Any, assigned: Any, **kwargs: Any) -> None:
            agent.recovered.clear()
            try:
                parts = sorted({tp.partition for tp in assigned})
                if not parts:
                    return
                started = time.perf_counter()
                written = await asyncio.get_running_loop().run_in_executor(None, recover, parts)
                marks = OutputMarks()
                marks.recover(written)
                agent.marks = marks
                log.info("%s: read back %d records written since the oldest uncommitted input (%d session "
                         "streams) in %.2f s", stage, len(written), len(marks.marks), time.perf_counter() - started)
            except Exception as e:  # at least once, as before: duplicates possible, nothing lost
                log.warning("%s: cannot read back its output (%s): replays may repeat outputs", stage, e)
            finally:
                agent.recovered.set()

    @app.timer(5.0)
    async def expire_sessions() -> None:
        if agent.state.stream is not None:
            await agent.expire(agent.state.stream.ack)

    @app.timer(5.0)
    async def report_lag() -> None:
        metrics.queue_depth.labels(stage).set(app.monitor.messages_active)  # received, not yet acked
        agent.report_lag(app.consumer.assignment(), app.consumer.highwater)
        agent.dead_letter_log.tick()

    return agent


def _without_bytes(event: Any) -> Any:
    """A retained event, kept only to be acked later: its bytes are dropped (the record is handled;
    a replay after a restart reads them from the broker again). The segmenter retains every chunk
    of an open session, so with them an hour of a call held 115 MB of audio per session."""
    for holder in (event, getattr(event, "message", None)):
        if holder is not None and getattr(holder, "value", None) is not None:
            holder.value = None
    return event


def _received_at(msg: Any) -> float:
    """Wall clock when the consumer handed the message to the stream (not when the agent took it)."""
    return RECEIVED_AT.get(msg, time.time())


def _produced_at(record: Record, msg: Any) -> float:
    """The producer's wall clock for this record: its own field, else the Kafka timestamp."""
    return record_time(record, default=msg.timestamp or time.time())
