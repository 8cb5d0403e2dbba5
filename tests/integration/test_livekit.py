"""The meeting server the live calls run on: a real LiveKit SFU (built from its Go module, started
by `deploy/local/livedub-local.sh up --with-livekit`) and two real WebRTC clients (the LiveKit
Python SDK) on loopback: a speaker publishes a microphone track, a listener hears it."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from workers.live.tokens import room_token
from workers.settings import LiveKitSettings

pytestmark = [pytest.mark.live, pytest.mark.slow]
RATE = 48000


def _token(key: str, secret: str, identity: str, room: str) -> str:
    return room_token(LiveKitSettings(api_key=key, api_secret=secret), identity, room)


async def _speak_and_listen(url: str, key: str, secret: str, seconds: float = 3.0) -> np.ndarray:
    from livekit import rtc

    room_name = "smoke"
    listener, speaker = rtc.Room(), rtc.Room()
    heard: list[np.ndarray] = []
    got_track = asyncio.Event()

    async def listen(track: rtc.Track) -> None:
        async for ev in rtc.AudioStream(track, sample_rate=RATE, num_channels=1):
            heard.append(np.frombuffer(ev.frame.data, dtype=np.int16).astype(np.float32) / 32768)

    tasks = []

    @listener.on("track_subscribed")
    def on_track(track: rtc.Track, *_: object) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            tasks.append(asyncio.ensure_future(listen(track)))
            got_track.set()

    await listener.connect(url, _token(key, secret, "listener", room_name))
    await speaker.connect(url, _token(key, secret, "speaker", room_name))
    source = rtc.AudioSource(RATE, 1)
    track = rtc.LocalAudioTrack.create_audio_track("microphone", source)
    await speaker.local_participant.publish_track(
        track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE))
    await asyncio.wait_for(got_track.wait(), 20)
    n = RATE // 100  # 10 ms frames, as a microphone delivers them
    t = np.arange(int(seconds * RATE)) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 440.0 * t) * 32767).astype(np.int16)
    for i in range(0, len(tone) - n + 1, n):
        frame = rtc.AudioFrame(tone[i:i + n].tobytes(), RATE, 1, n)
        await source.capture_frame(frame)
    await asyncio.sleep(1.0)
    await speaker.disconnect()
    await listener.disconnect()
    for task in tasks:
        task.cancel()
    return np.concatenate(heard) if heard else np.zeros(0, np.float32)


def test_a_listener_hears_what_a_speaker_publishes_through_the_local_sfu(livekit_server):
    audio = asyncio.run(asyncio.wait_for(_speak_and_listen(*livekit_server), 60))
    blocks = audio[:len(audio) // 480 * 480].reshape(-1, 480)
    loud = np.flatnonzero(np.sqrt((blocks ** 2).mean(axis=1)) > 0.1)
    assert len(loud) * 480 > 2 * RATE, f"heard {len(audio) / RATE:.1f} s, {len(loud) * 480 / RATE:.1f} s audible"
    # the tone's pitch survived Opus: the strongest frequency of one audible second is 440 Hz
    second = audio[loud[0] * 480:loud[0] * 480 + RATE]
    assert len(second) == RATE
    assert abs(float(np.argmax(np.abs(np.fft.rfft(second)))) - 440.0) <= 2.0  # 1 Hz bins


def test_a_token_signed_with_another_secret_is_refused(livekit_server):
    from livekit import rtc

    url, key, _ = livekit_server

    async def join() -> None:
        room = rtc.Room()
        try:
            await room.connect(url, _token(key, "not-the-secret-" * 3, "intruder", "smoke"))
        finally:
            await room.disconnect()

    with pytest.raises(rtc.ConnectError):
        asyncio.run(asyncio.wait_for(join(), 30))
