"""Effectively once under SIGKILL: 20 kills of random workers at random moments while several sessions
run; afterwards every hop carries each seq of each session exactly once (read_committed consumers),
and dubbed.video each frame once per language. The calibrated profile (fixed service times, no
models) keeps it to about two minutes."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from streams.codecs import decode
from streams.registry import SchemaRegistry
from streams.topics import Topics, value_subject
from tests.integration.kafka_io import (
    env_for,
    finish,
    publish,
    session_records,
    stop,
    subscribe,
    timed_session_records,
)
from tests.integration.stage_workers import STAGES, Workers
from tests.integration.test_kafka_pipeline import _chunks
from tests.support.clips import make_clip
from workers.records import DubbedFrame

if TYPE_CHECKING:
    from conftest import KafkaStack

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
KILLS = 20
SESSIONS = 4
HOPS_WITH_SEQ = ("segments", "transcripts", "translations", "dubbed.speech")


@pytest.fixture
def topics(unique_topics: Topics, registry_client: SchemaRegistry):
    yield unique_topics
    for topic in unique_topics.all():
        registry_client.delete_subject(value_subject(topic))


def test_twenty_kills_at_random_leave_every_seq_exactly_once(kafka_stack: KafkaStack, topics: Topics,
                                                             registry_client, tmp_path: Path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=2.0, size=(160, 120))  # 50 frames
    env = env_for(kafka_stack.env, topics)
    rng = random.Random(20261202)
    sessions = [f"chaos-{i}" for i in range(SESSIONS)]
    kills: list[tuple[float, str]] = []
    published: dict[str, int] = {}  # session -> audio chunks (one calibrated segment each)
    # Every kill stalls its stage until the group drops the dead member (10 s): 20 of them add up to
    # more than the 60 s after which a worker takes a silent session for dead (its publisher gone).
    # This test is about duplicates, so sessions may be silent for longer here.
    with Workers(kafka_stack.env, topics.prefix, tmp_path / "logs", profile="calibrated",
                 cache_dir=tmp_path / "cache", partitions=topics.partitions,
                 extra_env={"LIVEDUB_KAFKA__SESSION_IDLE_S": "600"}) as w:
        w.start()
        done = threading.Event()

        t0 = time.time()
        timeline: list[tuple[float, str]] = []  # (s since t0, what) for a failure's message

        def killer() -> None:
            while len(kills) < KILLS and not done.is_set():
                time.sleep(rng.uniform(0.5, 2.5))
                stage = rng.choice(STAGES)
                w.kill(stage)
                kills.append((round(time.time() - t0, 1), stage))
                w.start(stage)
                timeline.append((round(time.time() - t0, 1), f"{stage} ready again"))

        subs = [subscribe(env, s, "es", tmp_path / f"{s}.mp4") for s in sessions]
        chaos = threading.Thread(target=killer, daemon=True)
        chaos.start()
        try:
            # each killed worker is back only after its group drops the dead member (session timeout,
            # 10 s): spread the sessions over the kills, so kills land in every one of them
            for i, s in enumerate(sessions):
                while len(kills) < i * KILLS // SESSIONS:
                    time.sleep(0.2)
                timeline.append((round(time.time() - t0, 1), f"publishing {s}"))
                published[s] = _chunks(finish(publish(env, clip, s, ["es"]), 120))
            chaos.join(timeout=900)
            assert len(kills) == KILLS, kills
            for p in subs:
                finish(p, 300)
        except AssertionError as e:
            what = sorted(timeline + [(t, f"{stage} killed") for t, stage in kills])
            raise AssertionError(f"{e}\n{_hops(kafka_stack.bootstrap, registry_client, topics, sessions, t0)}\n"
                                 + "\n".join(f"{t:7.1f} s  {x}" for t, x in what)) from None
        finally:
            done.set()
            stop(*subs)
    print(f"\nkills (s, stage): {kills}")
    assert set(s for _, s in kills) == set(STAGES), "every stage killed at least once"

    for s in sessions:
        for hop in HOPS_WITH_SEQ:
            seqs = [r.seq for r in session_records(kafka_stack.bootstrap, registry_client, topics, topics.name(hop), s)]
            twice = {q: n for q, n in Counter(seqs).items() if n > 1}
            assert not twice, f"{s} on {hop}: seqs written more than once {twice}"
            assert sorted(q for q in seqs if q >= 0) == list(range(published[s])), f"{s} on {hop}: {sorted(seqs)}"
        frames = [f.frame_seq for f in session_records(kafka_stack.bootstrap, registry_client, topics,
                                                       topics.dubbed_video, s) if isinstance(f, DubbedFrame)]
        body = [q for q in frames if q >= 0]
        assert sorted(body) == list(range(50)), f"{s} on dubbed.video: {sorted(body)}"


def _hops(bootstrap: str, registry: SchemaRegistry, topics: Topics, sessions: list[str], t0: float) -> str:
    """What each hop holds of each session, and when it was written (s since t0): where a session stopped."""
    lines = []
    for s in sessions:
        for topic in topics.all():
            rows = timed_session_records(bootstrap, topics, topic, s)
            if not rows:
                continue
            marks = [f"{getattr(r, 'seq', getattr(r, 'frame_seq', '?'))}@{ts - t0:.1f}"
                     for _, ts, v in rows for r in [decode(v, registry)]]
            shown = marks if len(marks) <= 12 else [*marks[:4], f"... {len(marks) - 8} more ...", *marks[-4:]]
            lines.append(f"{s} {topic.removeprefix(topics.prefix)}: {len(rows)} records: {' '.join(shown)}")
    return "\n".join(lines)
