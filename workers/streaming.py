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
from collections.abc import Hashable
from typing import Any

from workers.errors import BadInputError, LiveDubError
from workers.lipsync.join import FrameJoiner, Ready
from workers.lipsync.stage import LipsyncJob, LipsyncStage
from workers.media.frames import decode_frame, encode_frame
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
SESSION_IDLE_S = 60.0  # a session with no record for this long (stream time) is ended by expire()


def record_time(record: Record, default: float | None = None) -> float:
    """When a record was produced (wall clock): the stream time that session expiry runs on.

    Records without a time of their own get `default`, else now."""
    return getattr(record, "produced_at", None) or getattr(record, "at", None) or (default or now())


def is_end(record: Record) -> bool:
    if isinstance(record, DubbedFrame):
        return record.frame_seq == END
    return getattr(record, "seq", 0) == END


def control_of(record: Record) -> SessionControl:
    """What a record says about its session, for a stage that never sees the control record."""
    langs = getattr(record, "target_langs", None)
    if langs is None:
        lang = getattr(record, "target_lang", None)
        langs = (lang,) if lang else ()
    return SessionControl(record.session_id, "start", tuple(langs), getattr(record, "source_lang", None) or None)


def audio_end(session_id: str, pts_s: float, sample_rate: int = 16000) -> AudioChunk:
    return AudioChunk(session_id, END, pts_s, sample_rate, b"")


def video_end(session_id: str, pts_s: float) -> VideoFrame:
    return VideoFrame(session_id, END, pts_s, 0, 0, "jpeg", b"")


class Step:
    """Default step: markers pass to the next hop, everything else goes through the stage.

    Retention (what makes a restart lossless): a step that keeps state built from its inputs
    (an open session, buffered audio, frames waiting for their dubbed speech) says so. After
    `handle(record)`, `retained()` is a key for that record if the step still needs it, else
    None; `released()` hands back the keys of records it no longer needs. The Kafka agent acks
    (and so lets Kafka commit) an input only once it is not, or no longer, retained; after a
    crash or restart the uncommitted inputs are consumed again by a fresh step, which rebuilds
    the same state. Outputs sent again that way carry the seq they had the first time, so the
    next steps and the subscriber drop them as replays. Stateless steps retain nothing.
    """

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self._key: Hashable | None = None
        self._released: list[Hashable] = []
        self.open: set[str] = set()  # sessions opened on the stage and not ended yet

    async def handle(self, record: Record) -> list[Record]:
        """A session opens on the stage with its first record and ends with its end marker, after
        the stage has flushed what it still held for it."""
        sid = record.session_id
        if is_end(record):
            out = await self.stage.flush(sid) if sid in self.open else []
            self.open.discard(sid)
            self.stage.end_session(sid)
            return [*out, *self.markers(record)]
        if sid not in self.open:
            self.stage.open_session(control_of(record))
            self.open.add(sid)
        return await self.stage.process(record)

    def markers(self, record: Record) -> list[Record]:
        """The next hop's end marker (by default the marker itself: input and output of one type)."""
        return [record]

    def output_streams(self, record: Record) -> list[str] | None:
        """The (per-session) output streams one input feeds: "" or its target languages; None for a
        stateful step, which replays its inputs to rebuild its state (its outputs are deduplicated
        instead). The Kafka edge skips an input whose every output stream already has its seq."""
        return None

    def retained(self) -> Hashable | None:
        """Key of the record just handled if this step still needs it (to be released later)."""
        key, self._key = self._key, None
        return key

    def released(self) -> list[Hashable]:
        """Keys of earlier retained records this step no longer needs (each returned once)."""
        out, self._released = self._released, []
        return out

    async def expire(self, clock: float, idle_s: float = SESSION_IDLE_S) -> list[Record]:
        """End sessions whose last record is older than `clock - idle_s` (a publisher that died
        without end markers), releasing what they retained; returns what ending them emits.
        `clock` is stream time: the newest record time seen, or the wall clock when caught up."""
        return []


class SegmentStep(Step):
    """Audio + session control -> segments; audio that beats its session's start waits for it."""

    stage: SegmentStage

    def __init__(self, stage: SegmentStage) -> None:
        super().__init__(stage)
        self.sessions: dict[str, SessionControl] = {}
        self.early: dict[str, deque[AudioChunk]] = {}
        self.last_seq: dict[str, int] = {}  # last audio chunk taken per open session
        self.held: dict[str, list[Hashable]] = {}  # retained keys per session
        self.last_at: dict[str, float] = {}  # newest record time per session (for expire)
        self.end_pts: dict[str, float] = {}  # media time the session's audio has reached
        self.duplicates = 0

    # An open session retains its start and every audio chunk until its end marker: the segmenter's
    # state (VAD, the segment being cut, segment numbering) is rebuilt only by replaying the session
    # from its start, which then cuts exactly the same segments with the same seq.

    def _hold(self, sid: str, key: Hashable) -> None:
        self.held.setdefault(sid, []).append(key)
        self._key = key

    def _release(self, sid: str) -> None:
        self._released += self.held.pop(sid, [])

    async def expire(self, clock: float, idle_s: float = SESSION_IDLE_S) -> list[Record]:
        out: list[Record] = []
        for sid in [s for s, at in self.last_at.items() if at < clock - idle_s]:
            if sid not in self.sessions:  # its start never came (committed before a replay): nothing to cut
                log.warning("segment: audio of session %s waited %.0f s for its start: dropped", sid,
                            clock - self.last_at[sid])
                self.early.pop(sid, None)
                self._release(sid)
                self.last_at.pop(sid, None)
                self.end_pts.pop(sid, None)
                continue
            log.warning("segment: session %s idle for %.0f s: ending it", sid, clock - self.last_at[sid])
            out += await self.handle(audio_end(sid, self.end_pts.get(sid, 0.0)))
        return out

    async def handle(self, record: Record) -> list[Record]:
        self._key = None
        out = await self._handle(record)
        sid = record.session_id
        if sid in self.sessions or sid in self.early:
            self.last_at[sid] = max(self.last_at.get(sid, 0.0), record_time(record))
        else:
            self.last_at.pop(sid, None)
            self.end_pts.pop(sid, None)
        return out

    async def _handle(self, record: Record) -> list[Record]:
        sid = record.session_id
        if isinstance(record, SessionControl):
            if record.action != "start" or sid in self.sessions:  # a stop, or a start replayed
                return []
            self.sessions[sid] = record
            self.stage.open_session(record)
            self._hold(sid, ("start", sid))
            out: list[Record] = []
            for chunk in self.early.pop(sid, ()):  # the end marker too: a replayed backlog may hold it all
                if is_end(chunk):
                    return [*out, *await self._end(chunk, record)]
                out += await self._audio(chunk)
            return out
        if not isinstance(record, AudioChunk):
            raise BadInputError(f"segment step got a {type(record).__name__}")
        ctl = self.sessions.get(sid)
        if ctl is None:  # Kafka orders a partition, not one topic against another: wait for the start
            q = self.early.setdefault(sid, deque(maxlen=MAX_EARLY_CHUNKS))
            q.append(record)
            self._hold(sid, ("audio", sid, record.seq))
            return []
        if is_end(record):
            return await self._end(record, ctl)
        if self._replayed(record):
            return []
        self._hold(sid, ("audio", sid, record.seq))
        return await self._audio(record)

    async def _end(self, record: AudioChunk, ctl: SessionControl) -> list[Record]:
        """The session's last segments and its end marker; everything it retained is released."""
        sid = record.session_id
        segs = await self.stage.flush(sid)
        self.stage.end_session(sid)
        del self.sessions[sid]
        self.last_seq.pop(sid, None)
        self._release(sid)
        marker = SpeechSegment(sid, END, record.pts_s, record.pts_s, 16000, b"",
                               "end_of_stream", ctl.target_langs, ctl.source_lang, now())
        return [*segs, marker]

    def _replayed(self, chunk: AudioChunk) -> bool:
        """A chunk the segmenter has already taken (at-least-once delivery)."""
        if chunk.seq <= self.last_seq.get(chunk.session_id, -1):
            self.duplicates += 1
            return True
        return False

    async def _audio(self, chunk: AudioChunk) -> list[Record]:
        if self._replayed(chunk):  # early chunks reach here without the check in _handle
            return []
        self.last_seq[chunk.session_id] = chunk.seq
        self.end_pts[chunk.session_id] = chunk.pts_s + chunk.duration_s
        return await self.stage.process(chunk)


class AsrStep(Step):
    def output_streams(self, record: Record) -> list[str] | None:
        return [""]

    def markers(self, seg: SpeechSegment) -> list[Record]:
        return [Transcript(seg.session_id, END, seg.start_s, seg.end_s, "", seg.source_lang or "",
                           0.0, seg.target_langs, seg.speech_end_at)]


class TranslateStep(Step):
    def output_streams(self, record: Record) -> list[str] | None:
        return list(record.target_langs)

    def markers(self, tr: Transcript) -> list[Record]:
        return [Translation(tr.session_id, END, tr.start_s, tr.end_s, "", tr.language, lang, tr.speech_end_at)
                for lang in tr.target_langs]


class TtsStep(Step):
    def output_streams(self, record: Record) -> list[str] | None:
        return [record.target_lang]

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
        # Retained per session: frames while buffered in the joiner (seq, key), dubbed speech while
        # pending (lang, seq, key), and the start and end markers until the session is finished.
        self.held_frames: dict[str, deque[tuple[int, Hashable]]] = {}
        self.held_speech: dict[str, list[tuple[str, int, Hashable]]] = {}
        self.held_other: dict[str, list[Hashable]] = {}
        self.last_at: dict[str, float] = {}  # newest record time per open session (for expire)

    def _joiner(self, session_id: str, langs: tuple[str, ...] = ()) -> FrameJoiner:
        if session_id not in self.joiners:
            self.joiners[session_id] = FrameJoiner(session_id, langs)
            self.ended_langs[session_id] = set()
        return self.joiners[session_id]

    async def handle(self, record: Record) -> list[Record]:
        self._key = None
        out = await self._handle(record)
        sid = record.session_id
        if sid in self.joiners:
            self.last_at[sid] = max(self.last_at.get(sid, 0.0), record_time(record))
        self._settle(sid)
        return out

    async def expire(self, clock: float, idle_s: float = SESSION_IDLE_S) -> list[Record]:
        out: list[Record] = []
        for sid in [s for s, at in self.last_at.items() if at < clock - idle_s]:
            j = self.joiners.get(sid)
            if j is not None:
                log.warning("lipsync: session %s idle for %.0f s: ending it", sid, clock - self.last_at[sid])
                self.ended_langs[sid].update(j.langs)
                j.end_video()
                try:
                    out += await self._emit(sid, j.ready())
                    out += await self._finish_langs(sid, j)
                except LiveDubError as e:  # one bad session never stops the timer (or the others)
                    log.warning("lipsync: session %s could not be finished on expiry (%s): dropped", sid, e)
                if sid in self.joiners:  # no language ever known (or it failed): nothing to emit
                    self._drop(sid)
            self.last_at.pop(sid, None)
            self._settle(sid)
        return out

    def _hold_other(self, sid: str, key: Hashable) -> None:
        self.held_other.setdefault(sid, []).append(key)
        self._key = key

    def _settle(self, sid: str) -> None:
        """Release what the joiner of `sid` no longer buffers (everything once the session is done)."""
        j = self.joiners.get(sid)
        if j is None:
            self._released += [k for _, k in self.held_frames.pop(sid, ())]
            self._released += [k for *_, k in self.held_speech.pop(sid, ())]
            self._released += self.held_other.pop(sid, [])
            return
        frames = self.held_frames.get(sid)
        oldest = j.frames[0].seq if j.frames else None
        while frames and (oldest is None or frames[0][0] < oldest):
            self._released.append(frames.popleft()[1])
        speech = self.held_speech.get(sid)
        if speech:
            pending = {(lang, sp.seq) for lang, q in j.pending.items() for sp in q}
            self._released += [k for lang, seq, k in speech if (lang, seq) not in pending]
            speech[:] = [x for x in speech if (x[0], x[1]) in pending]

    async def _handle(self, record: Record) -> list[Record]:
        sid = record.session_id
        if isinstance(record, SessionControl):
            if record.action == "start":
                self.finished.pop(sid, None)  # a new session under a reused id
                if sid not in self.joiners:
                    self.stage.open_session(record)
                j = self._joiner(sid, record.target_langs)
                for lang in record.target_langs:
                    if lang not in j.pending:
                        j.add_speech_lang(lang)
                self._hold_other(sid, ("start", sid, len(self.held_other.get(sid, ()))))
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
                self._hold_other(sid, ("video-end", sid, len(self.held_other.get(sid, ()))))
            elif not j.add_frame(record):
                self.duplicates += 1
                return []
            else:
                self._key = ("frame", sid, record.seq)
                self.held_frames.setdefault(sid, deque()).append((record.seq, self._key))
        elif is_end(record):
            self.ended_langs[sid].add(record.target_lang)
            if record.target_lang not in j.pending:
                j.add_speech_lang(record.target_lang)
            self._hold_other(sid, ("speech-end", sid, record.target_lang, len(self.held_other.get(sid, ()))))
        elif not j.add_speech(record):
            self.duplicates += 1
            return []
        else:
            self._key = ("speech", sid, record.target_lang, record.seq)
            self.held_speech.setdefault(sid, []).append((record.target_lang, record.seq, self._key))
        out = await self._emit(sid, j.ready())
        return out + await self._finish_langs(sid, j)

    async def _finish_langs(self, sid: str, j: FrameJoiner) -> list[Record]:
        """Finish every language whose speech ended (all of them, once the video ended too)."""
        out: list[Record] = []
        done = self.ended_langs[sid]
        if j.video_ended and done and all(not j.pending[lang] for lang in done):
            out += await self._emit(sid, j.finish(tuple(done)))
            out += [DubbedFrame(sid, END, END, float("inf"), lang, 0, 0, self.encoding, b"", True, now())
                    for lang in sorted(done)]
            j.remove_langs(tuple(done))
            done.clear()
            if not j.langs:
                self._drop(sid)
        return out

    def _drop(self, sid: str) -> None:
        del self.joiners[sid], self.ended_langs[sid]
        self.last_at.pop(sid, None)
        self.stage.end_session(sid)
        self.finished[sid] = None
        while len(self.finished) > self.FINISHED_KEPT:
            del self.finished[next(iter(self.finished))]

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
        data = f.data if f.encoding == self.encoding else encode_frame(decode_frame(f), self.encoding)
        return DubbedFrame(f.session_id, self.PASSTHROUGH, f.seq, f.pts_s, lang, f.width, f.height,
                           self.encoding, data, False, 0.0)
