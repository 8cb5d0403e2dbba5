"""`livedub bench --transport live`: a call on the local LiveKit server, measured on the clients' clocks.

A speaker client plays the talking-face sample (repeated) into a room in real time; the bot
(`livedub call`, its own process, starting at `--delay`, default 3 s: the target) dubs it into
Spanish; a listener client records the Spanish tracks. Figures:

* ready_after_start: per segment, when its dub existed, from when its speech began (the bot's
  log): the least D that plays it on time. D ≥ segment length + the cutting pause + processing.
* mouth-to-ear: per segment, the end of its speech at the speaker's microphone to the end of its
  dub at the listener's ear (speech bursts matched by order, on both clients' clocks).
* D at the start and at the end (it rises for late segments), late segments, dropped steps.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from workers.errors import ConfigError
from workers.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
LIVEKIT = ROOT / "deploy" / "local" / "livekit.sh"
READY = re.compile(r"seq (\d+) \[([\d.]+)-([\d.]+) s\] ready ([\d.]+) s after its start was spoken \(D ([\d.]+) s\): "
                   r"(on time|LATE)")


def local_server_env() -> dict[str, str]:
    """Start the local LiveKit server if it is not running; its LIVEDUB_LIVEKIT__* variables."""
    up = subprocess.run(["bash", str(LIVEKIT), "start"], capture_output=True, text=True)
    if up.returncode != 0:
        raise ConfigError(f"the local LiveKit server did not start:\n{up.stderr[-2000:]}")
    out = subprocess.run(["bash", str(LIVEKIT.with_name("livedub-local.sh")), "env"], capture_output=True, text=True,
                         check=True).stdout
    return dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines()
                if line.startswith("export LIVEDUB_LIVEKIT__"))


def bursts(level: np.ndarray, starts: np.ndarray, on: float = 0.02, gap_s: float = 0.6,
           min_s: float = 0.3) -> list[tuple[float, float]]:
    """(start, end) wall times of speech bursts in 10 ms levels: above `on`, joined across gaps < gap_s."""
    out: list[list[float]] = []
    for t, loud in zip(starts, level > on, strict=True):
        if not loud:
            continue
        if out and t - out[-1][1] < gap_s:
            out[-1][1] = t + 0.01
        else:
            out.append([t, t + 0.01])
    return [(a, b) for a, b in out if b - a >= min_s]


async def _call(env: dict[str, str], media, room: str, delay_s: float) -> tuple[Any, float]:
    from livekit import rtc

    from workers.live.bot import track_name
    from workers.live.clients import in_room, publish, record
    from workers.live.tokens import room_token
    from workers.settings import LiveKitSettings

    creds = LiveKitSettings(api_key=env["LIVEDUB_LIVEKIT__API_KEY"], api_secret=env["LIVEDUB_LIVEKIT__API_SECRET"])
    url = env["LIVEDUB_LIVEKIT__URL"]
    listener, speaker = rtc.Room(), rtc.Room()
    rec, tasks = record(listener, track_name("speaker", "es", "audio"), track_name("speaker", "es", "video"))
    await listener.connect(url, room_token(creds, "listener", room))
    await in_room(listener, creds.identity, 300)  # the bot loads and warms its models first
    await speaker.connect(url, room_token(creds, "speaker", room))
    t0 = await publish(speaker, media)
    await asyncio.sleep(delay_s + 8.0)
    await speaker.disconnect()
    await listener.disconnect()
    for t in tasks:
        t.cancel()
    return rec, t0


def stage_means(*texts: str) -> dict[str, float]:
    """Mean service time per stage (s per call) from Prometheus texts: where a segment's time goes."""
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict[str, list[float]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            if fam.name == "livedub_stage_seconds":
                for smp in fam.samples:
                    if smp.name.endswith(("_sum", "_count")):
                        sums.setdefault(smp.labels["stage"], [0.0, 0.0])[smp.name.endswith("_count")] += smp.value
    return {k: round(v[0] / v[1], 3) for k, v in sums.items() if v[1]}


SEGMENT_FIELDS = ("min_segment_s", "max_segment_s", "pause_long_s", "pause_short_s", "search_window_s")


def _segmentation() -> dict[str, float]:
    from workers.settings import load_settings

    return load_settings().livekit.segment.model_dump(include=set(SEGMENT_FIELDS))


def run(out: Path, repeat: int = 3, delay_s: float = 3.0, *, transport: str = "embedded",
        bot_env: dict[str, str] | None = None) -> dict[str, Any]:
    """The call, the bot dubbing in process (`transport` embedded) or through workers already running
    (kafka: streams/live_bench.py starts them; `bot_env` names their topics); writes live[-kafka].json."""
    from workers.live.clients import RATE, Media
    from workers.media.sample import make_sample

    out.mkdir(parents=True, exist_ok=True)
    clip = out / "live-sample.mp4"
    make_sample(clip, seconds=8.0 * repeat)
    media = Media.from_file(clip)
    env = {**os.environ, **local_server_env(), **(bot_env or {})}
    name = "live" if transport == "embedded" else f"live-{transport}"
    log = out / f"{name}-bot.log"
    room = f"bench-{int(time.time())}"
    port = free_port()
    with open(log, "w") as f:
        bot = subprocess.Popen([sys.executable, "-m", "streams.cli", "call", "--room", room, "--to", "es",
                                "--delay", str(delay_s), "--metrics-port", str(port), "--transport", transport],
                               cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    try:
        rec, t0 = asyncio.run(_call(env, media, room, 12.0))
        import requests

        stages = stage_means(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
    finally:
        bot.terminate()
        bot.wait(30)
    ready = [(int(m[0]), float(m[1]), float(m[2]), float(m[3]), float(m[4]), m[5] == "LATE")
             for m in READY.findall(log.read_text())]
    if not ready:
        raise ConfigError(f"the bot dubbed no segment: see {log}")
    step = RATE // 100
    sent_level = np.array([np.sqrt(np.mean(media.audio[i:i + step] ** 2)) for i in range(0, len(media.audio), step)])
    spoken = bursts(sent_level, t0 + np.arange(len(sent_level)) / 100)
    heard = bursts(rec.audio_levels(), rec.audio_starts())
    m2e = [h[1] - s[1] for s, h in zip(spoken, heard, strict=False)]
    after = np.array([r[3] for r in ready])
    result = {
        "transport": transport,
        "segments": len(ready),
        "segment_s": [round(b - a, 3) for _, a, b, *_ in ready],
        "ready_after_start_p50_s": float(np.percentile(after, 50)),
        "ready_after_start_p95_s": float(np.percentile(after, 95)),
        "delay_start_s": delay_s,
        "delay_end_s": ready[-1][4],
        "late_segments": sum(r[5] for r in ready),
        "speech_bursts": {"spoken": len(spoken), "heard": len(heard)},
        "mouth_to_ear_p50_s": float(np.percentile(m2e, 50)) if m2e else None,
        "mouth_to_ear_p95_s": float(np.percentile(m2e, 95)) if m2e else None,
        "mouth_to_ear_s": [round(x, 3) for x in m2e],
        "stage_mean_s": stages,
        "segmentation": _segmentation(),
        "note": "2 cores shared by the LiveKit server, the bot and both clients; offline CPU models",
    }
    (out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    m2e_text = f"p50 {np.percentile(m2e, 50):.2f} s p95 {np.percentile(m2e, 95):.2f} s" if m2e else "not measured"
    print(f"{name}: {len(ready)} segments ready {result['ready_after_start_p50_s']:.2f} s (p50) / "
          f"{result['ready_after_start_p95_s']:.2f} s (p95) after their start; D {delay_s:g} -> "
          f"{result['delay_end_s']:g} s, {result['late_segments']} late; mouth-to-ear {m2e_text}")
    return result
