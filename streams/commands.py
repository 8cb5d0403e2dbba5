"""Kafka sub-commands of `livedub`: worker, publish, subscribe, topics."""

from __future__ import annotations

import argparse
from pathlib import Path

from workers.topology import STAGE_ORDER


def _langs(value: str) -> list[str]:
    return [v.strip().lower() for v in value.split(",") if v.strip()]


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker import run_worker
    from workers.settings import load_settings

    run_worker(load_settings(), args.stage, loglevel="debug" if args.debug else "info", profile=args.profile)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from streams.publish import publish
    from workers.settings import load_settings

    counts = publish(args.input, args.session, args.to, load_settings(), source_lang=args.source,
                     pace=not args.fast)
    print(f"published session {args.session}: {counts['audio']} audio chunks, {counts['video']} frames")
    return 0


def cmd_subscribe(args: argparse.Namespace) -> int:
    from streams.subscribe import subscribe
    from workers.settings import load_settings

    a = subscribe(args.session, args.lang, args.output, load_settings(), timeout_s=args.timeout,
                  subtitles=args.subtitles)
    print(f"{args.lang}: {args.output} ({a.segments} segments dubbed, {a.frames_written} frames, "
          f"{a.duplicates} duplicates dropped)")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from streams.registry import SchemaRegistry
    from streams.topics import _partition_counts, admin_client, create_topics, topics_from_settings, value_subject
    from workers.settings import load_settings

    settings = load_settings()
    topics = topics_from_settings(settings)
    admin = admin_client(settings.kafka)
    with SchemaRegistry.from_settings(settings.schema_registry) as reg:
        if args.create:
            from streams.codecs import load_schema

            created = create_topics(admin, topics, grow=args.grow)
            print(f"created: {', '.join(created) or 'nothing (all exist)'}")
            for topic, schema in topics.schemas().items():  # what workers do at start (BACKWARD rule)
                reg.register_with_compatibility(value_subject(topic), load_schema(schema))
        counts = _partition_counts(admin, 10.0)
        print(f"{'topic':<32} {'partitions':<14} {'schema':<15} subject (registry)")
        for topic, schema in topics.schemas().items():
            subject = value_subject(topic)
            latest = reg.get_latest(subject)
            reg_s = f"id {latest[0]} v{latest[1]}" if latest else "not registered"
            parts = counts.get(topic)
            print(f"{topic:<32} {str(parts) + ' partitions' if parts else 'missing':<14} "
                  f"{schema:<15} {subject} ({reg_s})")
    return 0


def cmd_acls(args: argparse.Namespace) -> int:
    from streams.acls import apply, table
    from streams.topics import admin_client, topics_from_settings
    from workers.settings import load_settings

    settings = load_settings()
    topics = topics_from_settings(settings)
    print(table(topics))
    if args.apply:
        if args.password_dir is None:
            raise SystemExit("livedub acls --apply needs --password-dir (where each principal's password is written)")
        files = apply(admin_client(settings.kafka), topics, args.password_dir)
        print(f"{len(files)} principals with SCRAM-SHA-512 credentials; passwords in {args.password_dir}/")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser("worker", help="run one stage as a Faust worker over Kafka (serves /metrics)")
    w.add_argument("stage", choices=STAGE_ORDER)
    w.add_argument("--profile", choices=("real", "calibrated"), default="real",
                   help="calibrated: fixed service times instead of models (benchmark)")
    w.set_defaults(fn=cmd_worker)

    p = sub.add_parser("publish", help="stream a media file into Kafka as a live session")
    p.add_argument("input", type=Path)
    p.add_argument("--session", required=True)
    p.add_argument("--to", type=_langs, required=True, help="target language(s), e.g. es,fr")
    p.add_argument("--from", dest="source", default=None)
    p.add_argument("--fast", action="store_true", help="as fast as possible instead of real-time pace")
    p.set_defaults(fn=cmd_publish)

    s = sub.add_parser("subscribe", help="assemble a session's dubbed output for one language")
    s.add_argument("--session", required=True)
    s.add_argument("--lang", required=True)
    s.add_argument("-o", "--output", type=Path, required=True)
    s.add_argument("--timeout", type=float, default=600.0, help="give up after this many idle seconds")
    s.add_argument("--subtitles", action="store_true",
                   help="also read the transcripts topic and write SRT and WebVTT of the translation and of "
                        "the source transcript next to the output, as `livedub dub --subtitles` does")
    s.set_defaults(fn=cmd_subscribe)

    a = sub.add_parser("acls", help="the Kafka principals and ACLs of a deployment (one per stage), from the topology")
    a.add_argument("--apply", action="store_true",
                   help="create the SCRAM users and ACLs on the broker (as a super user, e.g. the local stack's admin)")
    a.add_argument("--password-dir", type=Path, default=None, help="with --apply: write <principal>.password here")
    a.set_defaults(fn=cmd_acls)

    t = sub.add_parser("topics", help="list topics, partitions, their Avro schemas and subjects")
    t.add_argument("--create", action="store_true",
                   help="create missing topics and register their schemas first")
    t.add_argument("--grow", action="store_true",
                   help="with --create: grow topics with fewer partitions than LIVEDUB_TOPICS__PARTITIONS")
    t.set_defaults(fn=cmd_topics)
