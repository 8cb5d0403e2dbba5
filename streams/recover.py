"""Read back what a stage already wrote since the oldest input it has not committed
(streams/marks.py says why). One confluent-kafka consumer, assigned (never joining the group),
read_committed, closed when done."""

from __future__ import annotations

import logging
from typing import Any

from streams.codecs import SchemaSource, decode
from workers.errors import LiveDubError
from workers.records import Record

log = logging.getLogger(__name__)
SKEW_MS = 60_000  # the input's timestamp is the client's clock; ours may be behind it by this much


def _timestamp_at(c: Any, topic: str, partition: int, offset: int, timeout: float) -> int:
    from confluent_kafka import TopicPartition

    c.assign([TopicPartition(topic, partition, offset)])
    msg = c.poll(timeout)
    if msg is None or msg.error():
        return 0  # unknown: read the output from its start
    return max(0, msg.timestamp()[1])


def _latest(admin: Any, tps: list[Any], timeout: float) -> dict[tuple[str, int], int]:
    """End offsets of many partitions in one request (a consumer asks one partition at a time)."""
    from confluent_kafka import IsolationLevel
    from confluent_kafka.admin import OffsetSpec

    futures = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}, isolation_level=IsolationLevel.READ_COMMITTED,
                                 request_timeout=timeout)
    return {(tp.topic, tp.partition): f.result(timeout=timeout).offset for tp, f in futures.items()}


def written_since_uncommitted(conf: dict[str, Any], group: str, inputs: list[str], output: str,
                              partitions: list[int], registry: SchemaSource, timeout: float = 10.0) -> list[Record]:
    """The records on `output`'s `partitions` written since the oldest uncommitted record of
    `inputs` (the group's committed offsets), in offset order per partition. Empty when every
    input is committed (nothing will be replayed)."""
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(conf)
    ins = [TopicPartition(t, p) for t in inputs for p in partitions]
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, ins)],
                                                  request_timeout=timeout)[group].result(timeout=timeout)
    ends = _latest(admin, ins + [TopicPartition(output, p) for p in partitions], timeout)
    c = Consumer({**conf, "group.id": group, "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    try:
        since: dict[int, int] = {}
        for tp in committed.topic_partitions:
            start = tp.offset if tp.offset >= 0 else 0
            if start < ends[(tp.topic, tp.partition)]:
                ts = _timestamp_at(c, tp.topic, tp.partition, start, timeout)
                since[tp.partition] = min(since.get(tp.partition, ts), ts)
        if not since:
            return []
        from confluent_kafka.admin import OffsetSpec

        starts = admin.list_offsets({TopicPartition(output, p): OffsetSpec.for_timestamp(max(0, ts - SKEW_MS))
                                     for p, ts in since.items()}, request_timeout=timeout)
        todo = {}
        for tp, fut in starts.items():
            lo, hi = fut.result(timeout=timeout).offset, ends[(output, tp.partition)]
            if 0 <= lo < hi:  # -1: nothing written at or after that time
                todo[tp.partition] = (lo, hi)
        if not todo:
            return []
        c.assign([TopicPartition(output, p, lo) for p, (lo, _) in todo.items()])
        out: list[Record] = []
        left = set(todo)
        while left:
            msg = c.poll(timeout)
            if msg is None:
                log.warning("recovery of %s stopped early: no record within %.0f s", output, timeout)
                break
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    left.discard(msg.partition())
                    continue
                raise LiveDubError(f"cannot read back {output}: {msg.error()}", retryable=True)
            if msg.offset() + 1 >= todo[msg.partition()][1]:
                left.discard(msg.partition())
            try:
                out.append(decode(msg.value(), registry))
            except LiveDubError:
                continue  # not ours to judge here
        return out
    finally:
        c.close()
