"""A call does not stall when people leave or the server goes away: a speaker who leaves mid-sentence
is dubbed to their last word and their dubbed tracks go; after the LiveKit server restarts, the bot
is back in the room and dubs whoever speaks next. The bot runs as its own process (`livedub call`);
its metrics say what happened."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
import requests

from monitoring.histograms import sample_sum
from tests.support.clips import sample_clip
from tests.support.ports import free_port
from workers.errors import ConfigError
from workers.live.bot import track_name
from workers.live.clients import Media, in_room, publish
from workers.live.tokens import room_token
from workers.settings import LiveKitSettings

pytestmark = [pytest.mark.live, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
ROOM = "resilience"
RATE = 48000
DELAY_S = 6.0


@pytest.fixture(scope="module")
def bot(call_bot, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("bot") / "bot.log"

    def metric(name: str, **labels: str) -> float:
        return sample_sum(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text, name, labels)

    with call_bot(ROOM, log, "--delay", str(DELAY_S), "--metrics-port", str(port)) as proc:
        deadline = time.monotonic() + 240
        while True:  # joined: its models are loaded and warm
            try:
                if metric("livedub_live_events_total", event="joined") >= 1:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1.0)
        yield metric, log


async def _speak(lk, identity: str, seconds: float, listener_events: list, watch: float,
                 bot_back_s: float = 0.0) -> None:
    """`identity` joins, speaks the sample's audio for `seconds` and leaves (no goodbye pause); a
    listener records which of the bot's tracks it sees come and go, for `watch` seconds. With
    `bot_back_s`, the speaker starts only once the server lists the bot in the room (within that)."""
    from livekit import rtc

    creds = LiveKitSettings(api_key=lk.api_key, api_secret=lk.api_secret)
    listener, speaker = rtc.Room(), rtc.Room()

    @listener.on("track_published")
    def published(pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
        listener_events.append(("published", pub.name, time.time()))

    @listener.on("track_unpublished")
    def unpublished(pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
        listener_events.append(("unpublished", pub.name, time.time()))

    await listener.connect(lk.url, room_token(creds, f"ear-{identity}", ROOM))
    if bot_back_s:
        await in_room(listener, "livedub", bot_back_s)
        await asyncio.sleep(3.0)  # its subscriber connection is up a moment after it is listed
    await speaker.connect(lk.url, room_token(creds, identity, ROOM))
    audio = Media.from_file(sample_clip()).audio[:round(seconds * RATE)]
    await publish(speaker, Media(audio, [], 25.0), settle_s=0.0)  # a microphone only
    listener_events.append(("left", identity, time.time()))
    await speaker.disconnect()
    await asyncio.sleep(watch)
    await listener.disconnect()


def _when(events: list, kind: str, name: str) -> float | None:
    return next((t for k, n, t in events if k == kind and n == name), None)


def test_a_speaker_who_leaves_mid_sentence_is_dubbed_to_the_end_and_their_tracks_go(livekit_server, bot):
    metric, log = bot
    events: list = []
    # the sample's second sentence runs from about 3.3 s: leave inside it
    asyncio.run(asyncio.wait_for(_speak(livekit_server, "alice", 4.2, events, DELAY_S + 8), 120))
    name = track_name("alice", "es", "audio")
    assert _when(events, "published", name), (events, log.read_text()[-2000:])
    left, gone = _when(events, "left", "alice"), _when(events, "unpublished", name)
    assert gone is not None, (events, log.read_text()[-2000:])
    assert gone - left < DELAY_S + 5  # the playout drained what it held, then the tracks went: no stall
    assert metric("livedub_live_events_total", event="participant_left") >= 1
    assert metric("livedub_live_outcomes_total", target_lang="es", outcome="dubbed") >= 2  # incl. the cut one
    assert metric("livedub_live_events_total", event="session_failed") == 0


@pytest.mark.parametrize("how", ["restart", "crash"])
def test_after_the_server_restarts_the_bot_is_back_and_dubs_the_next_speaker(livekit_server, bot, how):
    """A restart (SIGTERM) closes the room: the bot sees it lost and joins again (a new "joined"). A
    crash (SIGKILL) says nothing: the SDK resumes or re-joins on its own once the server is back (a
    "reconnected"). Both must dub the next speaker. The new server knows nothing of the old room, so
    the bot being listed there is the bot being back."""
    metric, log = bot
    back = {e: metric("livedub_live_events_total", event=e) for e in ("joined", "reconnected")}
    subprocess.run(["bash", str(ROOT / "deploy" / "local" / "livekit.sh"), how], check=True,
                   capture_output=True, timeout=120)
    events: list = []
    try:
        speak = _speak(livekit_server, f"bob-{how}", 5.0, events, DELAY_S + 4, bot_back_s=90)
        asyncio.run(asyncio.wait_for(speak, 150))
    except ConfigError as e:
        pytest.fail(f"{e}\n{log.read_text()[-3000:]}")
    assert _when(events, "published", track_name(f"bob-{how}", "es", "audio")), (events, log.read_text()[-2000:])
    assert any(metric("livedub_live_events_total", event=e) > n for e, n in back.items()), log.read_text()[-2000:]
    assert metric("livedub_live_events_total", event="session_failed") == 0
