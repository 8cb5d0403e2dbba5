"""How cheap is rejecting a bad record? `livedub bench --reject`.

The segment worker's real edge (StageAgent: decode, validate, dead-letter, ack) with its outputs
in memory instead of a producer (the broker's cost is the same for any record): records/s
rejected per kind of bad record, and a valid session's time alone vs interleaved with 10,000
malformed records (the foreign client saw 8 s become 40 s). Writes OUT/reject.json.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from monitoring.metrics import Metrics
from streams.agents import Output, StageAgent
from streams.codecs import encode, load_schema
from streams.registry import schema_text
from streams.topics import Topics
from workers.records import AudioChunk, Record, SessionControl, Transcript
from workers.retry import RetryPolicy
from workers.settings import Settings, load_settings
from workers.streaming import SegmentStep, audio_end

TOPICS = Topics()
NAMES = ("SessionControl", "AudioChunk", "Transcript", "DeadLetter")


class _Schemas:
    """The registry as decoding sees it: id -> schema text (ids 1.. in NAMES order)."""

    def __init__(self) -> None:
        self.ids = {name: i + 1 for i, name in enumerate(NAMES)}
        self.text = {i: schema_text(load_schema(name)) for name, i in self.ids.items()}

    def get_schema(self, schema_id: int) -> str:
        return self.text[schema_id]


class _Memory(Output):
    def __init__(self) -> None:
        self.count = 0

    async def send(self, key: bytes | None, value: Record) -> None:
        self.count += 1


class _Msg:
    __slots__ = ("__weakref__", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, offset: int, key: bytes, value: bytes) -> None:
        self.topic, self.partition, self.offset = topic, 0, offset
        self.key, self.value, self.timestamp = key, value, 0.0


class _Event:
    __slots__ = ("message",)

    def __init__(self, message: _Msg) -> None:
        self.message = message


def _agent(schemas: _Schemas) -> tuple[StageAgent, _Memory, _Memory]:
    from workers.bench.calibrated import calibrated_pipeline

    stage = calibrated_pipeline(load_settings(), dict.fromkeys(("segment", "asr", "translate", "tts", "lipsync"),
                                                               0.0))["segment"]
    out, dlq = _Memory(), _Memory()
    return StageAgent("segment", SegmentStep(stage), TOPICS, schemas, Metrics(), out, dlq,
                      RetryPolicy(retries=0, backoff_s=0.0)), out, dlq


def _wire(schemas: _Schemas, record: Record) -> bytes:
    return encode(record, schemas.ids[record.schema_name])


def _valid(schemas: _Schemas, sid: str, chunks: int) -> list[tuple[str, bytes]]:
    msgs = [(TOPICS.session_control, _wire(schemas, SessionControl(sid, "start", ("es",), None)))]
    msgs += [(TOPICS.media_audio, _wire(schemas, AudioChunk(sid, i, i * 0.1, 16000, bytes(3200))))
             for i in range(chunks)]
    return [*msgs, (TOPICS.media_audio, _wire(schemas, audio_end(sid, chunks * 0.1)))]


BAD = {
    "undecodable": lambda s: (TOPICS.media_audio, b"\x07garbage"),
    "sample_rate 0": lambda s: (TOPICS.media_audio, _wire(s, AudioChunk("bad", 0, 0.0, 0, bytes(320)))),
    "sample_rate 2^62": lambda s: (TOPICS.media_audio, _wire(s, AudioChunk("bad", 0, 0.0, 2**62, bytes(320)))),
    "wrong record type": lambda s: (TOPICS.media_audio, _wire(s, Transcript("bad", -1, 0, 1, "", "en", 0, (), 0))),
    "NaN control": lambda s: (TOPICS.session_control,
                              _wire(s, SessionControl("bad", "stop", ("es",), None, at=float("nan")))),
}


async def _feed(agent: StageAgent, msgs: list[tuple[str, bytes]]) -> float:
    async def ack(event: Any) -> None:
        pass

    started = time.perf_counter()
    for i, (topic, value) in enumerate(msgs):
        await agent.on_event(_Event(_Msg(topic, i, b"k", value)), ack)
    return time.perf_counter() - started


def run(out: Path, n: int = 10_000, chunks: int = 300, kafka: bool = False) -> dict[str, Any]:
    logging.getLogger("streams.agents").setLevel(logging.ERROR)  # one warning per dead letter otherwise
    schemas = _Schemas()
    result: dict[str, Any] = {"records": n, "rejected_per_s": {}}
    for name, make in BAD.items():
        agent, _, dlq = _agent(schemas)
        seconds = asyncio.run(_feed(agent, [make(schemas)] * n))
        assert dlq.count == n, (name, dlq.count)
        result["rejected_per_s"][name] = round(n / seconds)
        print(f"[reject] {name}: {n / seconds:,.0f} records/s ({1e6 * seconds / n:.0f} µs each)")
    agent, _, _ = _agent(schemas)
    clean = asyncio.run(_feed(agent, _valid(schemas, "ok", chunks)))
    valid = _valid(schemas, "ok2", chunks)
    bad = [BAD["sample_rate 0"](schemas)] * n
    cut = [round(i * len(bad) / len(valid)) for i in range(len(valid) + 1)]  # every bad record, spread evenly
    mixed = [m for i, v in enumerate(valid) for m in (v, *bad[cut[i]:cut[i + 1]])]
    agent, _, dlq = _agent(schemas)
    t0 = time.perf_counter()
    asyncio.run(_feed(agent, mixed))
    beside = time.perf_counter() - t0
    result |= {"valid_session_chunks": chunks, "valid_alone_s": round(clean, 3),
               "valid_with_malformed_s": round(beside, 3), "malformed_dead_lettered": dlq.count,
               "malformed_cost_s": round(beside - clean, 3)}
    print(f"[reject] a valid session of {chunks} chunks: {clean:.2f} s alone, {beside:.2f} s with "
          f"{dlq.count} malformed records interleaved")
    if kafka:
        k = result["kafka"] = beside_malformed_on_kafka(out, n)
        print(f"[reject] through Kafka, a valid live session of {k['segments']} segments: "
              f"{k['valid_alone_s']:.2f} s alone, {k['valid_beside_malformed_s']:.2f} s beside {n} malformed "
              f"records on its partitions (x{k['slowdown']:.3f}); e2e p95 {k['e2e_p95_alone_s']:.3f} -> "
              f"{k['e2e_p95_beside_s']:.3f} s; {k['dead_letters']:.0f} dead letters")
    out.mkdir(parents=True, exist_ok=True)
    (out / "reject.json").write_text(json.dumps(result, indent=2) + "\n")
    return result



class _Ids:
    """A real registry's ids for the record types BAD writes (they decode, then fail validation)."""

    def __init__(self, settings: Settings, topics: Topics) -> None:
        from streams.registry import SchemaRegistry
        from streams.topics import value_subject

        with SchemaRegistry.from_settings(settings.schema_registry) as registry:
            self.ids = {name: registry.register(value_subject(topics.topic_for(name)), load_schema(name))
                        for name in ("SessionControl", "AudioChunk", "Transcript")}


def malformed_on_the_wire(settings: Settings, topics: Topics, partition: int, n: int) -> list[tuple[str, bytes, bytes]]:
    """`n` bad records (topic, key, value), every kind in BAD in turn, keyed by sessions hashed to
    `partition`: another client's broken sessions sharing a valid session's partition."""
    from streams.subscribe import partition_for

    keys = [k for k in (f"broken-{i}".encode() for i in range(1000))
            if partition_for(k, topics.partitions) == partition][:8]
    ids = _Ids(settings, topics)
    kinds = []
    for make in BAD.values():
        topic, value = make(ids)  # type: ignore[arg-type]
        kinds.append((topics.media_audio if topic == TOPICS.media_audio else topics.session_control, value))
    return [(kinds[i % len(kinds)][0], keys[i % len(keys)], kinds[i % len(kinds)][1]) for i in range(n)]


def beside_malformed_on_kafka(workdir: Path, n: int = 10_000, segments: int = 10) -> dict[str, Any]:
    """A valid live session through five real workers, alone and with `n` malformed records spread
    over it on its own partitions (the foreign client saw 8 s become 40 s): the session's time to
    its last frame and its e2e p95, both ways, and the dead letters the workers counted."""
    import threading
    import uuid

    from confluent_kafka import Producer

    from streams.bench import _run
    from streams.local_workers import LocalWorkers
    from streams.publish import producer_config
    from streams.subscribe import partition_for
    from streams.topics import admin_client, topics_from_settings
    from workers.bench.run import Feed, calibrated_feed

    logging.getLogger("streams.agents").setLevel(logging.ERROR)
    prefix = f"livedub-reject-{uuid.uuid4().hex[:6]}."
    settings = load_settings(topics={"prefix": prefix})
    topics = topics_from_settings(settings)
    feed = calibrated_feed(segments)
    sid = f"valid-{uuid.uuid4().hex[:6]}"
    bad = malformed_on_the_wire(settings, topics, partition_for(sid.encode(), topics.partitions), n)
    duration = segments * 1.0

    def noise() -> None:  # spread evenly over the session's real-time length
        p = Producer(producer_config(settings))
        t0 = time.monotonic()
        for i, (topic, key, value) in enumerate(bad):
            if (wait := t0 + i * duration / n - time.monotonic()) > 0:
                time.sleep(wait)
            while True:
                try:
                    p.produce(topic, key=key, value=value)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
        p.flush(30)

    workers = LocalWorkers({"LIVEDUB_TOPICS__PREFIX": prefix}, workdir / "logs-reject", profile="calibrated")
    with workers:
        _run(Feed(feed.chunks[:2], feed.frames, feed.frame_args), settings, realtime=False)  # warm-up
        clean = _run(feed, settings, realtime=True)
        t = threading.Thread(target=noise, daemon=True)
        t.start()
        beside = _run(feed, settings, realtime=True, sid=sid)
        t.join(60)
        letters = workers.metric_sum("livedub_dlq_records_total")
    admin_client(settings.kafka).delete_topics(topics.all())
    return {"malformed": n, "segments": segments,
            "valid_alone_s": clean["session_s"], "valid_beside_malformed_s": beside["session_s"],
            "e2e_p95_alone_s": clean["e2e_p95_s"], "e2e_p95_beside_s": beside["e2e_p95_s"],
            "segments_done": [clean["segments"], beside["segments"]], "dead_letters": letters,
            "slowdown": beside["session_s"] / clean["session_s"]}
