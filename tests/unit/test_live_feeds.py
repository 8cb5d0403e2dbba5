"""The live ends of a run: audio chunks on the participant's clock, camera frames that the lip-sync
step of each language reads at its own pace (waiting for frames not yet delivered)."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from workers.live.feeds import AudioFeed, FrameFeed
from workers.live.playout import RATE
from workers.records import VideoFrame


def test_audio_arrives_as_chunks_of_the_configured_size_on_a_contiguous_clock():
    async def run() -> list:
        feed = AudioFeed("s", 0.1)
        for i in range(25):  # 250 ms in 10 ms frames
            feed.put(i * 0.01, np.full(RATE // 100, i, np.float32) / 100, 1000.0 + i * 0.01)
        feed.end()
        return [c async for c in feed.chunks()]

    chunks = asyncio.run(run())
    assert [c.seq for c in chunks] == [0, 1]  # the last 50 ms wait for more
    assert [round(c.pts_s, 6) for c in chunks] == [0.0, 0.1]
    assert all(c.sample_rate == RATE and c.duration_s == 0.1 for c in chunks)


def _frame(i: int) -> VideoFrame:
    return VideoFrame("s", i, i * 0.04, 2, 2, "bgr24", bytes(12))


def test_each_language_reads_every_frame_once_and_frames_all_have_read_are_dropped():
    feed = FrameFeed(("es", "fr"))
    for i in range(10):
        feed.add(_frame(i))
    assert [f.seq for f in feed.until("es", 0.2)] == [0, 1, 2, 3, 4]
    assert [f.seq for f in feed.until("fr", 0.1)] == [0, 1, 2]
    assert [f.seq for f in feed.until("es", 0.3)] == [5, 6, 7]
    assert feed.buffered == 7  # fr still needs 3..9
    assert [f.seq for f in feed.source("fr").until(0.3)] == [3, 4, 5, 6, 7]
    assert feed.buffered == 2


def test_a_reader_waits_for_frames_the_camera_has_not_delivered_yet():
    feed = FrameFeed(("es",))
    feed.add(_frame(0))

    def camera() -> None:
        for i in range(1, 10):
            time.sleep(0.01)
            feed.add(_frame(i))

    threading.Thread(target=camera).start()
    got = feed.until("es", 0.3)  # frames up to 0.3 s come within ~0.1 s
    assert [f.seq for f in got] == [0, 1, 2, 3, 4, 5, 6, 7]


def test_without_a_camera_or_after_the_end_nothing_waits():
    assert FrameFeed(("es",)).until("es", 100.0) == []
    feed = FrameFeed(("es",))
    feed.add(_frame(0))
    feed.end()
    started = time.monotonic()
    assert [f.seq for f in feed.until("es", 100.0)] == [0]
    assert time.monotonic() - started < 0.5


def test_the_bot_without_server_credentials_stops_before_loading_any_model(monkeypatch, capsys):
    from streams.cli import main

    for k in ("LIVEDUB_LIVEKIT__API_KEY", "LIVEDUB_LIVEKIT__API_SECRET"):
        monkeypatch.delenv(k, raising=False)
    started = time.monotonic()
    assert main(["call", "--room", "r", "--to", "es"]) == 2
    assert time.monotonic() - started < 10
    assert "LIVEDUB_LIVEKIT__API_KEY and LIVEDUB_LIVEKIT__API_SECRET" in capsys.readouterr().err
