"""The call bot: joins a LiveKit room and, for every other participant and target language,
publishes a dubbed audio track and a dubbed video track.

Each participant is one session of a `Dubbing` (workers/live/dubbing.py): the in-process runner
by default (the same stages as `livedub dub`), or the Kafka workers (`--transport kafka`). Their
microphone feeds the segmenter, their camera the lip-sync step, and a `Playout` sends the result
at a constant delay. Tracks are named `<identity>:<lang>:audio` and `<identity>:<lang>:video`
and share the stream `<identity>:<lang>` (a receiver keeps the two in sync). The bot joins as an
agent; other agents (another LiveDub, a recorder) are not dubbed.

Reconnection: the SDK resumes a dropped signalling connection by itself; if the room is lost
(the server restarted), every session ends cleanly and the bot joins again with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from monitoring.metrics import Metrics
from workers.errors import ConfigError
from workers.live.dubbing import Dubbing, DubbingSession, EmbeddedDubbing
from workers.live.feeds import PlayoutSink
from workers.live.playout import RATE, STEP, Playout
from workers.live.tokens import room_token
from workers.records import SessionControl, VideoFrame, now
from workers.settings import Settings

log = logging.getLogger(__name__)

VIDEO_BITRATE = 1_500_000  # bits/s of a dubbed video track at most
VIDEO_LEAD_S = 0.5  # a video track is published this long before its first frame plays (it sends black till then)
LATE_STEP_S = 0.03  # a playout step this late is dropped (a stalled event loop), not sent in a burst
AUDIO_AHEAD_S = 0.05  # audio goes into its source this early: the source sends from its queue at a steady
# pace (a late loop must not starve it: the listener's jitter buffer would grow, and with it the A/V offset)
MAX_QUEUED_S = 0.03  # audio queued beyond AUDIO_AHEAD_S + this is latency: a step is dropped to drain it


def track_name(identity: str, lang: str, kind: str) -> str:
    """The name of the track that carries `identity` dubbed into `lang` (`kind`: audio or video)."""
    return f"{identity}:{lang}:{kind}"


@dataclass
class Participant:
    """One remote participant being dubbed: their session, readers, playout and published tracks."""

    identity: str
    session_id: str
    playout: Playout
    session: DubbingSession
    tasks: list[asyncio.Task] = field(default_factory=list)
    readers: dict[str, tuple[str, asyncio.Task]] = field(default_factory=dict)  # kind -> (track sid, reader)
    audio_out: dict[str, object] = field(default_factory=dict)  # lang -> rtc.AudioSource
    video_out: dict[str, object] = field(default_factory=dict)  # lang -> rtc.VideoSource
    published: list[str] = field(default_factory=list)  # track sids
    exported: dict[tuple[str, str], int] = field(default_factory=dict)  # outcome counts already in metrics
    dropped_steps: int = 0  # 10 ms playout steps dropped because the loop came too late


class CallBot:
    """Dubs every participant of one room into `targets`, until `stop` is set."""

    def __init__(self, settings: Settings, room: str, targets: tuple[str, ...], *,
                 dubbing: Dubbing | None = None, metrics: Metrics | None = None, idle_s: float | None = None) -> None:
        """`idle_s`: leave for good once the room has had nobody to dub for this long (None: stay until
        `stop`); the room agent (workers/live/agent.py) sets it so that an empty room can close."""
        if not targets:
            raise ConfigError("no target language given (e.g. --to es)")
        room_token(settings.livekit, settings.livekit.identity, room)  # no key or secret: say so before loading models
        self.settings = settings
        self.room_name = room
        self.targets = targets
        self.metrics = metrics
        self.dubbing = dubbing or EmbeddedDubbing.for_calls(settings, metrics)
        self.idle_s = idle_s
        self.people: dict[str, Participant] = {}
        self.replaced = False  # another LiveDub joined this room with our identity: it dubs the room now
        self._room = None

    # -- the room ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Load the models, then join, dub, and rejoin after losing the room, until `stop`."""
        await asyncio.get_running_loop().run_in_executor(None, self.dubbing.load)
        try:
            await self.stay(stop)
        finally:
            self.dubbing.close()

    async def stay(self, stop: asyncio.Event) -> None:
        """Join, dub, and rejoin after losing the room, until `stop`, being replaced, or (with
        `idle_s`) the room staying empty; the dubbing must be loaded."""
        backoff = 0.5
        while not stop.is_set() and not self.replaced:
            lost, joined = asyncio.Event(), False
            try:
                await self._join(lost)
                backoff = 0.5
                joined = True
                self._gauge("live_rooms", 1)
                self._event("joined")
                waits = [stop.wait(), lost.wait()] + ([self._idle()] if self.idle_s is not None else [])
                if await _first(*waits) == 2:
                    log.info("room %s: nobody to dub for %g s; leaving", self.room_name, self.idle_s)
                    self._event("left_idle")
                    return
            except Exception as e:  # the server is down or refused: try again
                log.warning("room %s: %s: %s; joining again in %.1f s", self.room_name, type(e).__name__, e, backoff)
                self._event("join_failed")
            finally:
                await self._leave()
                if joined:
                    self._gauge("live_rooms", -1)
            if not stop.is_set() and not self.replaced:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 10.0)

    async def _join(self, lost: asyncio.Event) -> None:
        from livekit import rtc

        lk = self.settings.livekit
        room = rtc.Room()
        self._room = room

        @room.on("track_subscribed")
        def _subscribed(track: rtc.Track, _pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                return
            kind = {rtc.TrackKind.KIND_AUDIO: "audio", rtc.TrackKind.KIND_VIDEO: "video"}.get(track.kind)
            if kind is None:
                return
            person = self._person(p.identity)
            old = person.readers.get(kind)
            if old is not None and old[0] == track.sid and not old[1].done():
                return
            if old is not None:  # a new track of the same kind (a rejoin, a new camera): read that one
                old[1].cancel()
            read = self._read_audio if kind == "audio" else self._read_video
            person.readers[kind] = (track.sid, asyncio.ensure_future(read(person, track), loop=loop))
            person.tasks.append(person.readers[kind][1])

        @room.on("track_unsubscribed")
        def _unsubscribed(track: rtc.Track, _pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
            person = self.people.get(p.identity)
            for kind, (sid, task) in list(person.readers.items()) if person else ():
                if sid == track.sid:
                    task.cancel()
                    del person.readers[kind]

        @room.on("reconnecting")
        def _reconnecting() -> None:
            log.warning("room %s: connection lost, the SDK is reconnecting", self.room_name)
            self._event("reconnecting")

        @room.on("reconnected")
        def _reconnected() -> None:
            log.info("room %s: reconnected", self.room_name)
            self._event("reconnected")

        @room.on("participant_disconnected")
        def _gone(p: rtc.RemoteParticipant) -> None:
            if p.identity in self.people:
                self._event("participant_left")
                self._end(self.people[p.identity])

        @room.on("disconnected")
        def _disconnected(reason: object) -> None:
            if reason == rtc.DisconnectReason.DUPLICATE_IDENTITY:  # another LiveDub took the room: no tug of war
                log.info("room %s: another LiveDub joined as %s; it dubs this room now", self.room_name, lk.identity)
                self.replaced = True
                self._event("replaced")
            else:
                log.warning("room %s: disconnected (%s)", self.room_name, reason)
                self._event("disconnected")
            lost.set()

        loop = asyncio.get_running_loop()
        await room.connect(lk.url, room_token(lk, lk.identity, self.room_name, agent=True, name="LiveDub"))
        log.info("joined room %s as %s, dubbing into %s", self.room_name, lk.identity, ",".join(self.targets))

    async def _idle(self) -> None:
        """Return once the room has had no one to dub (no remote person, agents aside) for `idle_s`."""
        from livekit import rtc

        since = time.monotonic()
        while True:
            await asyncio.sleep(0.5)
            room = self._room
            if room is not None and any(p.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
                                        for p in room.remote_participants.values()):
                since = time.monotonic()
            elif time.monotonic() - since >= self.idle_s:
                return

    async def _leave(self) -> None:
        """Room lost or bot stopping: every session ends now (nothing can be played to a lost room)."""
        tasks = [t for p in self.people.values() for t in p.tasks]
        for person in list(self.people.values()):
            self._end(person)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for person in list(self.people.values()):  # playouts cancelled before they ran: no unpublish came
            self._gauge("live_tracks", -len(person.published))
            self._drop(person)
        if self._room is not None:
            with contextlib.suppress(Exception):
                await self._room.disconnect()
            self._room = None

    # -- one participant --------------------------------------------------------------------
    def _person(self, identity: str) -> Participant:
        if identity in self.people and not self.people[identity].playout.ended:
            return self.people[identity]
        lk, out = self.settings.livekit, self.settings.output
        sid = f"{self.room_name}.{identity}.{int(time.time() * 1000)}"
        playout = Playout(self.targets, lk.delay_s, max_delay_s=lk.max_delay_s, duck_db=out.duck_db,
                          ramp_s=out.duck_ramp_s)
        session = self.dubbing.open(SessionControl(sid, "start", self.targets),
                                    {lang: PlayoutSink(playout, lang) for lang in self.targets})
        person = Participant(identity, sid, playout, session)
        self._drop(self.people.get(identity))
        self.people[identity] = person
        self._gauge("live_participants", 1)
        self._event("participant_joined")
        person.tasks.append(asyncio.ensure_future(self._dub(person)))
        person.tasks.append(asyncio.ensure_future(self._play(person)))
        return person

    def _end(self, person: Participant) -> None:
        """The participant left (or the room was lost): their session ends, playout drains."""
        if not person.playout.ended:
            person.session.end()
            person.playout.end()

    async def _read_audio(self, person: Participant, track: object) -> None:
        from livekit import rtc

        first = True
        async for ev in rtc.AudioStream(track, sample_rate=RATE, num_channels=1, frame_size_ms=10):
            if person.playout.ended:
                break
            if first:
                log.info("%s: audio of %s is coming in", self.room_name, person.identity)
                first = False
            got = now() - self.settings.livekit.audio_lag_s  # when it was captured, as its video would say
            samples = np.frombuffer(ev.frame.data, dtype=np.int16).astype(np.float32) / 32768.0
            for pts, part in person.playout.add_audio(samples, got):
                person.session.audio(pts, part, got)

    async def _read_video(self, person: Participant, track: object) -> None:
        from livekit import rtc

        seq = 0
        async for ev in rtc.VideoStream(track, format=rtc.VideoBufferType.BGRA):
            if person.playout.ended:
                break
            got = now()
            f = ev.frame
            img = cv2.cvtColor(np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 4), cv2.COLOR_BGRA2BGR)
            if f.width > self.settings.livekit.max_width:
                h = round(f.height * self.settings.livekit.max_width / f.width) // 2 * 2
                img = cv2.resize(img, (self.settings.livekit.max_width, h), interpolation=cv2.INTER_AREA)
            pts = person.playout.add_frame(img, got)
            person.session.frame(VideoFrame(person.session_id, seq, pts, img.shape[1], img.shape[0], "bgr24",
                                            img.tobytes(), produced_at=got))
            seq += 1

    async def _dub(self, person: Participant) -> None:
        """The participant's session, until every output of it has reached the playout."""
        try:
            await person.session.done()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: session %s failed; the original plays on", self.room_name, person.session_id)
            self._event("session_failed")

    async def _publish(self, person: Participant, kind: str, size: tuple[int, int] | None = None) -> None:
        """Publish `kind` (audio, or video at the camera's `size`) of every language; its source is
        fed only once the track is up (an unpublished audio source would fill and block)."""
        from livekit import rtc

        for lang in self.targets:
            name = track_name(person.identity, lang, kind)
            if kind == "audio":
                src = rtc.AudioSource(RATE, 1, queue_size_ms=200)
                track = rtc.LocalAudioTrack.create_audio_track(name, src)
                opts = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            else:
                src = rtc.VideoSource(*(size or (640, 480)))
                track = rtc.LocalVideoTrack.create_video_track(name, src)
                # WebRTC's balanced degradation: while the bandwidth estimate ramps up (the first ~7 s) it
                # sends fewer pixels, not fewer frames; keeping the resolution dropped ~40 % of them there
                opts = rtc.TrackPublishOptions(
                    source=rtc.TrackSource.SOURCE_CAMERA,
                    video_encoding=rtc.VideoEncoding(max_bitrate=VIDEO_BITRATE, max_framerate=30))
            opts.stream = f"{person.identity}:{lang}"  # one stream per language: receivers sync its A/V
            pub = await self._room.local_participant.publish_track(track, opts)
            person.published.append(pub.sid)
            self._gauge("live_tracks", 1)
            (person.audio_out if kind == "audio" else person.video_out)[lang] = src

    async def _play(self, person: Participant) -> None:
        """Send each 10 ms step of every language at its time, until the playout has drained.

        Tracks are published ahead of their first media (audio when the participant's media
        starts, D before it plays; video a second before its first frame plays: a video source
        sends black until its first frame), in tasks of their own, so the schedule never waits
        on the server. A step the loop reaches too late is dropped, not sent in a burst: a burst
        would fill the audio source's queue and leave the audio behind the video for good.
        """
        from livekit import rtc

        p = person.playout
        publishing: dict[str, asyncio.Task] = {}
        held: deque[tuple[float, str, np.ndarray]] = deque()  # frames waiting out the audio's longer path
        try:
            while not p.done:
                if (due := p.due_at()) is None:  # no media yet
                    await asyncio.sleep(0.01)
                    continue
                if "audio" not in publishing:
                    publishing["audio"] = asyncio.ensure_future(self._publish(person, "audio"))
                if "video" not in publishing and (first := p.next_frame_due()) is not None \
                        and first - time.time() < VIDEO_LEAD_S:
                    size = p.next_frame_size()
                    publishing["video"] = asyncio.ensure_future(self._publish(person, "video", size))
                if (wait := due - AUDIO_AHEAD_S - time.time()) > 0:
                    await asyncio.sleep(wait)
                step = p.step()
                if due - time.time() < -LATE_STEP_S:
                    person.dropped_steps += 1
                    continue
                lag = self.settings.livekit.audio_lag_s
                for lang in self.targets:
                    if (audio := person.audio_out.get(lang)) is not None:
                        if audio.queued_duration > AUDIO_AHEAD_S + MAX_QUEUED_S:  # drain back: queued is late
                            person.dropped_steps += 1
                        else:
                            pcm = (np.clip(step.audio[lang], -1, 1) * 32767).astype(np.int16)
                            await audio.capture_frame(rtc.AudioFrame(pcm.tobytes(), RATE, 1, STEP))
                    held.extend((due + lag, lang, img) for img in step.frames[lang])
                while held and held[0][0] <= time.time() + STEP / RATE / 2:
                    _, lang, img = held.popleft()
                    if (video := person.video_out.get(lang)) is not None:
                        rgba = cv2.cvtColor(img, cv2.COLOR_BGR2RGBA)
                        video.capture_frame(rtc.VideoFrame(img.shape[1], img.shape[0], rtc.VideoBufferType.RGBA,
                                                           rgba.tobytes()))
                self._export(person)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: playout of %s failed", self.room_name, person.identity)
            self._event("session_failed")
        finally:
            for t in publishing.values():
                t.cancel()
            await self._unpublish(person)

    async def _unpublish(self, person: Participant) -> None:
        room = self._room
        for sid in person.published:
            with contextlib.suppress(Exception):
                await room.local_participant.unpublish_track(sid)
        self._gauge("live_tracks", -len(person.published))
        person.published.clear()
        self._drop(person)

    def _drop(self, person: Participant | None) -> None:
        if person is not None and self.people.get(person.identity) is person:
            del self.people[person.identity]
            self._gauge("live_participants", -1)

    # -- metrics ----------------------------------------------------------------------------
    def _gauge(self, name: str, change: int) -> None:
        if self.metrics and change:
            getattr(self.metrics, name).inc(change)

    def _event(self, what: str) -> None:
        if self.metrics:
            self.metrics.live_events.labels(what).inc()

    def _export(self, person: Participant) -> None:
        m = self.metrics
        if not m:
            return
        m.live_delay_seconds.labels(person.identity).set(person.playout.delay_s)
        for lang in self.targets:
            st = person.playout.stats(lang)
            for what, n in (("dubbed", st.dubbed), ("late", st.late), ("late_frame", st.late_frames),
                            ("dropped_step", person.dropped_steps)):
                if n > (done := person.exported.get((lang, what), 0)):
                    m.live_outcomes.labels(lang, what).inc(n - done)
                    person.exported[(lang, what)] = n


async def _first(*aws: object) -> int:
    """Wait for the first of `aws` to finish; its index (the others are cancelled)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return min(tasks.index(t) for t in done)
    finally:
        for t in tasks:
            t.cancel()
