"""Kafka topic names, the record each topic carries, and idempotent topic creation.

Every hop of the pipeline is one topic, `<prefix><hop>` (prefix and partition count come from
`TopicSettings`); all topics get the same partition count so a session's records land on the
same partition number on every hop. Records are keyed by `session_id` (see `record_key`).
Values are Avro in the Confluent wire format (streams/codecs.py) under the subject
`<topic>-value` (TopicNameStrategy).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from workers.errors import ConfigError, TransportError
from workers.records import Record, now
from workers.topology import DEFAULT, Topology

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

    from workers.settings import KafkaSettings, Settings, TopicSettings

# hop -> schema name of the values it carries, in pipeline order (a view of the topology).
HOP_RECORDS: dict[str, str] = DEFAULT.hop_records
HOPS: tuple[str, ...] = DEFAULT.hops


DEAD_LETTER_MAX_VALUE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DeadLetter(Record):
    """A record a stage gave up on, with where it came from and why (schemas/DeadLetter.avsc).

    The original key and value are kept byte for byte so the record can be replayed, up to
    DEAD_LETTER_MAX_VALUE bytes of the value: a larger one (the broker took up to 8 MiB, our
    producer sends at most 4 MB) is cut, with its size kept, so dead-lettering it cannot fail.
    Keyed by the original key (the session id), like everything else.
    """

    schema_name: ClassVar[str] = "DeadLetter"
    stage: str
    topic: str
    partition: int
    offset: int
    error: str
    error_type: str
    retryable: bool
    original_key: bytes | None
    original_value: bytes
    at: float = field(default_factory=now)
    original_size: int = -1  # bytes as read; > len(original_value) when cut to fit (DEAD_LETTER_MAX_VALUE)


def record_key(record: Record) -> bytes | None:
    """The Kafka key of a record: its session id (a dead letter keeps its original key)."""
    if isinstance(record, DeadLetter):
        return record.original_key
    session_id = getattr(record, "session_id", None)
    return session_id.encode() if session_id is not None else None


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names for one deployment (one prefix)."""

    prefix: str = "livedub."
    partitions: int = 12
    replication: int = 1
    topology: Topology = DEFAULT
    config: tuple[tuple[str, str], ...] = ()  # topic configs for topics we create

    def name(self, hop: str) -> str:
        if hop not in self.topology.hop_records:
            raise ConfigError(f"unknown hop {hop!r}; known: {', '.join(self.topology.hops)}")
        return f"{self.prefix}{hop}"

    def all(self) -> list[str]:
        return [self.name(h) for h in self.topology.hops]

    def hop(self, topic: str) -> str:
        hop = topic[len(self.prefix):] if topic.startswith(self.prefix) else None
        if hop not in self.topology.hop_records:
            raise ConfigError(f"{topic!r} is not a LiveDub topic under prefix {self.prefix!r}")
        return hop

    def schema_name(self, topic: str) -> str:
        """The record schema carried by `topic` (e.g. 'livedub.segments' -> 'SpeechSegment')."""
        return self.topology.hop_records[self.hop(topic)]

    def topic_for(self, schema_name: str) -> str:
        """The topic that carries records of `schema_name` (the first, if several do)."""
        for hop, name in self.topology.hop_records.items():
            if name == schema_name:
                return self.name(hop)
        raise ConfigError(f"no topic carries {schema_name!r}")

    def schemas(self) -> dict[str, str]:
        """topic -> schema name, for every topic."""
        return {self.name(h): s for h, s in self.topology.hop_records.items()}

    def inputs(self, stage: str) -> list[str]:
        """The topics a stage's agent consumes."""
        return [self.name(h) for h in self.topology.inputs(stage)]

    def output(self, stage: str) -> str:
        return self.name(self.topology.spec(stage).output)

    # Convenience accessors for the hops the workers use by name.
    @property
    def session_control(self) -> str:
        return self.name("session.control")

    @property
    def media_audio(self) -> str:
        return self.name("media.audio")

    @property
    def media_video(self) -> str:
        return self.name("media.video")

    @property
    def segments(self) -> str:
        return self.name("segments")

    @property
    def transcripts(self) -> str:
        return self.name("transcripts")

    @property
    def translations(self) -> str:
        return self.name("translations")

    @property
    def dubbed_speech(self) -> str:
        return self.name("dubbed.speech")

    @property
    def dubbed_video(self) -> str:
        return self.name("dubbed.video")

    @property
    def dlq(self) -> str:
        return self.name("dlq")

    def with_prefix(self, prefix: str) -> Topics:
        return dataclasses.replace(self, prefix=prefix)


def value_subject(topic: str) -> str:
    """Schema registry subject of a topic's values (TopicNameStrategy)."""
    return f"{topic}-value"


def topics_from_settings(settings: Settings | TopicSettings | None = None) -> Topics:
    """Topics from `Settings` (or its `topics` part); None reads the environment."""
    if settings is None:
        from workers.settings import load_settings

        settings = load_settings()
    ts = getattr(settings, "topics", settings)
    return Topics(prefix=ts.prefix, partitions=ts.partitions, replication=ts.replication,
                  config=tuple(sorted(ts.config.items())))


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """librdkafka (confluent-kafka) configuration for `KafkaSettings`."""
    conf: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "security.protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        conf["sasl.mechanism"] = kafka.sasl_mechanism
    if kafka.sasl_username:
        conf["sasl.username"] = kafka.sasl_username
    if kafka.sasl_password is not None:
        conf["sasl.password"] = kafka.sasl_password.get_secret_value()
    if kafka.ssl_cafile:
        conf["ssl.ca.location"] = str(kafka.ssl_cafile)
    if kafka.ssl_certfile:
        conf["ssl.certificate.location"] = str(kafka.ssl_certfile)
    if kafka.ssl_keyfile:
        conf["ssl.key.location"] = str(kafka.ssl_keyfile)
    return conf


def admin_client(kafka: KafkaSettings | dict[str, Any]) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    conf = kafka if isinstance(kafka, dict) else client_config(kafka)
    return AdminClient(conf)


def _partition_counts(admin: AdminClient, timeout: float) -> dict[str, int]:
    from confluent_kafka import KafkaException

    try:
        md = admin.list_topics(timeout=timeout)
    except KafkaException as e:
        raise TransportError(f"cannot list Kafka topics: {e}") from e
    # A topic whose leader is not elected yet comes with an error but already lists its partitions.
    return {name: len(t.partitions) for name, t in md.topics.items() if t.partitions}


def create_topics(admin: AdminClient, topics: Topics, *, timeout: float = 30.0,
                  names: list[str] | None = None, grow: bool = False) -> list[str]:
    """Create every topic (or `names`) with `topics.partitions` partitions, `topics.replication`
    replicas and `topics.config`; returns those created.

    Idempotent: existing topics with the right partition count are left alone. An existing topic
    with a different partition count raises ConfigError naming it (records keyed by session would
    otherwise change partition between hops) unless `grow` and it has fewer: then it is grown
    (Kafka cannot shrink; sessions in flight may move partition, so do it between sessions).
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewPartitions, NewTopic

    wanted = names if names is not None else topics.all()
    existing = _partition_counts(admin, timeout)
    fewer = [t for t in wanted if t in existing and existing[t] < topics.partitions]
    if grow and fewer:
        for name, fut in admin.create_partitions([NewPartitions(t, topics.partitions) for t in fewer],
                                                 request_timeout=timeout).items():
            try:
                fut.result(timeout=timeout)
            except Exception as e:
                raise TransportError(f"cannot grow {name!r} to {topics.partitions} partitions: {e}") from e
        existing = _wait_partitions(admin, fewer, topics.partitions, timeout)
    _check_partitions(wanted, existing, topics.partitions)
    missing = [t for t in wanted if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=topics.partitions, replication_factor=topics.replication,
                  config=dict(topics.config)) for t in missing],
        request_timeout=timeout,
    )
    created: list[str] = []
    raced: list[str] = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout)
            created.append(name)
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                raced.append(name)  # created concurrently by someone else: check it below
                continue
            retryable = bool(isinstance(err, KafkaError) and err.retriable())
            if isinstance(err, KafkaError) and err.code() in (KafkaError.INVALID_PARTITIONS,
                                                               KafkaError.INVALID_REPLICATION_FACTOR,
                                                               KafkaError.INVALID_CONFIG,
                                                               KafkaError.POLICY_VIOLATION):
                raise ConfigError(f"cannot create topic {name!r}: {err.str()}") from e
            raise TransportError(f"cannot create topic {name!r}: {e}", retryable=retryable) from e
        except Exception as e:  # a future that timed out
            raise TransportError(f"cannot create topic {name!r}: {e}") from e
    # The broker's metadata can trail the controller by a moment: wait until every topic is
    # visible (and, for ones someone else created meanwhile, check their partition count).
    visible = _wait_visible(admin, created + raced, timeout)
    _check_partitions(raced, visible, topics.partitions)
    return sorted(created)


def _wait_partitions(admin: AdminClient, names: list[str], partitions: int, timeout: float) -> dict[str, int]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        counts = _partition_counts(admin, timeout)
        if all(counts.get(n) == partitions for n in names) or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def _wait_visible(admin: AdminClient, names: list[str], timeout: float) -> dict[str, int]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        counts = _partition_counts(admin, timeout)
        missing = [n for n in names if not counts.get(n)]
        if not missing:
            return counts
        if time.monotonic() > deadline:
            raise TransportError(f"topics not visible in metadata after {timeout:.0f}s: {', '.join(missing)}")
        time.sleep(0.1)


def _check_partitions(names: list[str], existing: dict[str, int], partitions: int) -> None:
    wrong = {n: existing[n] for n in names if n in existing and existing[n] != partitions}
    if wrong:
        detail = ", ".join(f"{n} has {p}" for n, p in sorted(wrong.items()))
        raise ConfigError(
            f"topic partition count mismatch (want {partitions} on every topic): {detail}; "
            "delete and recreate them or change LIVEDUB_TOPICS__PARTITIONS"
        )


def delete_topics(admin: AdminClient, names: list[str], *, timeout: float = 30.0) -> None:
    """Delete topics (missing ones are ignored); for tests and local resets."""
    from confluent_kafka import KafkaError, KafkaException

    if not names:
        return
    for name, fut in admin.delete_topics(list(names), request_timeout=timeout).items():
        try:
            fut.result(timeout=timeout)
        except KafkaException as e:
            err = e.args[0] if e.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                continue
            raise TransportError(f"cannot delete topic {name!r}: {e}") from e
