"""The call bot over Kafka (`livedub call --transport kafka`): one of the producers of meeting media.

Each participant's session goes to the five workers as `livedub publish` sends a file: a start
control, 48 kHz audio chunks, one JPEG per camera frame, end markers and a stop control, keyed
by session id. One consumer thread reads `dubbed.speech` and `dubbed.video` (every partition, from
the end: only sessions this bot starts) and hands each record to its session's sinks; the
playout does the rest, exactly as with the embedded transport.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

import numpy as np
from confluent_kafka import OFFSET_END, Consumer, KafkaError, TopicPartition

from streams.app import group_id
from streams.codecs import decode
from streams.publish import RecordProducer
from streams.registry import SchemaRegistry
from streams.topics import client_config, topics_from_settings
from workers.errors import TransportError
from workers.live.dubbing import Dubbing, DubbingSession
from workers.live.feeds import AudioChunker
from workers.live.playout import RATE
from workers.media.frames import decode_frame, encode_frame
from workers.pipeline import Sink
from workers.records import DubbedFrame, DubbedSpeech, SessionControl, VideoFrame
from workers.settings import Settings
from workers.streaming import audio_end, is_end, video_end

log = logging.getLogger(__name__)
DONE_WAIT_S = 60.0  # longest a session waits for the workers' end markers after its media ended


class KafkaDubbing(Dubbing):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = topics_from_settings(settings)
        self.sessions: dict[str, _KafkaSession] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.producer: RecordProducer | None = None

    def load(self) -> None:
        """Connect, register the schemas, and start reading the dubbed topics from their ends."""
        self.producer = RecordProducer(self.settings, self.topics)
        self.producer.prepare("SessionControl", "AudioChunk", "VideoFrame")
        self.registry = SchemaRegistry.from_settings(self.settings.schema_registry)
        self.consumer = Consumer({
            **client_config(self.settings.kafka),
            "group.id": f"{group_id('call', self.topics.prefix)}-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        })
        self.consumer.assign([TopicPartition(t, p, OFFSET_END) for t in (self.topics.dubbed_speech,
                                                                           self.topics.dubbed_video)
                              for p in range(self.topics.partitions)])
        self._thread = threading.Thread(target=self._consume, name="call-consumer", daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        while not self._stop.is_set():
            msg = self.consumer.poll(0.1)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consuming %s: %s", msg.topic(), msg.error())
                continue
            session = self.sessions.get((msg.key() or b"").decode())
            if session is None:
                continue
            try:
                session.deliver(decode(msg.value(), self.registry))
            except Exception:  # a bad record must not stop the other sessions' dubs
                log.exception("session %s: record on %s not taken", session.control.session_id, msg.topic())

    def open(self, control: SessionControl, sinks: dict[str, Sink]) -> DubbingSession:
        if self.producer is None:
            raise TransportError("KafkaDubbing.open before load()")
        session = _KafkaSession(self, control, sinks, asyncio.get_running_loop())
        self.sessions[control.session_id] = session
        return session

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self.consumer.close()
            self.registry.close()
        if self.producer is not None:
            self.producer.flush(10)
            self.producer.close()


class _KafkaSession(DubbingSession):
    def __init__(self, owner: KafkaDubbing, control: SessionControl, sinks: dict[str, Sink],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.owner, self.control, self.sinks, self.loop = owner, control, sinks, loop
        self.send = owner.producer.send
        self.chunks = AudioChunker(control.session_id, owner.settings.runner.audio_chunk_s)
        self.last_pts = 0.0
        self.frame_seq = 0
        self.ended: set[tuple[str, str]] = set()  # (kind, lang) whose end marker came
        self.finished = asyncio.Event()
        self.send(control)

    def audio(self, pts_s: float, samples: np.ndarray, captured_at: float) -> None:
        for chunk in self.chunks.put(pts_s, samples, captured_at):
            self.send(chunk)
            self.last_pts = chunk.pts_s + chunk.duration_s

    def frame(self, frame: VideoFrame) -> None:
        data = encode_frame(decode_frame(frame), "jpeg")  # Kafka's record limit: JPEG on the wire
        self.send(frame.replace(seq=self.frame_seq, encoding="jpeg", data=data))
        self.frame_seq += 1

    def end(self) -> None:
        sid = self.control.session_id
        self.send(audio_end(sid, self.last_pts, RATE))
        self.send(video_end(sid, self.last_pts))
        self.send(SessionControl(sid, "stop", self.control.target_langs, self.control.source_lang))

    def deliver(self, rec: object) -> None:
        """A record of this session from the dubbed topics (consumer thread)."""
        if isinstance(rec, DubbedSpeech):
            if is_end(rec):
                self._ended("speech", rec.target_lang)
            elif rec.target_lang in self.sinks:
                self.sinks[rec.target_lang].speech(rec)
        elif isinstance(rec, DubbedFrame):
            if is_end(rec):
                self._ended("video", rec.target_lang)
            elif rec.target_lang in self.sinks:
                self.sinks[rec.target_lang].frames([rec])

    def _ended(self, kind: str, lang: str) -> None:
        self.ended.add((kind, lang))
        if len(self.ended) == 2 * len(self.sinks):
            self.loop.call_soon_threadsafe(self.finished.set)

    async def done(self) -> None:
        try:
            await asyncio.wait_for(self.finished.wait(), DONE_WAIT_S)
        except TimeoutError:
            log.warning("session %s: the workers' outputs did not all end within %.0f s of its media",
                        self.control.session_id, DONE_WAIT_S)
        finally:
            self.owner.sessions.pop(self.control.session_id, None)
