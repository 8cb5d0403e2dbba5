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
from streams.registry import SchemaRegistry
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
from workers.records import DubbedFrame, DubbedSpeech
from workers.streaming import is_end
from workers.topology import DEFAULT

if TYPE_CHECKING:  # fixtures from tests/integration/conftest.py
    from conftest import KafkaStack, PrometheusStack

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kafka


@pytest.fixture
def topics(unique_topics: Topics, registry_client: SchemaRegistry):
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

# stage -> (its output hop, outputs of the session to wait for before stopping it)
RESTART_AFTER = {"segment": ("segments", 5), "asr": ("transcripts", 5), "tts": ("dubbed.speech", 5),
                 "lipsync": ("dubbed.video", 12)}


@pytest.mark.parametrize("stage,how", [("segment", "SIGTERM"), ("segment", "SIGKILL"), ("asr", "SIGTERM"),
                                       ("tts", "SIGKILL"), ("lipsync", "SIGTERM"),
                                       ("lipsync", "SIGKILL")])
def test_worker_restart_resumes_from_committed_offsets(stage: str, how: str, kafka_stack: KafkaStack, topics: Topics,
                                                       registry_client, tone_clip: Path, tmp_path: Path,
                                                       model_cache: Path):
    """Stop a worker mid-session and start it again: the session completes with nothing lost and
    every hop carries each seq once: what the worker had written before it died is read back from
    its output topic and not written again (streams/marks.py). Before that, a SIGKILL of the
    segment worker replayed the open session and seqs 0 and 1 came twice on every later hop.

    Stateless stages (asr, tts) simply resume from their committed offsets. The stateful ones
    (segment: the open session and its audio; lipsync: buffered frames and speech) commit only
    what their state no longer needs, so the restarted worker rebuilds it from the replay.
    """
    env = env_for(kafka_stack.env, topics)  # 0.1 s chunks: one calibrated segment each, ~0.4 s in asr/tts/lipsync
    session = f"restart-{stage}"
    hop, after = RESTART_AFTER[stage]
    out_topic = topics.name(hop)

    def outputs() -> list:
        return session_records(kafka_stack.bootstrap, registry_client, topics, out_topic, session)

    with _calibrated(kafka_stack, topics, tmp_path, model_cache) as w:
        w.start()
        sub = subscribe(env, session, "es", tmp_path / "out.mp4")
        # segment is quick: publish at real-time pace so the session is still going when it stops
        pub = publish(env, tone_clip, session, ["es"], fast=stage != "segment")
        try:
            wait_for(lambda: len(outputs()) >= after, 60, f"{after} outputs of {stage}")
            if how == "SIGTERM":  # mid-session: Faust stops the agent and commits what was acked
                assert w.stop(stage) == {stage: 0}, w.log_tail(stage)
            else:  # a crash: outputs sent since the last commit are sent again after the restart
                w.kill(stage)
            assert not any(is_end(r) for r in outputs()), "the session was over before the worker stopped"
            n_segments = _chunks(finish(pub, 60))
            w.start(stage)
            segments, frames, _ = _summary(finish(sub, 180))
        finally:
            stop(sub, pub)
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
    # Effectively once: no hop carries a seq twice (the consumer here is read_committed).
    for hop_name in ("segments", "transcripts", "translations", "dubbed.speech"):
        got = [r.seq for r in session_records(kafka_stack.bootstrap, registry_client, topics, topics.name(hop_name),
                                              session)]
        assert sorted(got) == sorted(set(got)), f"{hop_name}: seqs written twice after {how} of {stage}: {got}"
    assert sorted(body) == list(range(50)), f"dubbed.video: frames written twice: {sorted(body)}"
    if stage != "asr":
        return

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
                published = finish(publish(env, tone_clip, "prom", ["es"], fast=False), 60)
                n = _chunks(published)
                frames = int(re.search(r"(\d+) frames", published)[1])
                finish(sub, 120)
            finally:
                stop(sub)
            url = prometheus_stack.url
            hops = {(hop, stage) for stage in DEFAULT.names for hop in DEFAULT.inputs(stage)}

            def hop_labels(query: str) -> set[tuple[str, str]]:
                return {(r["metric"]["src"], r["metric"]["dst"]) for r in _prom(url, query)}

            # every hop was counted (a hop with one record, like session.control, has no rate)
            wait_for(lambda: hop_labels('livedub_hop_latency_seconds_count{job="livedub"} > 0') >= hops, 30,
                     "hop latency counts for every hop")
            # the media hops carried records across several scrapes: their rate and quantiles show
            busy = hops - {("session.control", "segment")}
            wait_for(lambda: hop_labels('sum by (src, dst) (rate(livedub_hop_latency_seconds_bucket'
                                        '{job="livedub",le="+Inf"}[1m])) > 0') >= busy, 30,
                     "hop latency rates")
            # One observation per record that crossed the hop: the calibrated segmenter cuts one segment
            # per chunk, so each segment hop carries n records and an end marker; the control hop the
            # start and stop, read by the segmenter and by lip sync.
            expected = {("media.audio", "segment"): n + 1, ("media.video", "lipsync"): frames + 1,
                        ("session.control", "segment"): 2, ("session.control", "lipsync"): 2,
                        **{(DEFAULT.main_input(s), s): n + 1 for s in ("asr", "translate", "tts", "lipsync")}}
            def counts() -> dict[tuple[str, str], float | None]:
                got = {(r["metric"]["src"], r["metric"]["dst"]): float(r["value"][1])
                       for r in _prom(url, 'sum by (src, dst) (livedub_hop_latency_seconds_count{job="livedub"})')}
                return {h: got.get(h) for h in expected}

            try:  # the last records reach Prometheus with the next scrape
                wait_for(lambda: counts() == expected, 30, "one hop observation per record")
            finally:
                assert counts() == expected
            # Transport, not the wait behind a busy stage: each calibrated stage takes 50-400 ms per
            # record and segments arrive ten times a second, so a hop stamped when the agent takes
            # the record (Faust's time_in) would show hundreds of milliseconds here.
            p99 = _prom(url, 'histogram_quantile(0.99, sum by (le, src, dst) '
                             '(rate(livedub_hop_latency_seconds_bucket{job="livedub"}[1m])))')
            p99 = {(r["metric"]["src"], r["metric"]["dst"]): float(r["value"][1]) for r in p99}
            assert all(p99[h] < 0.1 for h in busy), p99
            stages = _prom(url, 'livedub_stage_seconds_count{job="livedub",backend="calibrated"} > 0')
            assert {(r["metric"]["stage"], r["metric"]["worker"]) for r in stages} == {
                (s, s) for s in ("segment", "asr", "translate", "tts", "lipsync")}
            def e2e():
                return [(r["metric"]["target_lang"], r["metric"]["worker"], r["value"][1])
                        for r in _prom(url, 'livedub_e2e_latency_seconds_count{job="livedub"}')]

            wait_for(lambda: e2e() == [("es", "lipsync", str(n))], 30,  # one per dubbed segment
                     f"{n} segments in the e2e latency histogram")
            assert _prom(url, "histogram_quantile(0.99, sum by (le) "
                              '(rate(livedub_e2e_latency_seconds_bucket{job="livedub",target_lang="es"}[1m])))')
        finally:
            prometheus_stack.set_targets()


# -- a client that is not ours -------------------------------------------------------------------------

SCHEMAS = ROOT / "schemas"


class ForeignClient:
    """What any Kafka client can do with the .avsc files and the registry's HTTP API: no LiveDub code.

    Confluent wire format by hand: magic byte 0, the schema id as 4 bytes big-endian, the Avro body.
    Records keyed by session id, partitioned with murmur2 (the Java client's default) so a session
    lands on the same partition number as LiveDub's own producers put it.
    """

    def __init__(self, bootstrap: str, registry_url: str, prefix: str) -> None:
        import fastavro

        self.fastavro = fastavro
        self.registry_url = registry_url
        self.prefix = prefix
        self.producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                                  "linger.ms": 0, "message.max.bytes": 4_000_000})
        self.ids: dict[str, tuple[int, object]] = {}

    def _schema(self, topic: str, avsc: str) -> tuple[int, object]:
        if topic not in self.ids:
            text = (SCHEMAS / avsc).read_text()
            r = requests.post(f"{self.registry_url}/subjects/{topic}-value/versions", json={"schema": text},
                              headers={"Content-Type": "application/vnd.schemaregistry.v1+json"}, timeout=10)
            r.raise_for_status()
            self.ids[topic] = (r.json()["id"], self.fastavro.parse_schema(json.loads(text)))
        return self.ids[topic]

    def send(self, hop: str, avsc: str, key: str, value: dict) -> None:
        topic = self.prefix + hop
        schema_id, schema = self._schema(topic, avsc)
        buf = io.BytesIO()
        buf.write(b"\x00" + schema_id.to_bytes(4, "big"))
        self.fastavro.schemaless_writer(buf, schema, value)
        self.producer.produce(topic, key=key.encode(), value=buf.getvalue())
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def _kcat() -> str:
    kcat = shutil.which("kcat")
    if kcat is None:  # a fresh machine: the Debian package, as scripts/install_kafka.sh installs it
        subprocess.run(["bash", str(ROOT / "scripts" / "install_kafka.sh"), "--kcat"], check=True, timeout=600)
        kcat = shutil.which("kcat")
    assert kcat, "kcat not installed"
    return kcat


def test_a_foreign_client_publishes_and_kcat_reads_the_output(kafka_stack: KafkaStack, topics: Topics,
                                                                tmp_path: Path, model_cache: Path):
    import cv2

    env = env_for(kafka_stack.env, topics)
    session, fps, n_frames, chunk_s, rate = "foreign-1", 25, 25, 0.25, 16000
    with _calibrated(kafka_stack, topics, tmp_path, model_cache) as w:
        w.start()
        sub = subscribe(env, session, "es", tmp_path / "foreign.mp4")
        try:
            c = ForeignClient(kafka_stack.bootstrap, kafka_stack.registry_url, topics.prefix)
            now = time.time()
            c.send("session.control", "SessionControl.avsc", session,
                   {"session_id": session, "action": "start", "target_langs": ["es"], "source_lang": "en",
                    "at": now})
            tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 32767).astype("<i2")
            chunks = [tone[i:i + int(chunk_s * rate)] for i in range(0, rate, int(chunk_s * rate))]
            for seq, pcm in enumerate(chunks):
                c.send("media.audio", "AudioChunk.avsc", session,
                       {"session_id": session, "seq": seq, "pts_s": seq * chunk_s, "sample_rate": rate,
                        "pcm": pcm.tobytes(), "captured_at": now, "produced_at": time.time()})
            for seq in range(n_frames):
                img = np.full((120, 160, 3), (seq * 10) % 256, np.uint8)
                _, jpeg = cv2.imencode(".jpg", img)
                c.send("media.video", "VideoFrame.avsc", session,
                       {"session_id": session, "seq": seq, "pts_s": seq / fps, "width": 160, "height": 120,
                        "encoding": "jpeg", "data": jpeg.tobytes(), "produced_at": time.time()})
            # end of the session: a record with seq -1 on each media topic, then a stop
            c.send("media.audio", "AudioChunk.avsc", session,
                   {"session_id": session, "seq": -1, "pts_s": 1.0, "sample_rate": rate, "pcm": b"",
                    "captured_at": time.time(), "produced_at": time.time()})
            c.send("media.video", "VideoFrame.avsc", session,
                   {"session_id": session, "seq": -1, "pts_s": 1.0, "width": 0, "height": 0, "encoding": "jpeg",
                    "data": b"", "produced_at": time.time()})
            c.send("session.control", "SessionControl.avsc", session,
                   {"session_id": session, "action": "stop", "target_langs": ["es"], "source_lang": "en",
                    "at": time.time()})
            c.flush()
            segments, frames, _ = _summary(finish(sub, 120))
        finally:
            stop(sub)
    assert (segments, frames) == (len(chunks), n_frames)
    info = probe(tmp_path / "foreign.mp4")
    assert info.has_video and info.duration_s == pytest.approx(1.0, abs=0.1)

    # kcat reads the output topic: list the session's records (key, partition, offset, size) ...
    kcat = _kcat()
    base = [kcat, "-C", "-b", kafka_stack.bootstrap, "-t", topics.dubbed_video, "-e", "-q"]
    listing = subprocess.run([*base, "-f", "%k %p %o %S\n"], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    mine = [line.split() for line in listing.stdout.splitlines() if line.startswith(session + " ")]
    assert len(mine) == n_frames + 1  # every frame and the end marker, all on one partition
    assert len({p for _, p, _, _ in mine}) == 1
    _, part, offset, _ = mine[0]
    features = subprocess.run([kcat, "-V"], capture_output=True, text=True).stdout
    if "avro" in features:  # a kcat built with libserdes decodes through the registry's ccompat API
        decoded = subprocess.run([*base, "-p", part, "-o", offset, "-c", "1", "-s", "value=avro",
                                  "-r", kafka_stack.registry_url, "-f", "%s\n"],
                                 capture_output=True, text=True, timeout=60)
        assert decoded.returncode == 0, decoded.stderr
        assert json.loads(decoded.stdout)["session_id"] == session
    # ... and dump one record's raw value (Debian's kcat has no Avro support): the wire format by hand
    raw = subprocess.run([*base, "-p", part, "-o", offset, "-c", "1", "-f", "%s"], capture_output=True,
                         timeout=60).stdout
    assert raw[0] == 0
    schema_id = int.from_bytes(raw[1:5], "big")
    r = requests.get(f"{kafka_stack.registry_url}/schemas/ids/{schema_id}", timeout=10)
    r.raise_for_status()
    import fastavro

    value = fastavro.schemaless_reader(io.BytesIO(raw[5:]), fastavro.parse_schema(json.loads(r.json()["schema"])))
    assert value["session_id"] == session and value["target_lang"] == "es" and value["frame_seq"] == 0
    assert value["encoding"] == "jpeg" and value["data"][:2] == b"\xff\xd8"  # a JPEG


# -- the real stages, two live sessions at once --------------------------------------------------------

TEXT_B = "Good morning everyone. The weather is very nice today."


def _flipped_sample(path: Path, text: str, size: int) -> Path:
    """A second talking-face clip that differs from the sample in every frame (mirrored) and in speech."""
    import cv2

    from workers.media.sample import make_sample
    from workers.media.writer import OutputWriter

    plain = path.with_name(f"{path.stem}.plain.mp4")
    make_sample(plain, seconds=4, size=size, text=text)
    info = probe(plain)
    with OutputWriter(path, info, audio_rate=16000) as w:
        for f in iter_video(plain, "x"):
            w.write_video(cv2.flip(decode_frame(f), 1), f.pts_s)
        w.write_audio(_audio(plain))
    return path


def _top_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of the top third (above the mouth, which lip sync re-animates)."""
    h = a.shape[0] // 3
    return float(np.abs(a[:h].astype(np.int16) - b[:h].astype(np.int16)).mean())


@pytest.mark.slow
def test_two_live_sessions_through_the_real_stages(kafka_stack: KafkaStack, topics: Topics, registry_client,
                                                   tmp_path: Path, model_cache: Path):
    import asyncio

    from monitoring.histograms import histogram, histogram_quantile
    from tests.support.clips import sample_clip
    from workers.asr.faster_whisper import FasterWhisper
    from workers.dub import dub_file
    from workers.pipeline import Pipeline
    from workers.settings import load_settings

    size = 320
    clips = {"alice": sample_clip(seconds=4, size=size), "bob": _flipped_sample(tmp_path / "bob.mp4", TEXT_B, size)}
    langs = {"alice": ["es"], "bob": ["es", "fr"]}
    env = env_for(kafka_stack.env, topics)
    outs = {(s, lang): tmp_path / f"{s}.{lang}.mp4" for s in clips for lang in langs[s]}
    t0 = time.monotonic()
    with Workers(kafka_stack.env, topics.prefix, tmp_path / "logs", cache_dir=model_cache,
                 partitions=topics.partitions) as w:
        w.start()
        ready_s = time.monotonic() - t0
        subs = {k: subscribe(env, k[0], k[1], out, idle_timeout=180) for k, out in outs.items()}
        try:
            t1 = time.monotonic()
            # both sessions live at once, at real-time pace, from two publisher processes
            pubs = [publish(env, clips[s], s, langs[s], fast=False) for s in clips]
            for p in pubs:
                finish(p, 120)
            media_s = time.monotonic() - t1
            summaries = {k: _summary(finish(p, 300)) for k, p in subs.items()}
            wall_s = time.monotonic() - t1
        finally:
            stop(*subs.values())
        metrics = {stage: w.metrics(stage) for stage in w.ports}

    # What each viewer gets: every frame, as long as the input, from its own clip, in its language.
    src_frames = {s: _frames(c) for s, c in clips.items()}
    settings = load_settings(cache_dir=model_cache)
    asr = FasterWhisper(settings)
    heard = {}
    for (s, lang), out in outs.items():
        other = "bob" if s == "alice" else "alice"
        i, o = probe(clips[s]), probe(out)
        assert o.has_audio and o.has_video and (o.width, o.height) == (i.width, i.height)
        assert o.fps == pytest.approx(i.fps, rel=1e-3)
        assert o.duration_s == pytest.approx(i.duration_s, abs=0.15)
        frames = _frames(out)
        assert len(frames) == len(src_frames[s]) == summaries[(s, lang)][1]
        own = [_top_diff(f, g) for f, g in zip(frames, src_frames[s], strict=True)]
        cross = [_top_diff(f, g) for f, g in zip(frames, src_frames[other], strict=False)]
        assert max(own) < 4.0 and min(cross) > 4 * max(own), (max(own), min(cross))
        heard[(s, lang)] = asr.transcribe(_audio(out), None)
        assert heard[(s, lang)].language == lang, heard[(s, lang)]

    # On the wire: every topic keyed by a session carries only that session; frames in order.
    transcripts = {s: [t for t in session_records(kafka_stack.bootstrap, registry_client, topics,
                                                   topics.transcripts, s) if t.seq >= 0] for s in clips}
    text = {s: " ".join(t.text for t in ts).lower() for s, ts in transcripts.items()}
    assert "moon" in text["alice"] and "weather" not in text["alice"], text
    assert "weather" in text["bob"] and "moon" not in text["bob"], text
    kafka_segments = {}
    for s in clips:
        speech = session_records(kafka_stack.bootstrap, registry_client, topics, topics.dubbed_speech, s)
        video = session_records(kafka_stack.bootstrap, registry_client, topics, topics.dubbed_video, s)
        assert {r.session_id for r in speech + video} == {s}
        for lang in langs[s]:
            seqs = [f.frame_seq for f in video if isinstance(f, DubbedFrame) and f.target_lang == lang]
            assert seqs[-1] == -1 and seqs[:-1] == list(range(len(src_frames[s])))  # ordered, complete, once
            kafka_segments[(s, lang)] = [(d.seq, round(d.start_s, 4), round(d.end_s, 4)) for d in speech
                                         if isinstance(d, DubbedSpeech) and d.target_lang == lang and d.seq >= 0]
            assert len(kafka_segments[(s, lang)]) == summaries[(s, lang)][0] >= 2

    # `livedub dub` (embedded, same stages) cuts and dubs the same segments.
    pipeline = Pipeline.build(settings)
    pipeline.load()
    try:
        for s, clip in clips.items():
            res = asyncio.run(dub_file(clip, langs[s], settings, out=tmp_path / f"embedded.{s}.{{lang}}.mp4",
                                       pipeline=pipeline))
            for lang in langs[s]:
                embedded = [(g.seq, round(g.start_s, 4), round(g.end_s, 4)) for g in res.report.segments
                            if g.lang == lang]
                assert kafka_segments[(s, lang)] == embedded, (s, lang)
    finally:
        pipeline.close()

    # Latency, from the workers' own histograms (shown with -s; kept in latency.json).
    report: dict[str, object] = {"workers_ready_s": round(ready_s, 1), "publish_s": round(media_s, 1),
                                 "all_outputs_s": round(wall_s, 1)}
    for text_ in metrics.values():
        for name, key in (("livedub_hop_latency_seconds", "hop"), ("livedub_stage_seconds", "stage"),
                          ("livedub_e2e_latency_seconds", "e2e")):
            for labels, buckets in histogram(text_, name).items():
                n = buckets[float("inf")]
                if n:
                    label = ",".join(v for _, v in labels)
                    report[f"{key} {label}"] = {
                        "n": int(n),
                        "p50_ms": round(1000 * histogram_quantile(0.5, buckets), 1),
                        "p99_ms": round(1000 * histogram_quantile(0.99, buckets), 1),
                    }
    (tmp_path / "latency.json").write_text(json.dumps(report, indent=1))
    print("\nKafka, real stages, 2 live sessions (es; es+fr):")
    for k, v in report.items():
        print(f"  {k}: {v}")
    e2e = histogram(metrics["lipsync"], "livedub_e2e_latency_seconds")
    assert {dict(k)["target_lang"]: b[float("inf")] for k, b in e2e.items()} == {
        "es": len(kafka_segments[("alice", "es")]) + len(kafka_segments[("bob", "es")]),
        "fr": len(kafka_segments[("bob", "fr")])}
