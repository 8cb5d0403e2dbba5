"""Latency on a client's clock: `livedub bench --client`.

A foreign client measured 4.5-8 s from sending a segment's last audio to receiving its dubbed
speech, where the README reported about 1 s "from availability". This publishes the real sample
the way such a client does (`livedub publish`: 0.1 s audio chunks and JPEG frames at real-time
pace, each chunk stamped when sent), through the five real workers, first on workers that have
just started (cold, as that client's first session was) and then again (warm), and reads every
hop of the session back. Per segment, from the wall time its speech ended (`speech_end_at`, the
send stamp of the chunk holding the end of speech):

    pause     the segmenter closing it (it must hear the pause that ends it)
    asr, mt   the Transcript and the Translation produced (queue + model + transport)
    tts       the DubbedSpeech produced
    speech    the DubbedSpeech received by the client: the client's figure
    video     the segment's last dubbed frame received by the client

All stamps come from one machine's wall clock. Writes OUT/client_latency.json.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.codecs import decode
from streams.local_workers import LocalWorkers
from streams.publish import publish
from streams.registry import SchemaRegistry
from streams.subscribe import partition_for
from streams.topics import admin_client, client_config, topics_from_settings
from workers.bench.run import machine, percentile, real_input
from workers.records import DubbedFrame, DubbedSpeech, SpeechSegment, Transcript, Translation
from workers.settings import Settings, load_settings
from workers.streaming import END

PHASES = ("pause", "asr", "mt", "tts", "speech", "video")


class _Reader(threading.Thread):
    """Every hop of one session, as it arrives: (record, client receive time) per type and seq."""

    def __init__(self, settings: Settings, sid: str, lang: str) -> None:
        super().__init__(daemon=True)
        self.sid, self.lang = sid, lang
        topics = topics_from_settings(settings)
        part = partition_for(sid.encode(), topics.partitions)
        names = (topics.segments, topics.transcripts, topics.translations, topics.dubbed_speech, topics.dubbed_video)
        self.registry = SchemaRegistry.from_settings(settings.schema_registry)
        self.consumer = Consumer({**client_config(settings.kafka), "group.id": f"client-{sid}",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 5})
        self.consumer.assign([TopicPartition(t, part, OFFSET_BEGINNING) for t in names])
        self.seen: dict[tuple[str, int], tuple[Any, float]] = {}
        self.finished = threading.Event()

    def run(self) -> None:
        while not self.finished.is_set():
            msg = self.consumer.poll(0.05)
            if msg is None or msg.error() or msg.key() != self.sid.encode():
                continue
            at = time.time()
            rec = decode(msg.value(), self.registry)
            if isinstance(rec, DubbedFrame):
                if rec.target_lang != self.lang:
                    continue
                if rec.frame_seq == END:
                    self.finished.set()
                elif rec.seq >= 0 and rec.last_in_segment:
                    self.seen.setdefault(("video", rec.seq), (rec, at))
            elif isinstance(rec, (SpeechSegment, Transcript, Translation, DubbedSpeech)) and rec.seq >= 0 \
                    and getattr(rec, "target_lang", self.lang) == self.lang:
                self.seen.setdefault((type(rec).__name__, rec.seq), (rec, at))

    def close(self) -> None:
        self.finished.set()
        self.join(5)
        self.consumer.close()
        self.registry.close()


def _segments(reader: _Reader) -> list[dict[str, float]]:
    out = []
    for (kind, seq), (seg, _) in sorted(reader.seen.items()):
        if kind != "SpeechSegment":
            continue
        got = {k: reader.seen.get((k, seq)) for k in ("Transcript", "Translation", "DubbedSpeech", "video")}
        if any(v is None for v in got.values()):
            continue
        t0 = seg.speech_end_at
        out.append({
            "seq": seq, "length_s": seg.end_s - seg.start_s,
            "pause": seg.produced_at - t0,
            "asr": got["Transcript"][0].produced_at - t0,
            "mt": got["Translation"][0].produced_at - t0,
            "tts": got["DubbedSpeech"][0].produced_at - t0,
            "speech": got["DubbedSpeech"][1] - t0,
            "video": got["video"][1] - t0,
        })
    return out


def _session(clip: Path, settings: Settings, lang: str) -> dict[str, Any]:
    sid = f"client-{uuid.uuid4().hex[:8]}"
    reader = _Reader(settings, sid, lang)
    reader.start()
    try:
        publish(clip, sid, [lang], settings, pace=True)
        if not reader.finished.wait(300):
            raise TimeoutError(f"session {sid}: no end of dubbed video in 300 s after publishing")
    finally:
        reader.close()
    segs = _segments(reader)
    summary: dict[str, Any] = {"segments": len(segs),
                               "length_s_mean": sum(s["length_s"] for s in segs) / max(1, len(segs))}
    for phase in PHASES:  # cumulative: each from the end of speech
        xs = [s[phase] for s in segs]
        summary[phase] = {"p50_s": percentile(xs, 0.5), "p95_s": percentile(xs, 0.95), "max_s": max(xs)}
    summary["per_segment"] = segs
    return summary


def run(out: Path, repeat: int = 3, lang: str = "es") -> dict[str, Any]:
    prefix = f"livedub-client-{uuid.uuid4().hex[:6]}."
    settings = load_settings(topics={"prefix": prefix})
    clip = real_input(out, repeat)
    result: dict[str, Any] = {"machine": machine(), "clip": str(clip), "chunk_s": settings.runner.audio_chunk_s}
    with LocalWorkers({"LIVEDUB_TOPICS__PREFIX": prefix}, out / "logs-client", profile="real"):
        for name in ("cold", "warm"):
            r = result[name] = _session(clip, settings, lang)
            print(f"[client] {name}: {r['segments']} segments of {r['length_s_mean']:.1f} s; from the end of speech "
                  + ", ".join(f"{p} {r[p]['p50_s']:.2f}/{r[p]['p95_s']:.2f}" for p in PHASES) + " s (p50/p95)")
    admin_client(settings.kafka).delete_topics(topics_from_settings(settings).all())
    out.mkdir(parents=True, exist_ok=True)
    (out / "client_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
