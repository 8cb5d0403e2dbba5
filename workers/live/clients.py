"""Participants of a call that are programs: one plays media into a room as a camera and microphone
would, one records the tracks it is told to. The live benchmark and the tests use them; they are
also how to try the bot without a person in the room."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from workers.errors import ConfigError
from workers.media.reader import iter_audio, iter_video

RATE = 48000
STEP = RATE // 100


@dataclass
class Media:
    """What a participant sends: mono audio at RATE and BGR frames at `fps`, from time 0."""

    audio: np.ndarray
    frames: list[np.ndarray]
    fps: float

    @classmethod
    def from_file(cls, path: Path, fps: float = 25.0) -> Media:
        audio = np.concatenate([s for _, s in iter_audio(path, rate=RATE, chunk_s=0.5)])
        frames = [np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 3) for f in iter_video(path, "media")]
        return cls(audio, frames, fps)


async def publish(room, media: Media, *, on_frame: Callable[[int, float], None] | None = None,
                  settle_s: float = 1.0) -> float:
    """Publish a microphone and (unless `media` has no frames) a camera track and play `media` into
    them in real time.

    Returns the wall time of media time 0. `on_frame(index, wall)` is told when each frame is sent.
    """
    from livekit import rtc

    mic = rtc.AudioSource(RATE, 1, queue_size_ms=100)
    tracks = [(rtc.LocalAudioTrack.create_audio_track("mic", mic), rtc.TrackSource.SOURCE_MICROPHONE)]
    if media.frames:
        h, w = media.frames[0].shape[:2]
        cam = rtc.VideoSource(w, h)
        tracks.append((rtc.LocalVideoTrack.create_video_track("cam", cam), rtc.TrackSource.SOURCE_CAMERA))
    for track, source in tracks:
        opts = rtc.TrackPublishOptions(source=source, stream="camera",
                                       video_encoding=rtc.VideoEncoding(max_bitrate=1_500_000, max_framerate=30))
        await room.local_participant.publish_track(track, opts)
    await asyncio.sleep(settle_s)  # let the others subscribe
    t0 = time.time()
    n = 0
    for i in range(0, len(media.audio) - STEP + 1, STEP):
        if (wait := t0 + i / RATE - time.time()) > 0:
            await asyncio.sleep(wait)
        while n < len(media.frames) and n / media.fps <= i / RATE:
            rgba = cv2.cvtColor(media.frames[n], cv2.COLOR_BGR2RGBA)
            cam.capture_frame(rtc.VideoFrame(rgba.shape[1], rgba.shape[0], rtc.VideoBufferType.RGBA, rgba.tobytes()))
            if on_frame:
                on_frame(n, time.time())
            n += 1
        pcm = (np.clip(media.audio[i:i + STEP], -1, 1) * 32767).astype(np.int16)
        await mic.capture_frame(rtc.AudioFrame(pcm.tobytes(), RATE, 1, STEP))
    return t0


async def in_room(room, identity: str, timeout_s: float) -> None:
    """Return once `identity` (the bot, say) is in `room` with us; ConfigError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not any(p.identity == identity for p in room.remote_participants.values()):
        if time.monotonic() > deadline:
            raise ConfigError(f"{identity} did not join the room in {timeout_s:g} s")
        await asyncio.sleep(0.25)


@dataclass
class Recording:
    """What a listener received of one audio and one video track, stamped on arrival."""

    audio: list[tuple[float, np.ndarray]] = field(default_factory=list)  # (arrival, 10 ms of samples)
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)  # (arrival, BGR)
    names: set[str] = field(default_factory=set)  # every track name that was subscribed

    def audio_starts(self) -> np.ndarray:
        """When each recorded 10 ms of audio began to play."""
        return np.array([a - len(s) / RATE for a, s in self.audio])

    def audio_levels(self) -> np.ndarray:
        return np.array([float(np.sqrt(np.mean(s ** 2))) for _, s in self.audio])


def record(room, audio_name: str, video_name: str) -> tuple[Recording, list[asyncio.Task]]:
    """Record the tracks named `audio_name` and `video_name` into a Recording as `room` receives them
    (attach before connecting). Black frames (a source that has not had its first frame) are skipped."""
    from livekit import rtc

    rec = Recording()
    tasks: list[asyncio.Task] = []

    async def hear(track: rtc.Track) -> None:
        async for ev in rtc.AudioStream(track, sample_rate=RATE, num_channels=1, frame_size_ms=10):
            rec.audio.append((time.time(), np.frombuffer(ev.frame.data, np.int16).astype(np.float32) / 32768))

    async def see(track: rtc.Track) -> None:
        async for ev in rtc.VideoStream(track, format=rtc.VideoBufferType.BGRA):
            got, f = time.time(), ev.frame
            img = cv2.cvtColor(np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 4), cv2.COLOR_BGRA2BGR)
            if img.mean() > 10:
                rec.frames.append((got, img))

    @room.on("track_subscribed")
    def _on_track(track: rtc.Track, pub: rtc.RemoteTrackPublication, _p: rtc.RemoteParticipant) -> None:
        rec.names.add(pub.name)
        if pub.name == audio_name:
            tasks.append(asyncio.ensure_future(hear(track)))
        elif pub.name == video_name:
            tasks.append(asyncio.ensure_future(see(track)))

    return rec, tasks
