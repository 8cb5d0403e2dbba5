"""`livedub publish`: stream a media file into Kafka as a live session would (real-time pace).

A plain confluent-kafka producer writing Confluent wire-format Avro: the same
thing any client of ours or not can do with the `.avsc` files and the registry.
Audio goes out as 16 kHz mono chunks, video as one JPEG per record (Kafka's
~1 MB record limit), both keyed by session id; each stream ends with a marker.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException, Producer

from streams.codecs import encode, load_schema
from streams.registry import SchemaRegistry
from streams.topics import Topics, client_config, record_key, topics_from_settings, value_subject
from workers.errors import BadInputError, TransportError
from workers.media.frames import decode_frame, encode_frame
from workers.media.reader import iter_audio, iter_video, probe
from workers.records import AudioChunk, Record, SessionControl, float_to_pcm, now
from workers.settings import Settings
from workers.streaming import audio_end, video_end

log = logging.getLogger(__name__)
RATE = 16000


def producer_config(settings: Settings) -> dict[str, Any]:
    """Low-latency producer settings; murmur2 so partitions match Java and Faust (aiokafka) clients."""
    return {
        **client_config(settings.kafka),
        "linger.ms": 0,
        "acks": 1,
        "partitioner": "murmur2_random",
        "message.max.bytes": 4_000_000,
        "enable.idempotence": False,
    }


class RecordProducer:
    """Sends Records as Confluent wire-format Avro, registering each topic's schema once."""

    def __init__(self, settings: Settings, topics: Topics | None = None) -> None:
        self.topics = topics or topics_from_settings(settings)
        self.registry = SchemaRegistry.from_settings(settings.schema_registry)
        self.producer = Producer(producer_config(settings))
        try:  # connect and learn partition leaders now, not on the session's first record
            self.producer.list_topics(timeout=10)
        except KafkaException as e:
            raise TransportError(f"cannot reach Kafka at {settings.kafka.bootstrap_servers}: {e}") from e
        self._ids: dict[str, int] = {}
        self.errors: list[str] = []

    def prepare(self, *schemas: str) -> None:
        """Register the topics' schemas now, so a live session's first records do not wait on the registry."""
        for schema in schemas:
            self._id(self.topics.topic_for(schema), schema)

    def _id(self, topic: str, schema: str) -> int:
        if topic not in self._ids:
            self._ids[topic] = self.registry.register(value_subject(topic), load_schema(schema))
        return self._ids[topic]

    def send(self, record: Record) -> None:
        topic = self.topics.topic_for(record.schema_name)
        value = encode(record.replace(produced_at=now()) if hasattr(record, "produced_at") else record,
                       self._id(topic, record.schema_name))
        while True:
            try:
                self.producer.produce(topic, key=record_key(record), value=value, on_delivery=self._delivered)
                break
            except BufferError:  # local queue full: wait for deliveries (backpressure)
                self.producer.poll(0.05)
        self.producer.poll(0)

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}: {err}")

    def flush(self, timeout: float = 30.0) -> None:
        left = self.producer.flush(timeout)
        if left or self.errors:
            raise TransportError(f"{left} records not delivered; errors: {'; '.join(self.errors[:5])}")

    def close(self) -> None:
        self.registry.close()


def _media(path: Path, session_id: str, chunk_s: float) -> Iterator[tuple[float, Record]]:
    """Audio chunks and JPEG frames merged in media order, keyed by when they become available."""
    def audio() -> Iterator[tuple[float, Record]]:
        for seq, (pts, samples) in enumerate(iter_audio(path, rate=RATE, chunk_s=chunk_s)):
            end = pts + len(samples) / RATE
            yield end, AudioChunk(session_id, seq, pts, RATE, float_to_pcm(samples))

    def video() -> Iterator[tuple[float, Record]]:
        for f in iter_video(path, session_id):
            img = decode_frame(f)
            yield f.pts_s, f.replace(encoding="jpeg", data=encode_frame(img, "jpeg"))

    info = probe(path)
    streams = [audio()] + ([video()] if info.has_video else [])
    yield from heapq.merge(*streams, key=lambda x: x[0])


def publish(path: Path, session_id: str, targets: list[str], settings: Settings, *,
            source_lang: str | None = None, pace: bool = True) -> dict[str, int]:
    """Publish one session; returns counts of what was sent."""
    info = probe(path)
    if not info.has_audio:
        raise BadInputError(f"{path} has no audio track: there is no speech to dub")
    rp = RecordProducer(settings)
    counts = {"audio": 0, "video": 0}
    try:
        rp.send(SessionControl(session_id, "start", tuple(targets), source_lang))
        if not info.has_video:
            rp.send(video_end(session_id, 0.0))
        t0 = time.monotonic()
        last = 0.0
        for at, rec in _media(path, session_id, settings.runner.audio_chunk_s):
            if pace and (wait := t0 + at - time.monotonic()) > 0:
                time.sleep(wait)
            now_wall = now()
            if isinstance(rec, AudioChunk):
                rec = rec.replace(captured_at=now_wall)
                counts["audio"] += 1
            else:
                counts["video"] += 1
            rp.send(rec)
            last = max(last, at)
        rp.send(audio_end(session_id, last))
        if info.has_video:
            rp.send(video_end(session_id, last))
        rp.send(SessionControl(session_id, "stop", tuple(targets), source_lang))
        rp.flush()
    except KafkaException as e:
        raise TransportError(f"publishing {session_id}: {e}") from e
    finally:
        rp.close()
    return counts
