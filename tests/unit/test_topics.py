"""Topic names, topic -> record mapping, keys, and idempotent topic creation (fake admin client)."""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException
from pydantic import SecretStr

from streams.topics import (
    HOP_RECORDS,
    HOPS,
    DeadLetter,
    Topics,
    client_config,
    create_topics,
    delete_topics,
    record_key,
    topics_from_settings,
    value_subject,
)
from workers.errors import ConfigError, TransportError
from workers.records import RECORD_TYPES, AudioChunk, SessionControl, Translation
from workers.settings import KafkaSettings, load_settings


def test_hops_and_records() -> None:
    assert set(HOPS) == {"media.audio", "media.video", "segments", "transcripts", "translations",
                         "dubbed.speech", "dubbed.video", "session.control", "dlq"}
    # every pipeline record travels on exactly one topic; the DLQ carries DeadLetter
    assert sorted(v for v in HOP_RECORDS.values() if v != "DeadLetter") == sorted(RECORD_TYPES)
    assert HOP_RECORDS["dlq"] == "DeadLetter" == DeadLetter.schema_name
    assert HOP_RECORDS["segments"] == "SpeechSegment" and HOP_RECORDS["dubbed.video"] == "DubbedFrame"


def test_default_names_from_settings() -> None:
    t = topics_from_settings(load_settings())
    assert (t.prefix, t.partitions, t.replication) == ("livedub.", 12, 1)
    assert t.all() == [f"livedub.{h}" for h in HOPS]
    assert t.segments == "livedub.segments" and t.dlq == "livedub.dlq"
    assert t.media_audio == "livedub.media.audio" and t.dubbed_speech == "livedub.dubbed.speech"
    assert t.schema_name("livedub.transcripts") == "Transcript"
    assert t.topic_for("Translation") == "livedub.translations"
    assert t.schemas()["livedub.session.control"] == "SessionControl"
    assert value_subject(t.segments) == "livedub.segments-value"


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEDUB_TOPICS__PREFIX", "stage-a.")
    monkeypatch.setenv("LIVEDUB_TOPICS__PARTITIONS", "6")
    t = topics_from_settings(load_settings())
    assert t.segments == "stage-a.segments" and t.partitions == 6
    assert topics_from_settings(load_settings().topics) == t


def test_unknown_names() -> None:
    t = Topics()
    with pytest.raises(ConfigError, match="unknown hop"):
        t.name("audio")
    with pytest.raises(ConfigError, match="not a LiveDub topic"):
        t.schema_name("other.segments")
    with pytest.raises(ConfigError, match="no topic carries"):
        t.topic_for("Nope")
    assert t.with_prefix("x.").segments == "x.segments"


def test_record_key_is_session_id() -> None:
    assert record_key(SessionControl("abc", "start", ("es",))) == b"abc"
    assert record_key(AudioChunk("s-1", 0, 0.0, 16000, b"")) == b"s-1"
    assert record_key(Translation("s2", 1, 0.0, 1.0, "hola", "en", "es", 0.0)) == b"s2"
    dl = DeadLetter("asr", "livedub.segments", 3, 9, "boom", "StageError", False, b"s3", b"\x00")
    assert record_key(dl) == b"s3"


def test_client_config() -> None:
    assert client_config(KafkaSettings()) == {"bootstrap.servers": "127.0.0.1:9092",
                                              "security.protocol": "PLAINTEXT"}
    conf = client_config(KafkaSettings(bootstrap_servers="k:9093", security_protocol="SASL_SSL",
                                       sasl_mechanism="SCRAM-SHA-512", sasl_username="u",
                                       sasl_password=SecretStr("p"), ssl_cafile=Path("/ca.pem")))
    assert conf["sasl.password"] == "p" and conf["ssl.ca.location"] == "/ca.pem"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512" and conf["sasl.username"] == "u"


class FakeAdmin:
    """Just enough of confluent_kafka.admin.AdminClient for create_topics/delete_topics."""

    def __init__(self, existing: dict[str, int] | None = None, fail: KafkaError | None = None) -> None:
        self.topics = dict(existing or {})
        self.fail = fail
        self.created: list[tuple[str, int, int]] = []
        self.sneak_in: dict[str, int] = {}  # topics "someone else" creates during our create call

    def list_topics(self, timeout: float) -> SimpleNamespace:
        return SimpleNamespace(topics={n: SimpleNamespace(partitions=dict.fromkeys(range(p)), error=None)
                                       for n, p in self.topics.items()})

    def create_topics(self, new_topics, request_timeout: float):
        out = {}
        for nt in new_topics:
            f: Future = Future()
            if self.fail is not None:
                f.set_exception(KafkaException(self.fail))
            elif nt.topic in self.sneak_in:
                self.topics[nt.topic] = self.sneak_in[nt.topic]
                f.set_exception(KafkaException(KafkaError(KafkaError.TOPIC_ALREADY_EXISTS)))
            else:
                self.topics[nt.topic] = nt.num_partitions
                self.created.append((nt.topic, nt.num_partitions, nt.replication_factor))
                f.set_result(None)
            out[nt.topic] = f
        return out

    def delete_topics(self, names, request_timeout: float):
        out = {}
        for n in names:
            f: Future = Future()
            if n in self.topics:
                del self.topics[n]
                f.set_result(None)
            else:
                f.set_exception(KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)))
            out[n] = f
        return out


def test_create_topics_is_idempotent() -> None:
    t = Topics(prefix="u.", partitions=12)
    admin = FakeAdmin({"u.segments": 12, "unrelated": 3})
    created = create_topics(admin, t)
    assert created == sorted(n for n in t.all() if n != "u.segments")
    assert {(p, r) for _, p, r in admin.created} == {(12, 1)}
    assert create_topics(admin, t) == []
    assert admin.topics["unrelated"] == 3  # other topics are not our business


def test_partition_mismatch_names_the_topic() -> None:
    t = Topics(prefix="u.", partitions=12)
    admin = FakeAdmin({"u.transcripts": 4, "u.dlq": 1})
    with pytest.raises(ConfigError, match=r"u\.dlq has 1, u\.transcripts has 4"):
        create_topics(admin, t)
    assert admin.created == []  # nothing is created when the layout is wrong


def test_concurrent_creation_is_checked() -> None:
    t = Topics(prefix="u.", partitions=12)
    admin = FakeAdmin()
    admin.sneak_in = {"u.segments": 12}
    assert "u.segments" not in create_topics(admin, t)
    admin = FakeAdmin()
    admin.sneak_in = {"u.segments": 6}
    with pytest.raises(ConfigError, match=r"u\.segments has 6"):
        create_topics(admin, t)


def test_create_errors() -> None:
    with pytest.raises(ConfigError, match="cannot create topic"):
        create_topics(FakeAdmin(fail=KafkaError(KafkaError.INVALID_REPLICATION_FACTOR)), Topics(replication=3))
    with pytest.raises(TransportError) as ei:
        create_topics(FakeAdmin(fail=KafkaError(KafkaError.REQUEST_TIMED_OUT, retriable=True)), Topics())
    assert ei.value.retryable


def test_delete_topics_ignores_missing() -> None:
    admin = FakeAdmin({"a": 1})
    delete_topics(admin, ["a", "b"])
    assert admin.topics == {}
