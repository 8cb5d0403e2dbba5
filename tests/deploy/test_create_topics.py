"""The topic-creation script the chart's Helm hook Job runs (deploy/helm/livedub/files)."""

from __future__ import annotations

import importlib.util
import sys

from .conftest import CHART

spec = importlib.util.spec_from_file_location("create_topics", CHART / "files" / "create_topics.py")
assert spec and spec.loader
create_topics = importlib.util.module_from_spec(spec)
sys.modules["create_topics"] = create_topics
spec.loader.exec_module(create_topics)

K = "LIVEDUB_KAFKA__"


def test_admin_config_sasl_ssl() -> None:
    env = {
        K + "BOOTSTRAP_SERVERS": "k:9093",
        K + "SECURITY_PROTOCOL": "SASL_SSL",
        K + "SASL_MECHANISM": "SCRAM-SHA-256",
        K + "SASL_USERNAME": "u",
        K + "SASL_PASSWORD": "p",
        K + "SSL_CAFILE": "/tls/ca.crt",
    }
    conf = create_topics.admin_config(env)
    assert conf["bootstrap.servers"] == "k:9093"
    assert conf["security.protocol"] == "SASL_SSL"
    assert (conf["sasl.mechanism"], conf["sasl.username"], conf["sasl.password"]) == (
        "SCRAM-SHA-256",
        "u",
        "p",
    )
    assert conf["ssl.ca.location"] == "/tls/ca.crt"
    assert "ssl.certificate.location" not in conf


def test_admin_config_mtls() -> None:
    env = {
        K + "BOOTSTRAP_SERVERS": "k:9093",
        K + "SECURITY_PROTOCOL": "SSL",
        K + "SSL_CERTFILE": "/tls/user.crt",
        K + "SSL_KEYFILE": "/tls/user.key",
    }
    conf = create_topics.admin_config(env)
    assert conf["ssl.certificate.location"] == "/tls/user.crt"
    assert conf["ssl.key.location"] == "/tls/user.key"
    assert not any(k.startswith("sasl.") for k in conf)


def test_wanted_topics_and_plan() -> None:
    env = {
        "LIVEDUB_TOPICS__PREFIX": "x.",
        "LIVEDUB_TOPICS__PARTITIONS": "6",
        "LIVEDUB_TOPIC_NAMES": "segments, dlq,,media.audio",
    }
    wanted = create_topics.wanted_topics(env)
    assert wanted == {"x.segments": 6, "x.dlq": 6, "x.media.audio": 6}
    create, grow = create_topics.plan(wanted, {"x.segments": 3, "x.dlq": 12, "other": 1})
    assert create == ["x.media.audio"]
    assert grow == {"x.segments": 6}  # never shrinks x.dlq
