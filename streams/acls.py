"""One Kafka principal per stage (and for the media producer, the subscriber and the topics Job), with
ACLs for exactly what it uses, derived from the topology: `livedub acls` prints them, `--apply`
creates the SCRAM users (passwords generated, written to a directory, never printed) and the ACLs.

A stage reads its input topics, writes its output and the DLQ, reads its output back (after a
restart it recovers what it already wrote: streams/marks.py), reads and commits in its own consumer
group, and may describe (see, not read) every topic of the deployment, which its start-up topic
check lists. Nothing else: the asr principal cannot read `media.video` or write `dubbed.video`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.app import group_id
from streams.topics import Topics
from workers.errors import ConfigError, TransportError

SCRAM_ITERATIONS = 8192


@dataclass(frozen=True)
class Grant:
    principal: str  # user name (User:<name>)
    resource: str  # "topic" | "group"
    name: str
    operation: str  # READ | WRITE | DESCRIBE | DESCRIBE_CONFIGS | CREATE | ALTER | ALTER_CONFIGS
    prefixed: bool = False


def principal(prefix: str, role: str) -> str:
    """`livedub-asr` for the default prefix: the stage's consumer group name, one name for both."""
    return group_id(role, prefix)


def grants(topics: Topics) -> list[Grant]:
    """Every ACL of a deployment (one prefix), from the topology."""
    out: list[Grant] = []
    topo, p = topics.topology, topics.prefix
    for stage in topo.names:
        who = principal(p, stage)
        out += [Grant(who, "topic", t, "READ") for t in topics.inputs(stage)]
        for t in (topics.output(stage), topics.dlq):
            out += [Grant(who, "topic", t, "WRITE"), Grant(who, "topic", t, "DESCRIBE_CONFIGS")]
        if stage != topo.frame_stage:  # it reads back what it wrote (lip sync deduplicates frames itself)
            out.append(Grant(who, "topic", topics.output(stage), "READ"))
        out.append(Grant(who, "group", group_id(stage, p), "READ"))
        out.append(Grant(who, "topic", p, "DESCRIBE", prefixed=True))
    media = principal(p, "publisher")
    out += [Grant(media, "topic", topics.name(hop), "WRITE") for hop in topo.sources]
    out.append(Grant(media, "topic", p, "DESCRIBE", prefixed=True))
    sub = principal(p, "subscriber")
    out += [Grant(sub, "topic", t, "READ") for t in (topics.media_audio, topics.transcripts, topics.dubbed_speech,
                                                     topics.dubbed_video)]
    out.append(Grant(sub, "group", f"{p.rstrip('.-_') or 'livedub'}-subscribe-", "READ", prefixed=True))
    out.append(Grant(sub, "topic", p, "DESCRIBE", prefixed=True))
    admin = principal(p, "topics")
    out += [Grant(admin, "topic", p, op, prefixed=True) for op in ("CREATE", "ALTER", "DESCRIBE",
                                                                     "DESCRIBE_CONFIGS", "ALTER_CONFIGS")]
    return out


def principals(topics: Topics) -> list[str]:
    return sorted({g.principal for g in grants(topics)})


def _binding(g: Grant) -> Any:
    from confluent_kafka.admin import (
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    return AclBinding(ResourceType.TOPIC if g.resource == "topic" else ResourceType.GROUP, g.name,
                      ResourcePatternType.PREFIXED if g.prefixed else ResourcePatternType.LITERAL,
                      f"User:{g.principal}", "*", AclOperation[g.operation], AclPermissionType.ALLOW)


def apply(admin: Any, topics: Topics, password_dir: Path, timeout: float = 30.0) -> dict[str, Path]:
    """Create (or reset) each principal's SCRAM-SHA-512 credential and every ACL; returns the
    password file of each principal (mode 600, in `password_dir`)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

    password_dir.mkdir(parents=True, exist_ok=True)
    files, upserts = {}, []
    for who in principals(topics):
        pw = secrets.token_urlsafe(24)
        path = password_dir / f"{who}.password"
        path.touch(mode=0o600)
        path.write_text(pw + "\n")
        files[who] = path
        upserts.append(UserScramCredentialUpsertion(
            who, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS), pw.encode()))
    try:
        for fut in admin.alter_user_scram_credentials(upserts, request_timeout=timeout).values():
            fut.result(timeout=timeout)
        for fut in admin.create_acls([_binding(g) for g in grants(topics)], request_timeout=timeout).values():
            fut.result(timeout=timeout)
    except KafkaException as e:
        err = e.args[0] if e.args else e
        if "authoriz" in str(err).lower():
            raise ConfigError(f"the broker refused to create users or ACLs ({err}): run as a super user") from e
        raise TransportError(f"cannot create users or ACLs: {err}") from e
    return files


def table(topics: Topics) -> str:
    rows = [f"{'principal':<24} {'resource':<8} {'name':<32} operation"]
    for g in grants(topics):
        rows.append(f"User:{g.principal:<19} {g.resource:<8} {g.name + ('*' if g.prefixed else ''):<32} {g.operation}")
    return "\n".join(rows)
