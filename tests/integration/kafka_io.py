"""Helpers for the Kafka pipeline tests: the `livedub` CLI as subprocesses, reading a session back.

    pub = publish(env, clip, "s1", ["es"], fast=True)          # Popen of `livedub publish`
    sub = subscribe(env, "s1", "es", tmp_path / "s1.es.mp4")   # Popen of `livedub subscribe`
    finish(sub, 120)                                           # its stdout, or fail with its output
    recs = session_records(stack, topics, topics.dubbed_video, "s1")   # (offset, Record) in order
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from streams.codecs import decode
from streams.registry import SchemaRegistry
from streams.subscribe import partition_for
from streams.topics import Topics
from workers.records import Record

ROOT = Path(__file__).resolve().parents[2]
LIVEDUB = str(Path(sys.executable).parent / "livedub")


def env_for(stack_env: dict[str, str], topics: Topics, **extra: str) -> dict[str, str]:
    import os

    return {**os.environ, **stack_env, "LIVEDUB_TOPICS__PREFIX": topics.prefix,
            "LIVEDUB_TOPICS__PARTITIONS": str(topics.partitions), **extra}


def livedub(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LIVEDUB, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _popen(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([LIVEDUB, *args], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def publish(env: dict[str, str], clip: Path, session: str, langs: list[str], *,
            fast: bool = True) -> subprocess.Popen[str]:
    return _popen(env, "publish", str(clip), "--session", session, "--to", ",".join(langs),
                  *(["--fast"] if fast else []))


def subscribe(env: dict[str, str], session: str, lang: str, out: Path, *,
              idle_timeout: float = 120) -> subprocess.Popen[str]:
    return _popen(env, "subscribe", "--session", session, "--lang", lang, "-o", str(out),
                  "--timeout", str(idle_timeout))


def finish(proc: subprocess.Popen[str], timeout: float) -> str:
    """Wait for a CLI subprocess; its output if it exited 0, else an AssertionError with it."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"{' '.join(proc.args)} did not finish in {timeout:.0f} s:\n{out}") from None
    assert proc.returncode == 0, f"{' '.join(proc.args)} exited {proc.returncode}:\n{out}"
    return out


def stop(*procs: subprocess.Popen[str]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


_NO_LEADER_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART}


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout: float = 20.0) -> tuple[int, int]:
    """Low/high watermarks, riding out retriable errors (a just-created topic may have no leader yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=10)
        except KafkaException as e:
            err = e.args[0] if e.args else None
            transient = isinstance(err, KafkaError) and (err.retriable() or err.code() in _NO_LEADER_YET)
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def raw_session_records(bootstrap: str, topics: Topics, topic: str, session: str,
                        timeout: float = 30.0) -> list[tuple[int, bytes]]:
    """(offset, value bytes) of every record keyed `session` on `topic`, from the start to the end now."""
    return [(offset, value) for offset, _, value in timed_session_records(bootstrap, topics, topic, session, timeout)]


def timed_session_records(bootstrap: str, topics: Topics, topic: str, session: str,
                          timeout: float = 30.0) -> list[tuple[int, float, bytes]]:
    """(offset, broker timestamp in s, value bytes) of every record keyed `session` on `topic`."""
    part = partition_for(session.encode(), topics.partitions)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"it-read-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False})
    try:
        lo, hi = _watermarks(consumer, TopicPartition(topic, part))
        consumer.assign([TopicPartition(topic, part, lo)])
        out: list[tuple[int, float, bytes]] = []
        deadline = time.monotonic() + timeout
        pos = lo
        while pos < hi:
            assert time.monotonic() < deadline, f"read {topic}[{part}] up to {pos} of {hi} in {timeout} s"
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            pos = msg.offset() + 1
            if msg.key() == session.encode():
                out.append((msg.offset(), msg.timestamp()[1] / 1000, msg.value()))
        return out
    finally:
        consumer.close()


def session_records(bootstrap: str, registry: SchemaRegistry, topics: Topics, topic: str,
                    session: str) -> list[Record]:
    return [decode(v, registry) for _, v in raw_session_records(bootstrap, topics, topic, session)]


def wait_for(predicate, timeout: float, what: str, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what} (last: {got!r})"
        time.sleep(every)
