"""Create (or grow) LiveDub's Kafka topics; run by the chart's topics Helm hook Job.

Reads the same LIVEDUB_KAFKA__* / LIVEDUB_TOPICS__* environment as the workers, plus
LIVEDUB_TOPIC_NAMES (comma-separated, without prefix), LIVEDUB_TOPIC_REPLICATION_FACTOR
and LIVEDUB_TOPIC_CONFIG (JSON object of topic configs). Existing topics keep their
configuration; a topic with fewer partitions than wanted is grown (Kafka cannot shrink).
Needs only confluent-kafka, which the worker image already has.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

ENV = "LIVEDUB_KAFKA__"


def admin_config(env: Mapping[str, str]) -> dict[str, str]:
    """librdkafka client config from the LIVEDUB_KAFKA__* environment."""
    conf = {
        "bootstrap.servers": env[ENV + "BOOTSTRAP_SERVERS"],
        "security.protocol": env.get(ENV + "SECURITY_PROTOCOL", "PLAINTEXT"),
        "client.id": "livedub-topics-job",
    }
    if conf["security.protocol"].startswith("SASL_"):
        conf["sasl.mechanism"] = env.get(ENV + "SASL_MECHANISM", "SCRAM-SHA-512")
        conf["sasl.username"] = env[ENV + "SASL_USERNAME"]
        conf["sasl.password"] = env[ENV + "SASL_PASSWORD"]
    for var, key in (
        ("SSL_CAFILE", "ssl.ca.location"),
        ("SSL_CERTFILE", "ssl.certificate.location"),
        ("SSL_KEYFILE", "ssl.key.location"),
    ):
        if env.get(ENV + var):
            conf[key] = env[ENV + var]
    return conf


def wanted_topics(env: Mapping[str, str]) -> dict[str, int]:
    """Full topic name -> partition count."""
    prefix = env.get("LIVEDUB_TOPICS__PREFIX", "livedub.")
    partitions = int(env.get("LIVEDUB_TOPICS__PARTITIONS", "12"))
    names = [n.strip() for n in env["LIVEDUB_TOPIC_NAMES"].split(",") if n.strip()]
    return {prefix + n: partitions for n in names}


def plan(wanted: Mapping[str, int], existing: Mapping[str, int]) -> tuple[list[str], dict[str, int]]:
    """Topics to create, and existing topics to grow to a new partition count."""
    create = sorted(t for t in wanted if t not in existing)
    grow = {t: n for t, n in sorted(wanted.items()) if t in existing and existing[t] < n}
    return create, grow


def main() -> int:  # pragma: no cover - needs a broker
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    env = os.environ
    admin = AdminClient(admin_config(env))
    metadata = admin.list_topics(timeout=30)
    existing = {name: len(t.partitions) for name, t in metadata.topics.items()}
    create, grow = plan(wanted_topics(env), existing)
    rf = int(env.get("LIVEDUB_TOPIC_REPLICATION_FACTOR", "3"))
    config = {k: str(v) for k, v in json.loads(env.get("LIVEDUB_TOPIC_CONFIG", "{}")).items()}
    wanted = wanted_topics(env)
    failed = False
    if create:
        new = [NewTopic(t, num_partitions=wanted[t], replication_factor=rf, config=config) for t in create]
        for topic, fut in admin.create_topics(new, request_timeout=60).items():
            try:
                fut.result()
                print(f"created {topic} ({wanted[topic]} partitions, rf={rf})")
            except Exception as e:  # report every topic, then fail
                if "TOPIC_ALREADY_EXISTS" in str(e):
                    print(f"{topic} already exists")
                else:
                    print(f"failed to create {topic}: {e}", file=sys.stderr)
                    failed = True
    if grow:
        parts = [NewPartitions(t, n) for t, n in grow.items()]
        for topic, fut in admin.create_partitions(parts, request_timeout=60).items():
            try:
                fut.result()
                print(f"grew {topic} to {grow[topic]} partitions")
            except Exception as e:
                print(f"failed to grow {topic}: {e}", file=sys.stderr)
                failed = True
    for topic in sorted(set(wanted) - set(create) - set(grow)):
        print(f"{topic} ok ({existing[topic]} partitions)")
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
