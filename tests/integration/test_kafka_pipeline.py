"""The Kafka path end to end: five `livedub worker` processes, `livedub publish` / `subscribe`.

Transport-level tests run the calibrated profile (fixed service times, no models); one test runs
the real stages on two concurrent live sessions and checks what a viewer gets, as tests/e2e does.
Every test has its own topic prefix (so its own consumer groups) and removes its topics and
registry subjects afterwards.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import requests
from confluent_kafka import Producer

from streams.codecs import decode, encode, load_schema
from streams.registry import SchemaRegistryClient
from streams.topics import HOPS, DeadLetter, Topics, value_subject
from tests.integration.kafka_io import (
    env_for,
    finish,
    livedub,
    publish,
    raw_session_records,
    session_records,
    stop,
    subscribe,
    wait_for,
)
from tests.integration.stage_workers import Workers
from tests.support.clips import make_clip
from workers.media.frames import decode_frame
from workers.media.reader import iter_audio, iter_video, probe
from workers.records import AudioChunk, DubbedFrame, DubbedSpeech, Transcript

if TYPE_CHECKING:  # fixtures from tests/integration/conftest.py
    from conftest import KafkaStack, PrometheusStack

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kafka


@pytest.fixture
def topics(unique_topics: Topics, registry_client: SchemaRegistryClient):
    """unique_topics, whose registry subjects are deleted afterwards too (workers register them)."""
    yield unique_topics
    for topic in unique_topics.all():
        registry_client.delete_subject(value_subject(topic))


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One LIVEDUB_CACHE_DIR for every worker of the session (models are unpacked there once)."""
    return tmp_path_factory.mktemp("livedub-cache")


@pytest.fixture(scope="module")
def tone_clip(tmp_path_factory) -> Path:
    """2 s, 160x120 @ 25 fps: 50 frames; with the calibrated profile one segment per audio chunk."""
    return make_clip(tmp_path_factory.mktemp("clips") / "tone.mp4", seconds=2.0, size=(160, 120))


def _frames(path: Path) -> list[np.ndarray]:
    return [decode_frame(f) for f in iter_video(path, "x")]


def _audio(path: Path, rate: int = 16000) -> np.ndarray:
    return np.concatenate([a for _, a in iter_audio(path, rate=rate, chunk_s=1.0)])


def _summary(out: str) -> tuple[int, int, int]:
    """(segments, frames, duplicates dropped) from `livedub subscribe`'s last line."""
    m = re.search(r"\((\d+) segments dubbed, (\d+) frames, (\d+) duplicates dropped\)", out)
    assert m, out
    return int(m[1]), int(m[2]), int(m[3])


def _chunks(out: str) -> int:
    """Audio chunks `livedub publish` sent (the calibrated segmenter cuts one segment per chunk)."""
    m = re.search(r"published session \S+: (\d+) audio chunks, (\d+) frames", out)
    assert m, out
    return int(m[1])


def _calibrated(kafka_stack: KafkaStack, topics: Topics, tmp_path: Path, model_cache: Path) -> Workers:
    return Workers(kafka_stack.env, topics.prefix, tmp_path / "logs", profile="calibrated", cache_dir=model_cache,
                   partitions=topics.partitions)


# -- livedub topics ----------------------------------------------------------------------------------

def test_topics_command_lists_topics_partitions_schemas_and_subjects(kafka_stack: KafkaStack, topics: Topics):
    env = env_for(kafka_stack.env, topics)
    before = livedub(env, "topics")
    assert before.returncode == 0, before.stderr
    for hop in HOPS:
        assert re.search(rf"^{re.escape(topics.name(hop))}\s+missing\s+\w+\s+"
                         rf"{re.escape(value_subject(topics.name(hop)))} \(not registered\)$", before.stdout, re.M)

    created = livedub(env, "topics", "--create")
    assert created.returncode == 0, created.stderr
    assert "created: " + ", ".join(sorted(topics.all())) in created.stdout
    for topic, schema in topics.schemas().items():
        m = re.search(rf"^{re.escape(topic)}\s+12 partitions\s+{schema}\s+{re.escape(value_subject(topic))} "
                      r"\(id (\d+) v1\)$", created.stdout, re.M)
        assert m, f"{topic} not listed right:\n{created.stdout}"
    again = livedub(env, "topics", "--create")  # idempotent
    assert "created: nothing (all exist)" in again.stdout
    assert again.stdout.splitlines()[1:] == created.stdout.splitlines()[1:]


# -- dead letters ------------------------------------------------------------------------------------

def test_bad_record_goes_to_the_dlq_and_the_pipeline_goes_on(kafka_stack: KafkaStack, topics: Topics,
                                                             registry_client, tone_clip: Path, tmp_path: Path,
                                                             model_cache: Path):
    env = env_for(kafka_stack.env, topics, LIVEDUB_RUNNER__AUDIO_CHUNK_S="0.5")
    garbage = {b"not avro at all": "magic byte", b"\x00\x00\x0f\x42\x3f\x01\x02": "unknown to the registry"}
    with _calibrated(kafka_stack, topics, tmp_path, model_cache) as w:
        w.start()
        p = Producer({"bootstrap.servers": kafka_stack.bootstrap, "partitioner": "murmur2_random"})
        for value in garbage:
            p.produce(topics.segments, key=b"broken-session", value=value)
        assert p.flush(10) == 0

        sub = subscribe(env, "after-dlq", "es", tmp_path / "after.mp4")
        try:
            n = _chunks(finish(publish(env, tone_clip, "after-dlq", ["es"]), 60))
            segments, frames, _ = _summary(finish(sub, 120))
        finally:
            stop(sub)
        assert (segments, frames) == (n, 50)  # a session published after the bad records completes
        assert sum(1 for _ in iter_video(tmp_path / "after.mp4", "x")) == 50
        asr_metrics = w.metrics("asr")

    letters = [decode(v, registry_client) for _, v in
               raw_session_records(kafka_stack.bootstrap, topics, topics.dlq, "broken-session")]
    assert len(letters) == 2 and all(isinstance(d, DeadLetter) for d in letters)
    for d in letters:
        assert d.stage == "asr" and d.topic == topics.segments and d.error_type == "SchemaError"
        assert d.original_key == b"broken-session"
        assert garbage[d.original_value] in d.error, d.error  # the error, and the original bytes to replay
    assert 'livedub_dlq_records_total{stage="asr"} 2.0' in asr_metrics
    assert 'livedub_records_failed_total{error="SchemaError",stage="asr"} 2.0' in asr_metrics


# -- restart: committed offsets, at-least-once, idempotent subscriber ---------------------------------

@pytest.mark.parametrize("stage,how", [("asr", "SIGTERM"), ("tts", "SIGKILL")])
def test_worker_restart_resumes_from_committed_offsets(stage: str, how: str, kafka_stack: KafkaStack, topics: Topics,
                                                       registry_client, tone_clip: Path, tmp_path: Path,
                                                       model_cache: Path):
    env = env_for(kafka_stack.env, topics)  # 0.1 s chunks: 20 segments, ~0.4 s each in asr and tts
    session = f"restart-{stage}"
    out_topic = topics.transcripts if stage == "asr" else topics.dubbed_speech
    with _calibrated(kafka_stack, topics, tmp_path, model_cache) as w:
        w.start()
        sub = subscribe(env, session, "es", tmp_path / "out.mp4")
        try:
            n_segments = _chunks(finish(publish(env, tone_clip, session, ["es"]), 60))
            wait_for(lambda: len(raw_session_records(kafka_stack.bootstrap, topics, out_topic, session)) >= 5,
                     60, f"5 outputs of {stage}")
            if how == "SIGTERM":  # mid-session: Faust stops the agent and commits what was acked
                assert w.stop(stage) == {stage: 0}, w.log_tail(stage)
            else:  # a crash: outputs sent since the last commit are sent again after the restart
                w.kill(stage)
            done = len(raw_session_records(kafka_stack.bootstrap, topics, out_topic, session))
            assert done < n_segments + 1, "the session was over before the worker stopped"
            w.start(stage)
            segments, frames, _ = _summary(finish(sub, 180))
        finally:
            stop(sub)
        assert w.starts[stage] == 2 and ("Stopping" in w.log(stage)) == (how == "SIGTERM")

    # Nothing lost: every segment made it through the restarted stage and into the output once.
    speech = session_records(kafka_stack.bootstrap, registry_client, topics, topics.dubbed_speech, session)
    seqs = [s.seq for s in speech if s.seq >= 0]
    assert sorted(set(seqs)) == list(range(n_segments))
    assert (segments, frames) == (n_segments, 50)
    out = _frames(tmp_path / "out.mp4")
    assert len(out) == 50
    video = session_records(kafka_stack.bootstrap, registry_client, topics, topics.dubbed_video, session)
    body = [f.frame_seq for f in video if isinstance(f, DubbedFrame) and f.frame_seq >= 0]
    assert sorted(set(body)) == list(range(50))
    # Replays after a restart (at-least-once) are dropped by lipsync and by the subscriber.
    print(f"\n{stage} restart: {len(seqs) - n_segments} replayed segments, {len(body) - 50} replayed frames")

    # The subscriber is idempotent by (seq, frame_seq): feed it the session again with every record
    # duplicated and windows of earlier records replayed, under a new session id.
    replay = f"{session}-replayed"
    ids = {t: registry_client.register(value_subject(t), load_schema(topics.schema_name(t)))
           for t in (topics.media_audio, topics.dubbed_speech, topics.dubbed_video)}
    p = Producer({"bootstrap.servers": kafka_stack.bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
    for t in ids:
        recs = [decode(v, registry_client).replace(session_id=replay)
                for _, v in raw_session_records(kafka_stack.bootstrap, topics, t, session)]
        stream = []
        for i, r in enumerate(recs):
            stream += [r, r] + (recs[max(0, i - 5):i] if i % 7 == 6 else [])
        for r in stream:
            p.produce(t, key=replay.encode(), value=encode(r, ids[t]))
    assert p.flush(30) == 0
    again = finish(subscribe(env, replay, "es", tmp_path / "replayed.mp4"), 120)
    segments2, frames2, dups = _summary(again)
    assert (segments2, frames2) == (n_segments, 50) and dups > 100
    replayed = _frames(tmp_path / "replayed.mp4")
    assert len(replayed) == 50
    assert max(np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(out, replayed, strict=True)) < 1.0
    a, b = _audio(tmp_path / "out.mp4"), _audio(tmp_path / "replayed.mp4")
    assert abs(len(a) - len(b)) < 400 and np.abs(a[:min(len(a), len(b))] - b[:min(len(a), len(b))]).mean() < 1e-3


# -- Prometheus ----------------------------------------------------------------------------------------

def _prom(url: str, query: str) -> list[dict]:
    r = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


def test_prometheus_scrapes_the_workers(kafka_stack: KafkaStack, prometheus_stack: PrometheusStack,
                                        topics: Topics, tone_clip: Path, tmp_path: Path, model_cache: Path):
    env = env_for(kafka_stack.env, topics, LIVEDUB_RUNNER__AUDIO_CHUNK_S="0.25")
    with _calibrated(kafka_stack, topics, tmp_path, model_cache) as w:
        w.start()
        prometheus_stack.set_targets(*w.targets())
        try:
            wait_for(lambda: len(_prom(prometheus_stack.url, 'up{job="livedub"} == 1')) == 5, 60,
                     "Prometheus to scrape all five workers")
            sub = subscribe(env, "prom", "es", tmp_path / "prom.mp4")
            try:
                # at real-time pace, so records spread over several 1 s scrapes and rates show
                n = _chunks(finish(publish(env, tone_clip, "prom", ["es"], fast=False), 60))
                finish(sub, 120)
            finally:
                stop(sub)
            url = prometheus_stack.url
            hops = {("session.control", "segment"), ("media.audio", "segment"), ("segments", "asr"),
                    ("transcripts", "translate"), ("translations", "tts"), ("media.video", "lipsync"),
                    ("dubbed.speech", "lipsync")}

            def hop_labels(query: str) -> set[tuple[str, str]]:
                return {(r["metric"]["src"], r["metric"]["dst"]) for r in _prom(url, query)}

            # every hop was counted (a hop with one record, like session.control, has no rate)
            wait_for(lambda: hop_labels('livedub_hop_latency_seconds_count{job="livedub"} > 0') == hops, 30,
                     "hop latency counts for every hop")
            # the media hops carried records across several scrapes: their rate and quantiles show
            busy = hops - {("session.control", "segment")}
            wait_for(lambda: hop_labels('sum by (src, dst) (rate(livedub_hop_latency_seconds_bucket'
                                        '{job="livedub",le="+Inf"}[1m])) > 0') >= busy, 30,
                     "hop latency rates")
            p99 = _prom(url, 'histogram_quantile(0.99, sum by (le, src, dst) '
                             '(rate(livedub_hop_latency_seconds_bucket{job="livedub"}[1m])))')
            p99 = {(r["metric"]["src"], r["metric"]["dst"]): float(r["value"][1]) for r in p99}
            assert all(0 <= p99[h] <= 2.5 for h in busy), p99
            stages = _prom(url, 'livedub_stage_seconds_count{job="livedub",backend="calibrated"} > 0')
            assert {(r["metric"]["stage"], r["metric"]["worker"]) for r in stages} == {
                (s, s) for s in ("segment", "asr", "translate", "tts", "lipsync")}
            e2e = wait_for(lambda: _prom(url, 'livedub_e2e_latency_seconds_count{job="livedub"} > 0'), 30,
                           "the e2e latency histogram")
            assert [(r["metric"]["target_lang"], r["metric"]["worker"], r["value"][1]) for r in e2e] == [
                ("es", "lipsync", str(n))]  # one per dubbed segment
            assert _prom(url, "histogram_quantile(0.99, sum by (le) "
                              '(rate(livedub_e2e_latency_seconds_bucket{job="livedub",target_lang="es"}[1m])))')
        finally:
            prometheus_stack.set_targets()
