"""`livedub bench --transport live-kafka`: the live call benchmark with the bot as a producer and
consumer of the five Kafka workers (local subprocesses, fresh topics), on the clients' clocks.

The workers get the calls' segmentation and Whisper window (`LIVEDUB_SEGMENT__*`,
`LIVEDUB_ASR__WINDOW_S` from `LiveKitSettings`), as a deployment serving calls would set them,
so the two transports dub the same segments the same way. Writes live-kafka.json, with the ratio
to live.json (the embedded run) when the output folder has one.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from streams.local_stack import ensure_kafka
from streams.local_workers import LocalWorkers
from streams.topics import admin_client, topics_from_settings
from workers.bench import live
from workers.settings import load_settings


def call_env(prefix: str) -> dict[str, str]:
    """What the workers (and the bot) need to dub calls as the embedded bot does, on fresh topics."""
    lk = load_settings().livekit
    env = {"LIVEDUB_TOPICS__PREFIX": prefix, "LIVEDUB_ASR__WINDOW_S": str(lk.asr_window_s)}
    env |= {f"LIVEDUB_SEGMENT__{f.upper()}": str(getattr(lk.segment, f)) for f in live.SEGMENT_FIELDS}
    return env


def run(out: Path, repeat: int = 3, delay_s: float = 3.0) -> dict[str, Any]:
    ensure_kafka(load_settings())
    prefix = f"livedub-live-{uuid.uuid4().hex[:6]}."
    env = call_env(prefix)
    settings = load_settings(topics={"prefix": prefix})
    try:
        with LocalWorkers(env, out / "logs-live-kafka") as workers:
            result = live.run(out, repeat, delay_s, transport="kafka", bot_env=env)
            result["stage_mean_s"] = live.stage_means(*workers.metrics_text().values())
    finally:
        admin_client(settings.kafka).delete_topics(topics_from_settings(settings).all())
    result["segmentation"] = {k.removeprefix("LIVEDUB_SEGMENT__").lower(): float(v) for k, v in env.items()
                              if k.startswith("LIVEDUB_SEGMENT__")}
    embedded = out / "live.json"
    if embedded.exists():
        e = json.loads(embedded.read_text())
        result["vs_embedded"] = {k: round(result[k] / e[k], 3) for k in (
            "ready_after_start_p50_s", "ready_after_start_p95_s", "mouth_to_ear_p50_s", "mouth_to_ear_p95_s",
            "delay_end_s") if result.get(k) and e.get(k)}
        print("live-kafka / embedded: " + ", ".join(f"{k} x{v}" for k, v in result["vs_embedded"].items()), flush=True)
    (out / "live-kafka.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
