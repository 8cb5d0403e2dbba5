"""`livedub subscribe`: assemble one session's dubbed output for one language from Kafka.

Reads the session's partition (murmur2 of the key, as producers place it) of
three topics: the source audio (kept outside dubbed spans, ducked under the dub
inside them), the dubbed speech and the dubbed video frames (passed-through and
re-animated, one ordered stream per language). Writes through the same FileSink
as `livedub dub`, so the mix (`LIVEDUB_OUTPUT__*`) is the same. With subtitles it
also reads the transcripts topic (the source text; the translation is each dubbed
speech's text) and writes the same SRT / WebVTT files as `livedub dub --subtitles`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from aiokafka.partitioner import murmur2
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from streams.app import group_id
from streams.codecs import decode
from streams.registry import SchemaRegistry
from streams.topics import client_config, topics_from_settings
from workers.errors import TransportError
from workers.media.files import FileSink
from workers.media.reader import MediaInfo
from workers.records import AudioChunk, DubbedFrame, DubbedSpeech, Record, Transcript
from workers.settings import OutputSettings, Settings
from workers.streaming import END, is_end

log = logging.getLogger(__name__)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java, aiokafka, librdkafka murmur2) gives `key`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class _Buffered:
    """Source audio received so far, consumed by FileSink as it needs it."""

    def __init__(self) -> None:
        self.q: deque[tuple[float, np.ndarray]] = deque()
        self.until_s = 0.0

    def add(self, chunk: AudioChunk) -> None:
        self.q.append((chunk.pts_s, chunk.samples()))
        self.until_s = chunk.pts_s + chunk.duration_s

    def __iter__(self) -> _Buffered:
        return self

    def __next__(self) -> tuple[float, np.ndarray]:
        if not self.q:
            raise StopIteration
        return self.q.popleft()


@dataclass
class Assembly:
    session_id: str
    lang: str
    out: Path
    rate: int = 16000
    output: OutputSettings = field(default_factory=OutputSettings)  # how the dub is mixed over the source
    subtitles: bool = False  # also take transcripts and write the SRT / WebVTT files
    audio: _Buffered = field(default_factory=_Buffered)
    speeches: deque[DubbedSpeech] = field(default_factory=deque)
    transcripts: deque[Transcript] = field(default_factory=deque)
    frames: list[DubbedFrame] = field(default_factory=list)
    sink: FileSink | None = None
    audio_ended: bool = False
    speech_ended: bool = False
    video_ended: bool = False
    transcripts_ended: bool = False
    segments: int = 0
    frames_written: int = 0
    duplicates: int = 0  # replayed records dropped (at-least-once delivery upstream)
    last_audio_seq: int = -1
    last_speech_seq: int = -1
    last_frame_seq: int = -1
    last_transcript_seq: int = -1

    def add(self, rec: Record) -> None:
        """Take one record of this session; replays (seq not past the last one taken) are dropped.

        Each of the streams is ordered per session, and output frames carry their source
        frame's seq (`frame_seq`) whether dubbed or passed through, so (seq, frame_seq) never
        repeats and never goes back: anything at or before the last one taken is a duplicate.
        Transcripts (one per segment for every language) are taken only with `subtitles`.
        """
        if isinstance(rec, AudioChunk):
            if is_end(rec):
                self.audio_ended = True
            elif rec.seq > self.last_audio_seq:
                self.last_audio_seq = rec.seq
                self.audio.add(rec)
            else:
                self.duplicates += 1
        elif isinstance(rec, DubbedSpeech) and rec.target_lang == self.lang:
            if is_end(rec):
                self.speech_ended = True
            elif rec.seq > self.last_speech_seq:
                self.last_speech_seq = rec.seq
                self.speeches.append(rec)
            else:
                self.duplicates += 1
        elif isinstance(rec, DubbedFrame) and rec.target_lang == self.lang:
            if rec.frame_seq == END:
                self.video_ended = True
            elif rec.frame_seq > self.last_frame_seq:
                self.last_frame_seq = rec.frame_seq
                self.frames.append(rec)
            else:
                self.duplicates += 1
        elif isinstance(rec, Transcript) and self.subtitles and (is_end(rec) or self.lang in rec.target_langs):
            if is_end(rec):
                self.transcripts_ended = True
            elif rec.seq > self.last_transcript_seq:
                self.last_transcript_seq = rec.seq
                self.transcripts.append(rec)
            else:
                self.duplicates += 1

    def _open(self, has_video: bool) -> None:
        w = h = None
        fps = None
        if has_video:
            w, h = self.frames[0].width, self.frames[0].height
            if len(self.frames) > 1 and self.frames[1].pts_s > self.frames[0].pts_s:
                fps = 1.0 / (self.frames[1].pts_s - self.frames[0].pts_s)
        info = MediaInfo(self.out, None, True, has_video, fps, w, h, self.rate, 1, None, None,
                         Fraction(1, 90000) if has_video else None)
        self.sink = FileSink(self.out, info, original=self.audio, rate=self.rate, output=self.output,
                             subtitles=self.subtitles)

    def step(self) -> bool:
        """Write what can be written; True once the output is complete."""
        if self.sink is None:
            if len(self.frames) >= 2 or (self.frames and self.video_ended):
                self._open(True)
            elif self.video_ended and not self.frames:
                self._open(False)
            else:
                return False
        while self.transcripts:
            self.sink.transcript(self.transcripts.popleft())
        if self.frames:
            self.sink.frames(self.frames)
            self.frames_written += len(self.frames)
            self.frames = []
        while self.speeches and (self.audio_ended or self.audio.until_s >= self.speeches[0].end_s):
            self.sink.speech(self.speeches.popleft())
            self.segments += 1
        if (self.audio_ended and self.speech_ended and self.video_ended and not self.speeches
                and (self.transcripts_ended or not self.subtitles)):
            self.sink.close()
            return True
        return False


def subscribe(
    session_id: str, lang: str, out: Path, settings: Settings, *, timeout_s: float = 600.0, subtitles: bool = False,
) -> Assembly:
    """Block until the session's output for `lang` is complete (or `timeout_s` of silence).

    With `subtitles`, the transcripts topic is read too and the SRT / WebVTT files are written beside `out`.
    """
    topics = topics_from_settings(settings)
    registry = SchemaRegistry.from_settings(settings.schema_registry)
    part = partition_for(session_id.encode(), topics.partitions)
    consumer = Consumer({
        **client_config(settings.kafka),
        "group.id": f"{group_id('subscribe', topics.prefix)}-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 10,
    })
    names = [topics.media_audio, topics.dubbed_speech, topics.dubbed_video]
    if subtitles:
        names.append(topics.transcripts)  # the source text; the translation travels with the speech
    consumer.assign([TopicPartition(t, part, OFFSET_BEGINNING) for t in names])
    a = Assembly(session_id, lang, out, output=settings.output, subtitles=subtitles)
    idle_since = time.monotonic()
    try:
        while True:
            msg = consumer.poll(0.2)
            if msg is None:
                if time.monotonic() - idle_since > timeout_s:
                    raise TransportError(f"no data for session {session_id} in {timeout_s:.0f} s")
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise TransportError(f"consuming {msg.topic()}: {msg.error()}")
            if msg.key() != session_id.encode():
                continue
            idle_since = time.monotonic()
            a.add(decode(msg.value(), registry))
            if a.step():
                return a
    except BaseException:
        if a.sink is not None:
            a.sink.abort()
        raise
    finally:
        consumer.close()
        registry.close()
