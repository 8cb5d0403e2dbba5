"""Stages over unbounded, multi-session record streams (what a Kafka worker sees).

A file run knows where a session ends; a stream does not, so every topic
carries an end-of-session marker: a record with `seq == -1` (for DubbedFrame,
`frame_seq == -1`). Each step below wraps one stage, turns a marker into the
next hop's marker (after flushing what the stage still holds) and keeps the
per-session state a stream needs. No Kafka here: the Faust agents in `streams/`
only decode, call `handle()` and send what it returns.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from workers.errors import BadInputError
from workers.lipsync.join import FrameJoiner, Ready
from workers.lipsync.stage import LipsyncJob, LipsyncStage
from workers.records import (
    AudioChunk,
    DubbedFrame,
    DubbedSpeech,
    Record,
    SessionControl,
    SpeechSegment,
    Transcript,
    Translation,
    VideoFrame,
    now,
)
from workers.segment.stage import SegmentStage
from workers.stage import Stage

log = logging.getLogger(__name__)

END = -1
MAX_EARLY_CHUNKS = 600  # audio buffered for a session whose start has not arrived yet (~60 s)


def is_end(record: Record) -> bool:
    if isinstance(record, DubbedFrame):
        return record.frame_seq == END
    return getattr(record, "seq", 0) == END


def audio_end(session_id: str, pts_s: float, sample_rate: int = 16000) -> AudioChunk:
    return AudioChunk(session_id, END, pts_s, sample_rate, b"")


def video_end(session_id: str, pts_s: float) -> VideoFrame:
    return VideoFrame(session_id, END, pts_s, 0, 0, "jpeg", b"")


class Step:
    """Default step: markers pass to the next hop, everything else goes through the stage."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    async def handle(self, record: Record) -> list[Record]:
        if is_end(record):
            return self.markers(record)
        return await self.stage.process(record)

    def markers(self, record: Record) -> list[Record]:
        raise NotImplementedError


class SegmentStep(Step):
    """Audio + session control -> segments; audio that beats its session's start waits for it."""

    stage: SegmentStage

    def __init__(self, stage: SegmentStage) -> None:
        super().__init__(stage)
        self.sessions: dict[str, SessionControl] = {}
        self.early: dict[str, deque[AudioChunk]] = {}

    async def handle(self, record: Record) -> list[Record]:
        if isinstance(record, SessionControl):
            if record.action != "start":
                return []
            self.sessions[record.session_id] = record
            self.stage.open_session(record)
            out: list[Record] = []
            for chunk in self.early.pop(record.session_id, ()):
                out += await self.handle(chunk)
            return out
        if not isinstance(record, AudioChunk):
            raise BadInputError(f"segment step got a {type(record).__name__}")
        ctl = self.sessions.get(record.session_id)
        if ctl is None:
            q = self.early.setdefault(record.session_id, deque(maxlen=MAX_EARLY_CHUNKS))
            q.append(record)
            return []
        if is_end(record):
            segs = await self.stage.flush(record.session_id)
            del self.sessions[record.session_id]
            marker = SpeechSegment(record.session_id, END, record.pts_s, record.pts_s, 16000, b"",
                                   "end_of_stream", ctl.target_langs, ctl.source_lang, now())
            return [*segs, marker]
        return await self.stage.process(record)


class AsrStep(Step):
    def markers(self, seg: SpeechSegment) -> list[Record]:
        self.stage.end_session(seg.session_id)
        return [Transcript(seg.session_id, END, seg.start_s, seg.end_s, "", seg.source_lang or "",
                           0.0, seg.target_langs, seg.speech_end_at)]


class TranslateStep(Step):
    def markers(self, tr: Transcript) -> list[Record]:
        return [Translation(tr.session_id, END, tr.start_s, tr.end_s, "", tr.language, lang, tr.speech_end_at)
                for lang in tr.target_langs]


class TtsStep(Step):
    def markers(self, tl: Translation) -> list[Record]:
        return [DubbedSpeech(tl.session_id, END, tl.start_s, tl.end_s, tl.target_lang, "", 16000, b"",
                             50.0, (), tl.speech_end_at)]


class LipsyncStep(Step):
    """Joins video frames with dubbed speech per session and language; emits every output frame.

    Frames outside dubbed spans are passed through as DubbedFrames with seq -2, so a
    subscriber gets one complete, ordered frame stream per language.
    """

    PASSTHROUGH = -2
    FINISHED_KEPT = 4096  # finished sessions remembered, so replayed end markers do not reopen them
    stage: LipsyncStage

    def __init__(self, stage: LipsyncStage, encoding: str = "jpeg") -> None:
        super().__init__(stage)
        self.encoding = encoding
        self.joiners: dict[str, FrameJoiner] = {}
        self.ended_langs: dict[str, set[str]] = {}
        self.finished: dict[str, None] = {}  # insertion-ordered set of recently finished sessions
        self.on_segment_done: list[Any] = []  # callbacks (speech) for e2e latency metrics
        self.duplicates = 0  # replayed records dropped (at-least-once delivery)

    def _joiner(self, session_id: str, langs: tuple[str, ...] = ()) -> FrameJoiner:
        if session_id not in self.joiners:
            self.joiners[session_id] = FrameJoiner(session_id, langs)
            self.ended_langs[session_id] = set()
        return self.joiners[session_id]

    async def handle(self, record: Record) -> list[Record]:
        sid = record.session_id
        if isinstance(record, SessionControl):
            if record.action == "start":
                self.finished.pop(sid, None)  # a new session under a reused id
                j = self._joiner(sid, record.target_langs)
                for lang in record.target_langs:
                    if lang not in j.pending:
                        j.add_speech_lang(lang)
            return []
        if not isinstance(record, VideoFrame | DubbedSpeech):
            raise BadInputError(f"lipsync step got a {type(record).__name__}")
        if sid in self.finished and (is_end(record) or isinstance(record, DubbedSpeech)):
            self.duplicates += 1  # replayed after the session's output was complete
            return []
        j = self._joiner(sid)
        if isinstance(record, VideoFrame):
            if is_end(record):
                j.end_video()
            elif not j.add_frame(record):
                self.duplicates += 1
                return []
        elif is_end(record):
            self.ended_langs[sid].add(record.target_lang)
            if record.target_lang not in j.pending:
                j.add_speech_lang(record.target_lang)
        elif not j.add_speech(record):
            self.duplicates += 1
            return []
        out = await self._emit(sid, j.ready())
        done = self.ended_langs[sid]
        if j.video_ended and done and all(not j.pending[lang] for lang in done):
            out += await self._emit(sid, j.finish(tuple(done)))
            out += [DubbedFrame(sid, END, END, float("inf"), lang, 0, 0, self.encoding, b"", True, now())
                    for lang in sorted(done)]
            for lang in done:
                j.pending.pop(lang, None)
                j.pos.pop(lang, None)
            j.langs = tuple(lang for lang in j.langs if lang not in done)
            done.clear()
            if not j.langs:
                del self.joiners[sid], self.ended_langs[sid]
                self.stage.end_session(sid)
                self.finished[sid] = None
                while len(self.finished) > self.FINISHED_KEPT:
                    del self.finished[next(iter(self.finished))]
        return out

    async def _emit(self, sid: str, ready: list[Ready]) -> list[Record]:
        out: list[Record] = []
        for r in ready:
            out += [self._passthrough(f, r.lang) for f in r.passthrough]
            if r.speech is not None:
                frames = await self.stage.process(LipsyncJob(r.speech, tuple(r.inside), self.encoding)) \
                    if r.inside else []
                out += frames
                for cb in self.on_segment_done:
                    cb(r.speech)
        return out

    def _passthrough(self, f: VideoFrame, lang: str) -> DubbedFrame:
        data = f.data
        if f.encoding != self.encoding:
            from workers.media.frames import decode_frame, encode_frame

            data = encode_frame(decode_frame(f), self.encoding)
        return DubbedFrame(f.session_id, self.PASSTHROUGH, f.seq, f.pts_s, lang, f.width, f.height,
                           self.encoding, data, False, 0.0)


STEPS: dict[str, type[Step]] = {
    "segment": SegmentStep,
    "asr": AsrStep,
    "translate": TranslateStep,
    "tts": TtsStep,
    "lipsync": LipsyncStep,
}
