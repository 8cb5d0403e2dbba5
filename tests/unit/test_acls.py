"""Per-stage ACLs come from the topology: each principal gets what its stage uses and nothing else."""

from __future__ import annotations

from streams.acls import grants, principal, principals, table
from streams.topics import Topics

T = Topics(prefix="p.")


def ops(who: str) -> set[tuple[str, str, str]]:
    return {(g.resource, g.name + ("*" if g.prefixed else ""), g.operation) for g in grants(T) if g.principal == who}


def test_the_asr_principal_reads_segments_writes_transcripts_and_nothing_else():
    assert ops(principal(T.prefix, "asr")) == {
        ("topic", "p.segments", "READ"),
        ("topic", "p.transcripts", "WRITE"), ("topic", "p.transcripts", "DESCRIBE_CONFIGS"),
        ("topic", "p.transcripts", "READ"),  # reads back what it wrote, after a restart
        ("topic", "p.dlq", "WRITE"), ("topic", "p.dlq", "DESCRIBE_CONFIGS"),
        ("group", "p-asr", "READ"),
        ("topic", "p.*", "DESCRIBE"),
    }


def test_lip_sync_reads_its_side_inputs_and_does_not_read_back_frames():
    got = ops(principal(T.prefix, "lipsync"))
    assert {("topic", "p.media.video", "READ"), ("topic", "p.dubbed.speech", "READ"),
            ("topic", "p.session.control", "READ"), ("topic", "p.dubbed.video", "WRITE")} <= got
    assert ("topic", "p.dubbed.video", "READ") not in got


def test_only_the_publisher_writes_media_and_nobody_but_the_topics_job_creates():
    writers = {g.principal for g in grants(T) if g.operation == "WRITE" and g.name == "p.media.video"}
    assert writers == {principal(T.prefix, "publisher")}
    creators = {g.principal for g in grants(T) if g.operation == "CREATE"}
    assert creators == {principal(T.prefix, "topics")}


def test_one_principal_per_stage_plus_the_clients():
    assert principals(T) == sorted(["p-segment", "p-asr", "p-translate", "p-tts", "p-lipsync", "p-publisher",
                                    "p-subscriber", "p-topics"])
    assert "User:p-asr" in table(T)
