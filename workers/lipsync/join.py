"""Joins a live session's video frames with its dubbed speech, per target language.

Over Kafka, frames (media.video) and dubbed speech (dubbed.speech) arrive on two
co-partitioned topics, so one worker sees both for a session and joins them
locally. A speech segment is ready once frames up to its end have arrived (or
the video ended). Frames before a ready segment are passed through unchanged.
A frame is dropped from the buffer once every target language is past it; if
the buffer grows past `max_buffer_s` (long silence), its oldest frames are passed
through, which bounds memory.

Delivery over Kafka is at least once: a worker restarted before it committed replays
records. Frames and speech segments come in per-session order, so a frame whose `seq`
(or a segment whose `seq`, per language) is not past the last one accepted is a replay
and is dropped (`add_frame`/`add_speech` return False).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from workers.records import DubbedSpeech, VideoFrame


@dataclass
class Ready:
    """Output for one language: frames to pass through, then a segment with its frames."""

    lang: str
    passthrough: list[VideoFrame]
    speech: DubbedSpeech | None = None
    inside: list[VideoFrame] = field(default_factory=list)


class FrameJoiner:
    def __init__(self, session_id: str, langs: tuple[str, ...], max_buffer_s: float = 120.0) -> None:
        self.session_id = session_id
        self.langs = langs
        self.max_buffer_s = max_buffer_s
        self.frames: deque[VideoFrame] = deque()
        self.base = 0  # absolute index of frames[0]
        self.pos = dict.fromkeys(langs, 0)  # absolute index of each language's next frame
        self.pending: dict[str, deque[DubbedSpeech]] = {lang: deque() for lang in langs}
        self.latest_pts = float("-inf")
        self.video_ended = False
        self.last_frame_seq = -1
        self.last_speech_seq: dict[str, int] = {}
        self.duplicates = 0

    def add_frame(self, frame: VideoFrame) -> bool:
        """Buffer a frame; False (and nothing buffered) if it is a replay of one seen already."""
        if frame.seq <= self.last_frame_seq:
            self.duplicates += 1
            return False
        self.last_frame_seq = frame.seq
        self.frames.append(frame)
        self.latest_pts = max(self.latest_pts, frame.pts_s)
        return True

    def add_speech_lang(self, lang: str) -> None:
        """A language joins the session: it starts at the oldest frame still buffered."""
        if lang not in self.pending:
            self.langs = (*self.langs, lang)
            self.pending[lang] = deque()
            self.pos[lang] = self.base

    def add_speech(self, speech: DubbedSpeech) -> bool:
        """Queue a dubbed segment; False (and nothing queued) if it is a replay of one seen already."""
        if speech.seq <= self.last_speech_seq.get(speech.target_lang, -1):
            self.duplicates += 1
            return False
        self.last_speech_seq[speech.target_lang] = speech.seq
        self.add_speech_lang(speech.target_lang)
        self.pending[speech.target_lang].append(speech)
        return True

    def end_video(self) -> None:
        self.video_ended = True

    def _take(self, lang: str, t_s: float) -> list[VideoFrame]:
        out = []
        while self.pos[lang] - self.base < len(self.frames):
            f = self.frames[self.pos[lang] - self.base]
            if f.pts_s >= t_s:
                break
            out.append(f)
            self.pos[lang] += 1
        return out

    def ready(self) -> list[Ready]:
        """Everything that can be emitted now, in media order per language."""
        out: list[Ready] = []
        for lang in self.langs:
            q = self.pending[lang]
            while q and (self.video_ended or self.latest_pts >= q[0].end_s):
                sp = q.popleft()
                out.append(Ready(lang, self._take(lang, sp.start_s), sp, self._take(lang, sp.end_s)))
        overflow = self._overflow()
        if overflow is not None:
            for lang in self.langs:
                if not self.pending[lang]:
                    out.append(Ready(lang, self._take(lang, overflow)))
        self._trim()
        return out

    def finish(self, langs: tuple[str, ...] | None = None) -> list[Ready]:
        """End of session (for `langs`, default all): every remaining segment, then every remaining frame."""
        self.video_ended = True
        out = self.ready()
        out += [Ready(lang, self._take(lang, float("inf"))) for lang in (langs or self.langs)]
        self._trim()
        return out

    def remove_langs(self, langs: tuple[str, ...]) -> None:
        """Languages whose output is complete: frames are no longer kept for them."""
        for lang in langs:
            self.pending.pop(lang, None)
            self.pos.pop(lang, None)
        self.langs = tuple(lang for lang in self.langs if lang not in langs)

    def _overflow(self) -> float | None:
        if self.frames and self.latest_pts - self.frames[0].pts_s > self.max_buffer_s:
            return self.latest_pts - self.max_buffer_s
        return None

    def _trim(self) -> None:
        if not self.pos:  # no language known yet: keep frames, but not past the buffer bound
            while self.frames and self.latest_pts - self.frames[0].pts_s > self.max_buffer_s:
                self.frames.popleft()
                self.base += 1
            return
        keep_from = min(self.pos.values())
        while self.base < keep_from and self.frames:
            self.frames.popleft()
            self.base += 1

    @property
    def buffered(self) -> int:
        return len(self.frames)
