"""`livedub bench --transport kafka`: the same profiles through a real broker and five workers.

For each profile the five stage workers run as processes over fresh topics; the
feed is published like a live call (realtime) and all at once (burst); a
consumer of the dubbed video marks when each segment's last frame arrives.
Per-hop overhead is read from the workers' `livedub_hop_latency_seconds`
histograms (produce stamp to consume, realtime run only, so queueing behind a
busy stage is not counted) and compared with the embedded pipelined runner.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from monitoring.histograms import histogram, histogram_quantile
from streams.codecs import decode
from streams.local_workers import LocalWorkers
from streams.publish import RecordProducer
from streams.registry import SchemaRegistry
from streams.subscribe import partition_for
from streams.topics import admin_client, client_config, topics_from_settings
from workers.bench.calibrated import SyntheticFrames
from workers.bench.run import Feed, calibrated_feed, percentile, real_feed, real_input, run_profiles, write_results
from workers.media.frames import decode_frame, encode_frame
from workers.pipeline import Pipeline
from workers.records import AudioChunk, DubbedFrame, SessionControl
from workers.settings import Settings, load_settings
from workers.streaming import END, audio_end, video_end

log = logging.getLogger(__name__)


def _frames_for(feed: Feed, session_id: str):
    if feed.frames is SyntheticFrames:
        return SyntheticFrames(session_id, fps=25.0, size=16)
    return feed.frames(*feed.frame_args, session_id)


def _run(feed: Feed, settings: Settings, realtime: bool, lang: str = "es", sid: str | None = None) -> dict[str, Any]:
    """Publish one session and time each segment's output; returns latency/throughput figures."""
    sid = sid or f"bench-{uuid.uuid4().hex[:8]}"
    ended: list[float] = []
    topics = topics_from_settings(settings)
    done: dict[int, tuple[float, float]] = {}
    finished = threading.Event()
    registry = SchemaRegistry.from_settings(settings.schema_registry)
    consumer = Consumer({**client_config(settings.kafka), "group.id": f"bench-{sid}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 5})
    consumer.assign([TopicPartition(topics.dubbed_video, partition_for(sid.encode(), topics.partitions),
                                    OFFSET_BEGINNING)])

    def consume() -> None:
        while not finished.is_set():
            msg = consumer.poll(0.05)
            if msg is None or msg.error() or msg.key() != sid.encode():
                continue
            rec = decode(msg.value(), registry)
            if isinstance(rec, DubbedFrame) and rec.target_lang == lang:
                if rec.frame_seq == END:
                    ended.append(time.time())
                    finished.set()
                elif rec.seq >= 0 and rec.last_in_segment:
                    done[rec.seq] = (time.time(), rec.speech_end_at)

    # What a live client sends, in the order it becomes available: frames at their pts (JPEG-encoded
    # beforehand, as a camera would), each audio chunk when the audio that closes it has arrived.
    frames = _frames_for(feed, sid)
    events: list[tuple[float, Any]] = []
    for c in feed.chunks:
        end = c.pts_s + c.duration_s
        events += [(f.pts_s, f.replace(encoding="jpeg", data=encode_frame(decode_frame(f), "jpeg")))
                   for f in frames.until(end)]
        events.append((c.captured_at, c.replace(session_id=sid)))
    frames.close()
    events.sort(key=lambda e: e[0])  # stable: a frame and the chunk it precedes keep their order
    t = threading.Thread(target=consume, daemon=True)
    t.start()
    rp = RecordProducer(settings, topics)
    try:
        rp.send(SessionControl(sid, "start", (lang,), None))
        t0_mono, t0_wall = time.monotonic(), time.time()
        for at, rec in events:
            if realtime and (wait := t0_mono + at - time.monotonic()) > 0:
                time.sleep(wait)
            if isinstance(rec, AudioChunk):
                rec = rec.replace(captured_at=t0_wall + (at if realtime else 0.0))
            rp.send(rec)
        last = feed.chunks[-1].pts_s + feed.chunks[-1].duration_s
        rp.send(audio_end(sid, last))
        rp.send(video_end(sid, last))
        rp.flush()
        if not finished.wait(600):
            log.warning("kafka bench: session %s did not finish", sid)
    finally:
        finished.set()
        t.join(5)
        consumer.close()
        rp.close()
        registry.close()
    # the feed has one chunk per segment (real_feed cuts it where the segmenter closes each one),
    # so segment i became available when chunk i was released, as in the embedded runs
    avail = {i: t0_wall + (c.captured_at if realtime else 0.0) for i, c in enumerate(feed.chunks)}
    lat = [d - avail.get(seq, speech_end) for seq, (d, speech_end) in sorted(done.items())]
    from_speech = [d - speech_end for _, (d, speech_end) in sorted(done.items())]
    ends = sorted(d for d, _ in done.values())
    span = ends[-1] - ends[0] if len(ends) > 1 else float("nan")
    out: dict[str, Any] = {"segments": len(done), "session_s": ended[0] - t0_wall if ended else float("nan")}
    if realtime:
        out |= {"e2e_p50_s": percentile(lat, 0.5), "e2e_p95_s": percentile(lat, 0.95), "latency_per_segment_s": lat,
                "from_speech_end_p50_s": percentile(from_speech, 0.5)}
    else:
        out["throughput_sps"] = (len(ends) - 1) / span if span and span > 0 else float("nan")
    return out


def _hop_buckets(texts: dict[str, str]) -> dict[tuple[str, str], dict[float, float]]:
    """Cumulative hop-latency bucket counts per (src, dst), summed over workers."""
    acc: dict[tuple[str, str], dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for text in texts.values():
        for labels, buckets in histogram(text, "livedub_hop_latency_seconds").items():
            lab = dict(labels)
            for le, count in buckets.items():
                acc[(lab["src"], lab["dst"])][le] += count
    return acc


def _diff(after: dict, before: dict) -> dict:
    return {k: {le: c - before.get(k, {}).get(le, 0.0) for le, c in v.items()} for k, v in after.items()}


def kafka_profile(name: str, feed: Feed, workdir: Path, embedded: dict[str, Any]) -> dict[str, Any]:
    prefix = f"livedub-bench-{uuid.uuid4().hex[:6]}."
    settings = load_settings(topics={"prefix": prefix})
    env = {"LIVEDUB_TOPICS__PREFIX": prefix}
    workers = LocalWorkers(env, workdir / f"logs-{name}", profile="calibrated" if name == "calibrated" else "real")
    with workers:
        # warm-up: consumers assigned, connections and fetch sessions open before anything is timed
        _run(Feed(feed.chunks[:2], feed.frames, feed.frame_args), settings, realtime=False)
        before = _hop_buckets(workers.metrics_text())
        rt = _run(feed, settings, realtime=True)
        mid = _hop_buckets(workers.metrics_text())
        burst = _run(feed, settings, realtime=False)
    admin_client(settings.kafka).delete_topics(topics_from_settings(settings).all())
    hops = _diff(mid, before)
    all_hops: dict[float, float] = defaultdict(float)
    for b in hops.values():
        for le, c in b.items():
            all_hops[le] += c
    emb = embedded["pipelined"]
    return {
        "e2e_p50_s": rt["e2e_p50_s"],
        "e2e_p95_s": rt["e2e_p95_s"],
        "from_speech_end_p50_s": rt["from_speech_end_p50_s"],
        "throughput_sps": burst["throughput_sps"],
        "segments": rt["segments"],
        "latency_per_segment_s": rt["latency_per_segment_s"],
        "hop_p50_s": histogram_quantile(0.5, all_hops),
        "hop_p99_s": histogram_quantile(0.99, all_hops),
        "hops": {f"{s}->{d}": {"p50_s": histogram_quantile(0.5, b), "p99_s": histogram_quantile(0.99, b),
                               "count": b.get(float("inf"), 0.0)} for (s, d), b in sorted(hops.items())},
        "e2e_p50_over_embedded": rt["e2e_p50_s"] / emb["e2e_p50_s"],
    }


def add_kafka(result: dict[str, Any], out: Path, *, segments: int = 40, repeat: int = 3) -> None:
    """Run every profile already in `result` through Kafka and add a `kafka` section to it."""
    result["transport"] = "embedded+kafka"
    for name, prof in result["profiles"].items():
        if name == "calibrated":
            feed = calibrated_feed(segments)
        else:
            settings = load_settings()
            pipe = Pipeline.build(settings, names=("segment",))
            pipe.load()
            feed = real_feed(real_input(out, repeat), settings, pipe)
        prof["kafka"] = kafka_profile(name, feed, out, prof)
        k = prof["kafka"]
        print(f"[{name}] kafka: e2e p50 {k['e2e_p50_s']:.3f}s (x{k['e2e_p50_over_embedded']:.3f} of embedded), "
              f"hop p50 {k['hop_p50_s'] * 1000:.2f} ms p99 {k['hop_p99_s'] * 1000:.2f} ms, "
              f"throughput {k['throughput_sps']:.2f} seg/s")


def run_bench(out: Path, profiles: str = "all", segments: int = 40, repeat: int = 3) -> dict[str, Any]:
    """`livedub bench --transport kafka`: the embedded profiles, then each through Kafka."""
    result = run_profiles(out, profiles, segments, repeat)
    add_kafka(result, out, segments=segments, repeat=repeat)
    write_results(result, out)
    return result
