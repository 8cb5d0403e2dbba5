"""The live ends of an in-process run: a participant's audio as it arrives, their frames for the
lip-sync step, and a sink that hands the dub to the playout.

They let the same `Runner` that dubs a file dub a call: the runner pulls audio chunks from
`AudioFeed`, asks `FrameFeed` for each segment's frames (waiting until the camera has
delivered them) and writes outputs into `PlayoutSink`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator

import numpy as np

from workers.live.playout import RATE, Playout
from workers.pipeline import FrameSource, Sink
from workers.records import AudioChunk, DubbedFrame, DubbedSpeech, VideoFrame, float_to_pcm, now

log = logging.getLogger(__name__)

FRAME_WAIT_S = 2.0  # longest a segment waits for camera frames it needs (a frozen or dropped camera)


class AudioChunker:
    """A participant's audio, arriving in 10 ms frames, as `AudioChunk`s of `chunk_s` on their clock."""

    def __init__(self, session_id: str, chunk_s: float) -> None:
        self.session_id = session_id
        self.chunk = round(chunk_s * RATE)
        self._buf = np.zeros(0, np.float32)
        self._pts = 0.0
        self._seq = 0

    def put(self, pts_s: float, samples: np.ndarray, captured_at: float) -> list[AudioChunk]:
        """Audio that starts at `pts_s` (contiguous with what came before); the chunks it completes."""
        if not len(self._buf):
            self._pts = pts_s
        self._buf = np.concatenate([self._buf, samples])
        out = []
        while len(self._buf) >= self.chunk:
            part, self._buf = self._buf[: self.chunk], self._buf[self.chunk:]
            out.append(AudioChunk(self.session_id, self._seq, self._pts, RATE, float_to_pcm(part),
                                  captured_at=captured_at))
            self._seq += 1
            self._pts += len(part) / RATE
        return out


class AudioFeed:
    """The chunks as the async iterator the runner reads its audio from."""

    def __init__(self, session_id: str, chunk_s: float) -> None:
        self.chunker = AudioChunker(session_id, chunk_s)
        self._q: asyncio.Queue[AudioChunk | None] = asyncio.Queue()

    def put(self, pts_s: float, samples: np.ndarray, captured_at: float) -> None:
        for chunk in self.chunker.put(pts_s, samples, captured_at):
            self._q.put_nowait(chunk)

    def end(self) -> None:
        self._q.put_nowait(None)

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        while (chunk := await self._q.get()) is not None:
            yield chunk


class FrameFeed:
    """A participant's camera frames, read by the lip-sync step of each language at its own pace.

    Thread-safe: frames are added on the event loop and read from the runner's executor threads,
    where `until()` may wait for frames the camera has not delivered yet (they come in real time;
    a segment is cut only after its end). Frames every reader has passed are dropped.
    """

    def __init__(self, langs: tuple[str, ...]) -> None:
        self._frames: deque[VideoFrame] = deque()
        self._first = 0  # index of _frames[0] among all frames added
        self._cursor = dict.fromkeys(langs, 0)
        self._cond = threading.Condition()
        self.has_video = False
        self.ended = False

    def add(self, frame: VideoFrame) -> None:
        with self._cond:
            self.has_video = True
            self._frames.append(frame)
            self._cond.notify_all()

    def end(self) -> None:
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    @property
    def buffered(self) -> int:
        """Frames held (some language's lip sync has not read them yet): memory is bounded by this."""
        with self._cond:
            return len(self._frames)

    def until(self, lang: str, t_s: float) -> list[VideoFrame]:
        deadline = time.monotonic() + FRAME_WAIT_S
        with self._cond:
            while (self.has_video and not self.ended and (not self._frames or self._frames[-1].pts_s < t_s)
                   and (left := deadline - time.monotonic()) > 0):
                self._cond.wait(left)
            out = []
            i = self._cursor[lang] - self._first
            while i < len(self._frames) and self._frames[i].pts_s < t_s:
                out.append(self._frames[i])
                i += 1
            self._cursor[lang] = self._first + i
            while self._frames and self._first < min(self._cursor.values()):
                self._frames.popleft()
                self._first += 1
            return out

    def source(self, lang: str) -> FrameSource:
        return _LangFrames(self, lang)


class _LangFrames(FrameSource):
    def __init__(self, feed: FrameFeed, lang: str) -> None:
        self.feed, self.lang = feed, lang

    def until(self, t_s: float) -> Iterator[VideoFrame]:
        return iter(self.feed.until(self.lang, t_s))

    def rest(self) -> Iterator[VideoFrame]:
        return iter(())  # the playout shows the original anyway; nothing to flush


class PlayoutSink(Sink):
    """One language's dub into the participant's playout (the original is the playout's own copy)."""

    def __init__(self, playout: Playout, lang: str) -> None:
        self.playout, self.lang = playout, lang

    def speech(self, speech: DubbedSpeech) -> None:
        at = now()
        on_time = self.playout.add_speech(self.lang, speech, at)
        if self.playout.t0 is not None:
            log.info("%s %s seq %d [%.2f-%.2f s] ready %.2f s after its start was spoken (D %.2f s): %s",
                     speech.session_id, self.lang, speech.seq, speech.start_s, speech.end_s,
                     at - self.playout.t0 - speech.start_s, self.playout.delay_s, "on time" if on_time else "LATE")

    def frames(self, frames: list[VideoFrame | DubbedFrame]) -> None:
        if frames:
            self.playout.add_frames(self.lang, frames, now())

    def close(self) -> None:
        """Nothing to finish: playout goes on until it has played what it holds."""
