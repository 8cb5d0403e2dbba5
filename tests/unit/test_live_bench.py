"""The live benchmark's readings: speech bursts from 10 ms levels, and the bot's per-segment log line
(the one PlayoutSink writes) parsed back."""

from __future__ import annotations

import logging

import numpy as np

from workers.bench.live import READY, bursts
from workers.live.feeds import PlayoutSink
from workers.live.playout import RATE, Playout
from workers.records import DubbedSpeech, float_to_pcm


def test_bursts_join_short_gaps_and_drop_clicks():
    level = np.zeros(300)
    level[10:60] = 0.1  # 0.1-0.6 s
    level[80:120] = 0.1  # after a 0.2 s gap: the same burst
    level[190:193] = 0.5  # a 30 ms click: not speech
    level[260:290] = 0.1
    got = bursts(level, 100.0 + np.arange(300) / 100)
    assert [(round(a - 100, 2), round(b - 100, 2)) for a, b in got] == [(0.1, 1.2), (2.6, 2.9)]


def test_the_bench_reads_the_line_the_bot_logs_for_each_segment(caplog):
    p = Playout(("es",), 3.0, max_delay_s=6.0)
    p.add_audio(np.zeros(RATE, np.float32), 1000.0)
    sp = DubbedSpeech("s", 4, 1.5, 2.5, "es", "hola", RATE, float_to_pcm(np.zeros(RATE, np.float32)), 25.0, (), 0.0)
    with caplog.at_level(logging.INFO, logger="workers.live"):
        PlayoutSink(p, "es").speech(sp)
    (m,) = READY.findall(caplog.text)
    assert m[0] == "4" and (float(m[1]), float(m[2])) == (1.5, 2.5) and float(m[4]) == 3.0
    assert m[5] == "on time"  # playout had not reached it (late is against playout, not the wall clock)


def test_the_kafka_workers_of_the_live_bench_dub_as_the_embedded_bot_does(monkeypatch):
    """Their environment names real settings and carries the calls' segmentation and Whisper window."""
    from streams.live_bench import call_env
    from workers.settings import load_settings, unknown_env

    env = call_env("bench.")
    assert unknown_env(env) == []
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    worker, calls = load_settings(), load_settings().livekit
    assert worker.topics.prefix == "bench." and worker.asr.window_s == calls.asr_window_s
    for f in ("min_segment_s", "max_segment_s", "pause_long_s", "pause_short_s", "search_window_s"):
        assert getattr(worker.segment, f) == getattr(calls.segment, f), f
