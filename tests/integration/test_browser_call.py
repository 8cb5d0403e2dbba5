"""The call page in a real browser: Debian's headless Chromium joins through `livedub serve` as the
speaker, its fake camera and microphone fed from the talking-face sample; the bot dubs it; a
second Chromium joins as a listener who wants Spanish. The listener's page must show the speaker's
dubbed video (a screenshot, judged by a face detector) and play the dubbed tracks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from tests.integration.kafka_io import stop
from tests.support.browser import Chromium, chromium_path
from tests.support.clips import sample_clip
from tests.support.ports import free_port

pytestmark = [pytest.mark.live, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
ROOM = "web"


async def _participants(lk, room: str) -> set[str]:
    from livekit import api

    async with api.LiveKitAPI(lk.url.replace("ws://", "http://"), lk.api_key, lk.api_secret) as client:
        res = await client.room.list_participants(api.ListParticipantsRequest(room=room))
        return {p.identity for p in res.participants}


@pytest.fixture(scope="module")
def page(call_bot, livekit_server, settings, tmp_path_factory):
    """The bot in room `web` and the call page, both real processes; yields the page's URL."""
    if chromium_path() is None:
        pytest.fail("chromium is not installed: scripts/install_web.sh --browser (make setup-all runs it)")
    tmp = tmp_path_factory.mktemp("web")
    env = {**os.environ, **livekit_server.env()}
    port = free_port()
    with call_bot(ROOM, tmp / "bot.log", "--delay", "6") as bot, open(tmp / "serve.log", "w") as out:
        serve = subprocess.Popen([sys.executable, "-m", "streams.cli", "serve", "--to", "es,fr", "--port", str(port)],
                                 cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 240
            while "livedub" not in asyncio.run(_participants(livekit_server, ROOM)):
                assert bot.poll() is None, (tmp / "bot.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the bot did not join in 240 s"
                time.sleep(1.0)
            url = f"http://127.0.0.1:{port}"
            while True:
                try:
                    requests.get(url, timeout=2).raise_for_status()
                    break
                except requests.RequestException:
                    assert serve.poll() is None, (tmp / "serve.log").read_text()[-3000:]
                    time.sleep(0.3)
            yield url, tmp
        finally:
            stop(serve)


def _fake_devices(tmp: Path) -> tuple[Path, Path]:
    """The sample as Chromium's fake camera (Y4M) and microphone (WAV) files."""
    clip = sample_clip()
    video, audio = tmp / "camera.y4m", tmp / "microphone.wav"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(clip), "-pix_fmt", "yuv420p", str(video)],
                   check=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(clip), "-ac", "1", "-ar", "48000",
                    "-c:a", "pcm_s16le", str(audio)], check=True)
    return video, audio


def test_a_listener_page_shows_and_plays_the_speaker_dubbed(page):
    import dlib

    url, tmp = page
    video, audio = _fake_devices(tmp)
    (tmp / "speaker").mkdir()
    (tmp / "listener").mkdir()
    speaker = Chromium(f"{url}/?room={ROOM}&identity=browser&join=1&publish=1", tmp / "speaker",
                       fake_video=video, fake_audio=audio)
    listener = None
    try:
        assert speaker.wait_for("window.livedub.joined || window.livedub.error", 60) is True, \
            speaker.evaluate("window.livedub.error")
        listener = Chromium(f"{url}/?room={ROOM}&identity=viewer&lang=es&join=1&publish=0", tmp / "listener")
        shown = listener.wait_for(
            "(t => t && t.source === 'dub' && t.frames > 100 && "
            "!t.audio.paused && t.audio.srcObject && t.audio.srcObject.getAudioTracks().length)"
            "(window.livedub.tiles['browser'])", 120)
        state = listener.evaluate("JSON.stringify(Object.fromEntries(Object.entries(window.livedub.tiles)"
                                  ".map(([k, t]) => [k, {source: t.source, frames: t.frames, "
                                  "caption: t.caption.textContent}])))")
        assert shown, state
        assert "Spanish (dubbed)" in listener.evaluate("window.livedub.tiles['browser'].caption.textContent")
        png = listener.screenshot()
        (tmp / "listener.png").write_bytes(png)
        img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        faces = dlib.get_frontal_face_detector()(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), 1)
        assert len(faces) == 1, f"the listener's page shows {len(faces)} faces; screenshot in {tmp / 'listener.png'}"
    finally:
        if listener is not None:
            listener.close()
        speaker.close()
