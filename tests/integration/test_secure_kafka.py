"""The pipeline on a broker with SASL_SSL (SCRAM-SHA-512, a CA the script makes) and the
StandardAuthorizer: `deploy/local/livedub-local.sh up --secure` (here: deploy/local/kafka.sh on ports
of its own, beside the plain stack whose schema registry it shares), one principal per stage with the
ACLs `livedub acls --apply` derives from the topology."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from streams.acls import apply, principal
from streams.registry import SchemaRegistry
from streams.topics import Topics, admin_client, create_topics, delete_topics, value_subject
from tests.integration.kafka_io import env_for, finish, publish, subscribe
from tests.integration.stage_workers import STAGES, Workers
from tests.integration.test_kafka_pipeline import _chunks
from tests.support.clips import make_clip
from tests.support.ports import free_port

if TYPE_CHECKING:
    from conftest import KafkaStack

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
QUIET = {"log_level": 0}  # librdkafka's own retries of a refused connection, once per 50 ms


@dataclass(frozen=True)
class SecureKafka:
    bootstrap: str
    cafile: Path
    admin_password: str

    def client(self, user: str, password: str) -> dict[str, str]:
        return {"bootstrap.servers": self.bootstrap, "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password,
                "ssl.ca.location": str(self.cafile)}

    def env(self, user: str, password: str) -> dict[str, str]:
        return {"LIVEDUB_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap, "LIVEDUB_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                "LIVEDUB_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512", "LIVEDUB_KAFKA__SSL_CAFILE": str(self.cafile),
                "LIVEDUB_KAFKA__SASL_USERNAME": user, "LIVEDUB_KAFKA__SASL_PASSWORD": password}


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory) -> Iterator[SecureKafka]:
    state = tmp_path_factory.mktemp("secure-kafka")
    env = {**os.environ, "LOCAL_LIVEDUB_SECURE": "1", "LOCAL_LIVEDUB_STATE": str(state),
           "LOCAL_LIVEDUB_KAFKA_PORT": str(free_port()), "LOCAL_LIVEDUB_CONTROLLER_PORT": str(free_port())}
    script = str(ROOT / "deploy" / "local" / "kafka.sh")
    proc = subprocess.run(["bash", script, "start"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        yield SecureKafka(f"127.0.0.1:{env['LOCAL_LIVEDUB_KAFKA_PORT']}", state / "kafka" / "tls" / "ca.pem",
                          (state / "kafka" / "admin.password").read_text().strip())
    finally:
        subprocess.run(["bash", script, "stop"], env=env, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def deployment(secure_kafka: SecureKafka, tmp_path_factory, registry_client: SchemaRegistry):
    """Topics (as admin), principals and ACLs; the passwords of each principal."""
    topics = Topics(prefix="sec.", partitions=4)
    admin = admin_client(secure_kafka.client("admin", secure_kafka.admin_password))
    create_topics(admin, topics)
    files = apply(admin, topics, tmp_path_factory.mktemp("passwords"))
    yield topics, {who: path.read_text().strip() for who, path in files.items()}
    delete_topics(admin, topics.all())
    for t in topics.all():
        registry_client.delete_subject(value_subject(t))


def test_the_pipeline_runs_with_one_principal_per_stage(kafka_stack: KafkaStack, secure_kafka: SecureKafka,
                                                        deployment, tmp_path: Path):
    topics, passwords = deployment
    who = {role: principal(topics.prefix, role) for role in (*STAGES, "publisher", "subscriber")}
    stage_env = {s: secure_kafka.env(who[s], passwords[who[s]]) for s in STAGES}
    clip = make_clip(tmp_path / "clip.mp4", seconds=2.0, size=(160, 120))
    base = env_for(kafka_stack.env, topics)
    pub_env = {**base, **secure_kafka.env(who["publisher"], passwords[who["publisher"]])}
    sub_env = {**base, **secure_kafka.env(who["subscriber"], passwords[who["subscriber"]])}
    with Workers({**kafka_stack.env, **secure_kafka.env("nobody", "unused")}, topics.prefix, tmp_path / "logs",
                 profile="calibrated", cache_dir=tmp_path / "cache", partitions=topics.partitions,
                 stage_env=stage_env) as w:
        w.start()
        sub = subscribe(sub_env, "secure", "es", tmp_path / "out.mp4")
        out = finish(publish(pub_env, clip, "secure", ["es"]), 120)
        n = _chunks(out)  # one calibrated segment per audio chunk
        done = finish(sub, 180)
        assert f"{n} segments dubbed, 50 frames, 0 duplicates" in done, done
        metrics = {s: w.metrics(s) for s in STAGES}
        logs = {s: w.log(s) for s in STAGES}
    for secret in [secure_kafka.admin_password, *passwords.values()]:
        for s in STAGES:
            assert secret not in logs[s], f"a password in the {s} worker's log"
            assert secret not in metrics[s], f"a password in the {s} worker's metrics"
        assert secret not in out and secret not in done


def test_an_unauthenticated_or_wrong_client_is_refused(secure_kafka: SecureKafka, deployment):
    for conf in ({"bootstrap.servers": secure_kafka.bootstrap},  # plaintext to a TLS listener
                 secure_kafka.client("admin", "not-the-password")):
        c = Consumer({**conf, **QUIET, "group.id": "intruder"})
        try:
            with pytest.raises(Exception):  # noqa: B017 (librdkafka reports a transport or auth error)
                c.list_topics(timeout=5)
        finally:
            c.close()


def test_the_asr_principal_can_neither_read_video_nor_write_dubbed_video(secure_kafka: SecureKafka, deployment):
    topics, passwords = deployment
    asr = principal(topics.prefix, "asr")
    conf = {**secure_kafka.client(asr, passwords[asr]), **QUIET}
    c = Consumer({**conf, "group.id": principal(topics.prefix, "asr"), "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topics.media_video, 0, 0)])
        errors = []
        for _ in range(20):
            msg = c.poll(0.5)
            if msg is not None and msg.error():
                errors.append(msg.error().code())
                break
        assert errors == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    finally:
        c.close()
    failures = []
    p = Producer(conf)
    p.produce(topics.dubbed_video, key=b"k", value=b"v",
              on_delivery=lambda err, msg: failures.append(err.code() if err else None))
    p.flush(15)
    assert failures == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    # and what it may do, it can: read its input
    ok = Consumer({**conf, "group.id": principal(topics.prefix, "asr"), "enable.auto.commit": False})
    try:
        ok.assign([TopicPartition(topics.segments, 0, 0)])
        msg = ok.poll(2.0)
        assert msg is None or not msg.error() or msg.error().code() == KafkaError._PARTITION_EOF
    finally:
        ok.close()
