"""Two people speaking at once in one call stay apart: each gets their own dubbed tracks, carrying
only their own picture (every frame's barcode is numbered per speaker) and saying only their own
words in Spanish (a careful Whisper, against each one's translation). Real LiveKit server, the bot
as its own process (`livedub call`), two speaker clients and a listener client."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import soxr

from tests.support.barcode import read, speaker_media
from tests.support.clips import sample_clip
from tests.support.judge import listen
from workers.bench.live import bursts
from workers.bench.quality import _chrf
from workers.live.bot import track_name
from workers.live.clients import RATE, Recording, in_room, publish, record
from workers.live.tokens import room_token
from workers.media.sample import DEFAULT_TEXT, make_sample, sentences
from workers.settings import LiveKitSettings
from workers.translate.apertium import Apertium

pytestmark = [pytest.mark.live, pytest.mark.slow]
ROOM = "two-speakers"
DELAY_S = 12.0  # two sessions share the two cores: each segment takes longer than alone
BOB_TEXT = "We will meet again on Thursday to review the budget. Please send me the slides before the call."
BOB_FIRST = 512  # Bob's frames are numbered from here, Alice's from 0


async def _call(lk, clips: dict[str, object]) -> dict[str, Recording]:
    from livekit import rtc

    creds = LiveKitSettings(api_key=lk.api_key, api_secret=lk.api_secret)
    listener = rtc.Room()
    recs, tasks = {}, []
    for who in clips:
        recs[who], t = record(listener, track_name(who, "es", "audio"), track_name(who, "es", "video"))
        tasks += t
    await listener.connect(lk.url, room_token(creds, "listener", ROOM))
    await in_room(listener, "livedub", 240)  # the bot loads and warms its models first
    speakers = {who: rtc.Room() for who in clips}
    for who, room in speakers.items():
        await room.connect(lk.url, room_token(creds, who, ROOM))
    await asyncio.gather(*(publish(speakers[who], media) for who, media in clips.items()))  # both at once
    await asyncio.sleep(DELAY_S + 2.0)
    for room in speakers.values():
        await room.disconnect()
    await asyncio.sleep(0.5)
    await listener.disconnect()
    for t in tasks:
        t.cancel()
    return recs


@pytest.fixture(scope="module")
def two(call_bot, livekit_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("two-speakers")
    bob_clip = tmp / "bob.mp4"
    make_sample(bob_clip, seconds=8.0, text=BOB_TEXT)
    clips = {"alice": speaker_media(sample_clip()), "bob": speaker_media(bob_clip, BOB_FIRST)}
    with call_bot(ROOM, tmp / "bot.log", "--delay", str(DELAY_S)):
        recs = asyncio.run(asyncio.wait_for(_call(livekit_server, clips), 480))
    return recs, (tmp / "bot.log").read_text()


def test_each_speaker_gets_their_own_tracks_with_only_their_own_picture(two):
    recs, log = two
    for who, (lo, hi) in {"alice": (0, BOB_FIRST), "bob": (BOB_FIRST, 1 << 10)}.items():
        rec = recs[who]
        assert rec.audio and len(rec.frames) > 100, (who, len(rec.frames), log[-3000:])
        ids = np.array([read(img) for _, img in rec.frames])
        own = ((ids >= lo) & (ids < hi)).mean()
        assert own >= 0.98, (who, own)  # a misread cell of a blurred frame aside, never the other one


def test_each_speaker_is_heard_saying_their_own_words_in_spanish(two, loaded):
    from workers.asr.faster_whisper import FasterWhisper

    recs, _ = two
    asr, mt = loaded(FasterWhisper), loaded(Apertium)
    said = {who: " ".join(mt.translate_via(s, "en", "es") for s in sentences(text))
            for who, text in {"alice": DEFAULT_TEXT["en"], "bob": BOB_TEXT}.items()}
    for who, rec in recs.items():
        audio = soxr.resample(np.concatenate([s for _, s in rec.audio]), RATE, 16000).astype(np.float32)
        spans = bursts(rec.audio_levels(), rec.audio_starts() - rec.audio_starts()[0])
        heard = " ".join(listen(asr, audio[round(a * 16000):round(b * 16000) + 1600], "es") for a, b in spans)
        other = "bob" if who == "alice" else "alice"
        mine, theirs = _chrf([said[who]], [heard]), _chrf([said[other]], [heard])
        assert mine > 30 and mine > theirs + 10, (who, heard, mine, theirs)
