"""The bot's worker form (`livedub call --rooms PATTERN`) against a real LiveKit server: it joins
matching rooms once a person is in them, in the languages a room's metadata asks for, leaves rooms
that empty, and a second LiveDub joining the same room takes it over without a tug of war.

What is tested is the room handling, so the dubbing is a stand-in that dubs nothing (the playout
then sends each speaker's original on the dubbed tracks, as it does for a late segment)."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from monitoring.metrics import Metrics
from workers.live.agent import RoomAgent
from workers.live.bot import CallBot, track_name
from workers.live.clients import Media, publish
from workers.live.dubbing import Dubbing, DubbingSession
from workers.live.tokens import room_token
from workers.pipeline import Sink
from workers.records import SessionControl, VideoFrame
from workers.settings import load_settings

pytestmark = [pytest.mark.live]


class _Undubbed(DubbingSession):
    def __init__(self) -> None:
        self.ended = asyncio.Event()

    def audio(self, pts_s: float, samples: np.ndarray, captured_at: float) -> None:
        pass

    def frame(self, frame: VideoFrame) -> None:
        pass

    def end(self) -> None:
        self.ended.set()

    async def done(self) -> None:
        await self.ended.wait()


class Undubbed(Dubbing):
    """Sessions that never produce a dub: no models, so the test measures room handling only."""

    def open(self, control: SessionControl, sinks: dict[str, Sink]) -> DubbingSession:
        return _Undubbed()


def _settings(livekit_server, **lk: object):
    url, key, secret = livekit_server
    return load_settings(livekit={"url": url, "api_key": key, "api_secret": secret, "delay_s": 1.0, **lk})


def _tone(seconds: float) -> Media:
    t = np.arange(int(48000 * seconds)) / 48000
    return Media((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), [], 25.0)


async def _until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
        await asyncio.sleep(0.25)


async def _participants(server, room: str) -> set[str]:
    from livekit import api

    try:
        got = await server.room.list_participants(api.ListParticipantsRequest(room=room))
    except api.TwirpError:  # the room is gone
        return set()
    return {p.identity for p in got.participants}


async def _agent_scenario(livekit_server) -> None:
    from livekit import api, rtc

    settings = _settings(livekit_server, poll_s=0.3, idle_s=2.0)
    metrics = Metrics()
    gauge = metrics.registry.get_sample_value
    agent = RoomAgent(settings, ("es",), pattern="agent-*", dubbing=Undubbed(), metrics=metrics)
    stop = asyncio.Event()
    run = asyncio.ensure_future(agent.run(stop))
    tag = str(int(time.time() * 1000))
    mine, french, other = f"agent-{tag}", f"agent-fr-{tag}", f"other-{tag}"
    lk = settings.livekit
    async with api.LiveKitAPI(lk.url, lk.api_key, lk.api_secret.get_secret_value()) as server:
        await server.room.create_room(api.CreateRoomRequest(
            name=french, metadata=json.dumps({"livedub": {"to": ["fr"]}})))
        rooms = {name: rtc.Room() for name in (mine, french, other)}
        seen: dict[str, set[str]] = {name: set() for name in rooms}
        for name, room in rooms.items():
            room.on("track_published", lambda pub, _p, name=name: seen[name].add(pub.name))
            await room.connect(lk.url, room_token(lk, "speaker", name))
        talks = [asyncio.ensure_future(publish(room, _tone(4.0), settle_s=0.2)) for room in rooms.values()]
        try:
            async def dubbed() -> bool:
                return track_name("speaker", "es", "audio") in seen[mine] and \
                    track_name("speaker", "fr", "audio") in seen[french]
            await _until(dubbed, 30, "the agent joined both matching rooms and published their dubs")
            assert track_name("speaker", "es", "audio") not in seen[french], "the metadata's languages, not --to"
            assert gauge("livedub_live_rooms") == 2 and gauge("livedub_live_participants") == 2
            assert lk.identity not in await _participants(server, other), "a room not matching the pattern"
            assert seen[other] == set()
            await asyncio.gather(*talks)
            await rooms[mine].disconnect()

            async def left() -> bool:
                return lk.identity not in await _participants(server, mine)
            await _until(left, lk.idle_s + 6, "the bot left the room that emptied")
            assert lk.identity in await _participants(server, french), "a room with someone in it is kept"
            assert not stop.is_set() and not run.done()
        finally:
            for room in rooms.values():
                await room.disconnect()
            stop.set()
            await asyncio.wait_for(run, 30)
    assert gauge("livedub_live_rooms") == 0 and gauge("livedub_live_tracks") == 0


def test_agent_joins_matching_rooms_on_demand_and_leaves_empty_ones(livekit_server):
    asyncio.run(_agent_scenario(livekit_server))


async def _takeover_scenario(livekit_server) -> None:
    from livekit import api, rtc

    settings = _settings(livekit_server)
    lk = settings.livekit
    room_name = f"takeover-{int(time.time() * 1000)}"
    speaker, other_bot = rtc.Room(), rtc.Room()
    await speaker.connect(lk.url, room_token(lk, "speaker", room_name))
    bot = CallBot(settings, room_name, ("es",), dubbing=Undubbed(), metrics=Metrics())
    stop = asyncio.Event()
    stay = asyncio.ensure_future(bot.stay(stop))
    async with api.LiveKitAPI(lk.url, lk.api_key, lk.api_secret.get_secret_value()) as server:
        try:
            async def joined() -> bool:
                return lk.identity in await _participants(server, room_name)
            await _until(joined, 20, "the bot joined")
            await other_bot.connect(lk.url, room_token(lk, lk.identity, room_name, agent=True))  # a second LiveDub
            await asyncio.wait_for(stay, 10)  # the first one stops instead of joining again
            assert bot.replaced
            await asyncio.sleep(2.0)
            assert other_bot.connection_state == rtc.ConnectionState.CONN_CONNECTED, "the newcomer keeps the room"
        finally:
            stop.set()
            await speaker.disconnect()
            await other_bot.disconnect()


def test_a_second_livedub_in_the_room_takes_it_over(livekit_server):
    asyncio.run(_takeover_scenario(livekit_server))
