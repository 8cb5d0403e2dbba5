"""The real local stack: topics, schema registry, Avro over Kafka, schema evolution, Prometheus."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from confluent_kafka import Consumer, Producer
from faust.serializers import codecs as faust_codecs

from streams.codecs import decode, encode, load_schema, register_codecs, schema_id_of, schema_names
from streams.registry import (
    SchemaRegistry,
    _schemas_at,
    check_backward_compatible,
    schema_text,
)
from streams.topics import HOPS, Topics, create_topics, record_key, value_subject
from workers.errors import ConfigError, SchemaError
from workers.records import SpeechSegment, Transcript, Translation

if TYPE_CHECKING:  # fixtures from tests/integration/conftest.py
    from conftest import KafkaStack, PrometheusStack

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local"
pytestmark = pytest.mark.kafka


def test_up_is_idempotent(kafka_stack: KafkaStack) -> None:
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(LOCAL / "livedub-local.sh"), "up"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "kafka already running" in proc.stderr and "registry already running" in proc.stderr
    assert time.monotonic() - t0 < 10
    assert f"LIVEDUB_KAFKA__BOOTSTRAP_SERVERS={kafka_stack.bootstrap}" in proc.stdout
    status = subprocess.run(["bash", str(LOCAL / "livedub-local.sh"), "status"], capture_output=True, text=True)
    assert status.returncode == 0 and "kafka: running" in status.stdout


def test_create_topics(kafka_admin, unique_topics: Topics) -> None:
    created = create_topics(kafka_admin, unique_topics)
    assert created == sorted(unique_topics.all()) and len(created) == len(HOPS)
    md = kafka_admin.list_topics(timeout=30)
    assert {t: len(md.topics[t].partitions) for t in created} == dict.fromkeys(created, 12)
    assert create_topics(kafka_admin, unique_topics) == []  # idempotent

    odd = Topics(prefix=unique_topics.prefix + "odd.", partitions=3)
    create_topics(kafka_admin, odd, names=[odd.dlq])
    with pytest.raises(ConfigError, match=rf"{odd.dlq} has 3"):
        create_topics(kafka_admin, odd.__class__(prefix=odd.prefix, partitions=12))


def test_size_limits_are_checked_against_the_broker(kafka_admin, unique_topics: Topics) -> None:
    """The worker's producer (4 MB) against the topics it writes: the local broker takes 8 MiB; a topic
    made with a 1 MB limit is named at start-up instead of failing the first large send."""
    from dataclasses import replace

    from streams.limits import check_limits

    create_topics(kafka_admin, unique_topics)
    limits = check_limits(kafka_admin, unique_topics, "lipsync", 4_000_000)
    assert limits == {unique_topics.dubbed_video: 8388608, unique_topics.dlq: 8388608}
    small = replace(unique_topics, prefix=unique_topics.prefix + "small.",
                    config=(("max.message.bytes", "1000000"),))
    create_topics(kafka_admin, small, names=[small.dubbed_speech, small.dlq])
    with pytest.raises(ConfigError, match=rf"{small.dubbed_speech} max.message.bytes=1000000"):
        check_limits(kafka_admin, small, "tts", 4_000_000)
    with pytest.raises(ConfigError, match="cannot carry a dead letter"):
        check_limits(kafka_admin, unique_topics, "tts", 100_000)


def test_register_all_schemas(registry_client: SchemaRegistry, unique_topics: Topics) -> None:
    ids = {}
    try:
        for topic, name in unique_topics.schemas().items():
            subject = value_subject(topic)
            ids[name] = registry_client.register_with_compatibility(subject, load_schema(name))
            assert registry_client.get_compatibility(subject) == "BACKWARD"
            assert registry_client.register(subject, load_schema(name)) == ids[name]  # same text, same id
            assert registry_client.lookup(subject, load_schema(name)) == ids[name]
            latest = registry_client.get_latest(subject)
            assert latest is not None and latest[0] == ids[name] and latest[1] == 1
        assert set(ids) == set(schema_names())
        fresh = SchemaRegistry(registry_client.url)  # no cache: really fetched by id
        for name, schema_id in ids.items():
            assert json.loads(fresh.get_schema(schema_id)) == load_schema(name)
        with pytest.raises(SchemaError, match="unknown to the registry"):
            fresh.get_schema(987654321)
    finally:
        for topic in unique_topics.all():
            registry_client.delete_subject(value_subject(topic))


def _consume(bootstrap: str, topics: list[str], n: int, timeout: float = 60.0) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(topics)
    got = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg)
    finally:
        consumer.close()
    assert len(got) == n, f"consumed {len(got)} of {n} records in {timeout}s"
    return got


def test_produce_consume_avro_through_registry(kafka_stack: KafkaStack, kafka_admin, unique_topics: Topics,
                                               registry_client: SchemaRegistry) -> None:
    create_topics(kafka_admin, unique_topics)
    names = register_codecs(registry_client, unique_topics)  # the Faust codecs, real registry
    try:
        seg = SpeechSegment(session_id="sess-42", seq=7, start_s=1.0, end_s=3.5, sample_rate=16000,
                            pcm=bytes(range(256)) * 40, cut_reason="pause", target_langs=("es", "fr"),
                            source_lang=None, speech_end_at=1700000000.5)
        tr = Transcript(session_id="sess-42", seq=7, start_s=1.0, end_s=3.5, text="hello there", language="en",
                        confidence=0.93, target_langs=("es", "fr"), speech_end_at=1700000000.5)
        producer = Producer({"bootstrap.servers": kafka_stack.bootstrap, "linger.ms": 0})
        for rec in (seg, tr):
            topic = unique_topics.topic_for(rec.schema_name)
            producer.produce(topic, key=record_key(rec), value=faust_codecs.dumps(names[topic], rec))
        assert producer.flush(30) == 0

        msgs = _consume(kafka_stack.bootstrap, [unique_topics.segments, unique_topics.transcripts], 2)
        by_topic = {m.topic(): m for m in msgs}
        fresh = SchemaRegistry(kafka_stack.registry_url)  # a reader that never saw the writer
        assert decode(by_topic[unique_topics.segments].value(), fresh) == seg
        assert decode(by_topic[unique_topics.transcripts].value(), fresh, expect="Transcript") == tr
        assert faust_codecs.loads(names[unique_topics.segments], by_topic[unique_topics.segments].value()) == seg
        assert {m.key() for m in msgs} == {b"sess-42"}
        # same key, same partition count -> the session sits on the same partition on every hop
        assert len({m.partition() for m in msgs}) == 1
        sid = schema_id_of(by_topic[unique_topics.segments].value())
        assert sid == registry_client.lookup(value_subject(unique_topics.segments), load_schema("SpeechSegment"))
    finally:
        for topic in unique_topics.all():
            registry_client.delete_subject(value_subject(topic))


def test_schema_evolution_rules(kafka_stack: KafkaStack, registry_client: SchemaRegistry) -> None:
    subject = f"it.{uuid.uuid4().hex[:10]}.translations-value"
    v1 = load_schema("Translation")
    compatible = load_schema("Translation")
    compatible["fields"].append({"name": "quality", "type": "double", "default": 0.0})
    incompatible = load_schema("Translation")
    incompatible["fields"].append({"name": "quality", "type": "double"})  # no default
    retyped = load_schema("Translation")
    next(f for f in retyped["fields"] if f["name"] == "seq")["type"] = "string"
    try:
        id1 = registry_client.register_with_compatibility(subject, v1)
        old_value = encode(Translation("s", 1, 0.0, 1.0, "hola", "en", "es", 5.0, produced_at=6.0), id1)
        assert registry_client.check_compatibility(subject, compatible) is True
        assert registry_client.check_compatibility(subject, incompatible) is False
        assert registry_client.check_compatibility(subject, retyped) is False
        with pytest.raises(SchemaError, match="incompatible"):
            registry_client.register(subject, incompatible)
        id2 = registry_client.register(subject, compatible)
        assert id2 != id1
        assert registry_client.get_latest(subject)[:2] == (id2, 2)
        # old data still decodes; data written with v2 decodes with the v1 reader (field dropped)
        fresh = SchemaRegistry(kafka_stack.registry_url)
        assert decode(old_value, fresh).text == "hola"
        import io

        from fastavro import parse_schema, schemaless_writer

        buf = io.BytesIO()
        buf.write(b"\x00" + id2.to_bytes(4, "big"))
        schemaless_writer(buf, parse_schema(compatible),
                          {**decode(old_value, fresh).to_dict(), "quality": 0.5})
        assert decode(buf.getvalue(), fresh) == decode(old_value, fresh)
    finally:
        registry_client.delete_subject(subject)


def test_committed_schemas_are_backward_compatible(registry_client: SchemaRegistry) -> None:
    """Working-tree schemas/*.avsc against HEAD (what .ci/schema-compat.sh does against its base ref)."""
    old = _schemas_at("HEAD", ROOT)
    if old is None:
        pytest.skip("no HEAD commit to compare with")
    new = _schemas_at(None, ROOT)
    result = check_backward_compatible(registry_client, old, new)
    assert "INCOMPATIBLE" not in result.values(), result
    assert set(old) <= set(new), "a schema file was removed"
    # and the checker does catch a breaking edit
    broken = dict(new)
    tr = json.loads(new["Translation"])
    tr["fields"] = [f for f in tr["fields"] if f["name"] != "text"] + [{"name": "score", "type": "int"}]
    broken["Translation"] = schema_text(tr)
    assert check_backward_compatible(registry_client, old, broken)["Translation"] == "INCOMPATIBLE"


def test_schema_compat_cli(kafka_stack: KafkaStack) -> None:
    proc = subprocess.run([sys.executable, "-m", "streams.registry", "check-compat", "--base-ref", "HEAD",
                           "--url", kafka_stack.registry_url], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "schema-compat:" in proc.stdout


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"# TYPE livedub_infra_test gauge\nlivedub_infra_test 42\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_prometheus_scrapes_targets(prometheus_stack: PrometheusStack) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        prometheus_stack.set_targets(f"infra-test=127.0.0.1:{server.server_port}")
        deadline = time.monotonic() + 60
        result = []
        while time.monotonic() < deadline and not result:
            r = requests.get(f"{prometheus_stack.url}/api/v1/query",
                             params={"query": 'livedub_infra_test{job="livedub",worker="infra-test"}'}, timeout=5)
            result = r.json()["data"]["result"]
            time.sleep(0.5)
        assert result and result[0]["value"][1] == "42"
    finally:
        prometheus_stack.set_targets()
        server.shutdown()


@pytest.mark.kafka
@pytest.mark.slow
def test_a_wheel_install_finds_its_schemas(kafka_stack: KafkaStack, unique_topics: Topics, tmp_path) -> None:
    """`pip install .` into a fresh venv (no source tree on sys.path), then `livedub topics --create`."""
    import sysconfig
    import venv

    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=True)
    py = fresh / "bin" / "python"
    # The dependencies come from this venv's site-packages as a plain path (not addsitedir, so the
    # editable install's finder there is not loaded): LiveDub itself can only come from the wheel.
    deps = sysconfig.get_paths()["purelib"]
    fresh_site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                capture_output=True, text=True, check=True).stdout.strip()
    Path(fresh_site, "deps.pth").write_text(deps + "\n")
    pip = subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", str(ROOT)], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr[-3000:]
    where = subprocess.run([py, "-c", "import schemas, streams.codecs as c; print(schemas.__file__); "
                            "print(c.schema_names())"], capture_output=True, text=True, cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert str(fresh) in where.stdout.splitlines()[0] and "SessionControl" in where.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEDUB_")}
    env |= kafka_stack.env | {"LIVEDUB_TOPICS__PREFIX": unique_topics.prefix}
    out = subprocess.run([fresh / "bin" / "livedub", "topics", "--create"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    for topic, schema in unique_topics.schemas().items():
        line = next(x for x in out.stdout.splitlines() if x.startswith(topic + " "))
        assert schema in line and "12 partitions" in line and "not registered" not in line, line
