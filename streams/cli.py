"""`livedub` command line: dub, sample, doctor, bench (embedded) and the Kafka commands.

Every LiveDubError becomes a one-line message and exit status 2; a traceback
is shown only with --debug, so bad input never greets a user with a stack.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from workers.errors import LiveDubError


def _langs(value: str) -> list[str]:
    langs = [v.strip().lower() for v in value.split(",") if v.strip()]
    if not langs:
        raise argparse.ArgumentTypeError("expected language codes such as es or es,fr")
    return langs


def _counts(value: str) -> list[int]:
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive counts such as 1,2,4, got {value!r}")
    return counts


def cmd_dub(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from workers.dub import dub_file
    from workers.media.reader import probe
    from workers.settings import load_settings

    settings = load_settings()
    info = probe(args.input)
    bar = tqdm(total=round(info.duration_s or 0, 1), unit="s", desc=f"dubbing ({args.mode})",
               disable=args.quiet or not info.duration_s, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s media")

    def progress(t: float) -> None:
        bar.update(max(0.0, min(t, bar.total) - bar.n))

    result = asyncio.run(
        dub_file(args.input, args.to, settings, out=args.output, source_lang=args.source,
                 mode=args.mode, on_progress=progress, subtitles=args.subtitles)
    )
    bar.close()
    rep = result.report
    for lang, path in result.outputs.items():
        n = sum(1 for s in rep.segments if s.lang == lang)
        print(f"{lang}: {path} ({n} segments dubbed)")
        if args.subtitles:
            from workers.media.subtitles import subtitle_paths

            print(f"{lang}: subtitles {', '.join(str(p) for ps in subtitle_paths(path).values() for p in ps)}")
    print(f"{rep.mode}: {rep.wall_s:.1f} s for {info.duration_s or 0:.1f} s of media")
    for what in rep.dropped:
        print(f"warning: kept the original for {what}", file=sys.stderr)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from workers.media.sample import make_sample

    info = make_sample(args.output, seconds=args.seconds)
    print(f"wrote {args.output} ({info.duration_s:.1f} s, {info.width}x{info.height} @ {info.fps:g} fps)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from workers.doctor import run_doctor

    return run_doctor(load=args.load)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.transport in ("kafka", "live-kafka") or args.soak or args.client:  # need a broker: check before any work
        from streams.local_stack import ensure_kafka
        from workers.settings import load_settings

        ensure_kafka(load_settings())
    if args.quality:
        from workers.bench.quality import run_quality

        run_quality(args.out)
        return 0
    if args.asr_window:
        from workers.bench.asr_window import run as run_asr_window

        run_asr_window(args.out)
        return 0
    if args.lipsync:
        from workers.bench.lipsync_quality import run

        run(args.out)
        return 0
    if args.reject:
        from streams.reject_bench import run as run_reject

        run_reject(args.out, kafka=args.transport == "kafka")
        return 0
    if args.client:
        from streams.client_latency import run as run_client

        run_client(args.out, repeat=args.repeat)
        return 0
    if args.soak:
        from streams.soak_bench import run as run_soak

        run_soak(args.out, sessions=args.sessions, minutes=args.minutes)
        return 0
    if args.voice:
        from workers.bench.voice_quality import run as run_voice

        run_voice(args.out)
        return 0
    if args.stage:
        from workers.bench.stages import run_stage_bench

        run_stage_bench(args.stage, args.out)
        return 0
    if args.transport == "live-kafka":
        from streams.live_bench import run as run_live_kafka

        run_live_kafka(args.out, repeat=args.repeat, delay_s=args.delay)
        return 0
    if args.transport == "live":
        from workers.bench.live import run as run_live

        run_live(args.out, repeat=args.repeat, delay_s=args.delay)
        return 0
    if args.transport == "kafka":
        from streams.bench import run_bench
    else:
        from workers.bench.run import run_bench

    run_bench(args.out, profiles=args.profile, segments=args.segments, repeat=args.repeat)
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    """Join a meeting room and dub everyone in it until interrupted (SIGINT/SIGTERM: leave cleanly)."""
    import signal

    from prometheus_client import CollectorRegistry, start_http_server

    from monitoring.metrics import Metrics
    from workers.live.bot import CallBot
    from workers.settings import load_settings

    settings = load_settings(**({"livekit": {"delay_s": args.delay}} if args.delay is not None else {}))
    logging.getLogger("workers.live").setLevel(logging.INFO)  # joins, leaves, each segment on time or late
    metrics = Metrics(CollectorRegistry())
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.registry)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        dubbing = None
        if args.transport == "kafka":
            from streams.live_kafka import KafkaDubbing
            from streams.local_stack import ensure_kafka

            ensure_kafka(settings)
            dubbing = KafkaDubbing(settings)
        if args.rooms is not None:
            from workers.live.agent import RoomAgent

            bot = RoomAgent(settings, tuple(args.to), pattern=args.rooms, metrics=metrics, dubbing=dubbing)
            where = f"rooms matching {args.rooms!r} as people come"
        else:
            bot = CallBot(settings, args.room, tuple(args.to), metrics=metrics, dubbing=dubbing)
            where = f"room {args.room}"
        print(f"dubbing {where} into {','.join(args.to)} (delay {settings.livekit.delay_s:g} s, "
              f"{args.transport}); Ctrl-C leaves", flush=True)
        await bot.run(stop)

    asyncio.run(main())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the call page until interrupted."""
    from aiohttp import web

    from workers.live.page import create_app
    from workers.settings import load_settings

    app = create_app(load_settings(), tuple(args.to))
    print(f"call page on http://{args.host}:{args.port}/ (languages {','.join(args.to)}); Ctrl-C stops", flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="livedub", description="Real-time multilingual dubbing with lip sync.")
    p.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("dub", help="dub a media file in process (no broker)")
    d.add_argument("input", type=Path)
    d.add_argument("--to", type=_langs, required=True, help="target language(s), e.g. es or es,fr")
    d.add_argument("--from", dest="source", default=None, help="source language (default: detect)")
    d.add_argument("-o", "--output", type=Path, default=None,
                   help="output file; with several languages use {lang} in the name")
    d.add_argument("--mode", choices=("pipelined", "sequential"), default="pipelined")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.add_argument("--subtitles", action="store_true",
                   help="also write SRT and WebVTT of the translation (out.es.srt/.vtt) and of the source "
                        "transcript (out.es.source.srt/.vtt) next to each output")
    d.set_defaults(fn=cmd_dub)

    s = sub.add_parser("sample", help="write a short talking-face clip to try dubbing on")
    s.add_argument("-o", "--output", type=Path, default=Path("sample.mp4"))
    s.add_argument("--seconds", type=float, default=8.0)
    s.set_defaults(fn=cmd_sample)

    doc = sub.add_parser("doctor", help="which backends, models and system tools are usable")
    doc.add_argument("--load", action="store_true", help="also load each usable model (slower)")
    doc.set_defaults(fn=cmd_doctor)

    b = sub.add_parser("bench", help="sequential vs pipelined latency/throughput benchmark")
    b.add_argument("--out", type=Path, default=Path("bench"))
    b.add_argument("--profile", choices=("all", "calibrated", "real"), default="all")
    b.add_argument("--transport", choices=("embedded", "kafka", "live", "live-kafka"), default="embedded",
                   help="live: a call through the local LiveKit server and the bot, on the clients' clocks: live.json; "
                        "live-kafka: the same through the five Kafka workers: live-kafka.json")
    b.add_argument("--delay", type=float, default=3.0, help="--transport live: the playout delay the bot starts at")
    b.add_argument("--segments", type=int, default=40, help="segments in the calibrated profile")
    b.add_argument("--repeat", type=int, default=3, help="times the sample is repeated in the real profile")
    b.add_argument("--stage", choices=("asr", "translate", "tts", "lipsync", "speaker"), default=None,
                   help="instead: every backend and precision of one stage (latency, size, parity, WER)")
    b.add_argument("--lipsync", action="store_true",
                   help="instead: lip-sync quality (mouth vs speech, closing, above-nose SSIM), judged by a face mesh")
    b.add_argument("--voice", action="store_true",
                   help="instead: does the dub sound like the speaker (similarity, WER, pitch/formants): voice.json")
    b.add_argument("--reject", action="store_true",
                   help="instead: records/s the segment worker's edge rejects per kind of bad record, and a valid "
                        "session's time beside 10,000 malformed ones (with --transport kafka also through five real "
                        "workers): reject.json")
    b.add_argument("--soak", action="store_true",
                   help="instead: N concurrent live sessions for M minutes on one worker set through Kafka "
                        "(calibrated profile): RSS, latency drift, lag, capacity: soak.json")
    b.add_argument("--client", action="store_true",
                   help="instead: latency on a client's clock through Kafka and the real workers, hop by hop from "
                        "the end of speech, cold and warm: client_latency.json")
    b.add_argument("--sessions", type=_counts, default=[1, 2, 3, 4], help="--soak: the levels of N, e.g. 1,2,3")
    b.add_argument("--minutes", type=float, default=5.0, help="--soak: minutes each level runs")
    b.add_argument("--asr-window", action="store_true",
                   help="instead: Whisper's encoder window (30, 10, 6 s) against ms per segment and chrF, per "
                        "language: asr_window.json")
    b.add_argument("--quality", action="store_true",
                   help="instead: per target language, round-trip chrF of a dub from English (MT, TTS, then "
                        "Whisper back) against reference translations: quality.json")
    b.set_defaults(fn=cmd_bench)

    c = sub.add_parser("call", help="join a LiveKit meeting room and dub every participant live")
    which = c.add_mutually_exclusive_group(required=True)
    which.add_argument("--room", help="the room to join")
    which.add_argument("--rooms", metavar="PATTERN",
                       help="the worker form: join every room whose name matches PATTERN (a glob, '*' for all) once "
                            "someone is in it, and leave it when it empties")
    c.add_argument("--to", type=_langs, required=True, help="target language(s), e.g. es or es,fr")
    c.add_argument("--delay", type=float, default=None,
                   help="playout delay D in seconds (default: LIVEDUB_LIVEKIT__DELAY_S); rises when segments are late")
    c.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus /metrics on this port (0: none)")
    c.add_argument("--metrics-host", default="127.0.0.1", help="address /metrics listens on (0.0.0.0 in a pod)")
    c.add_argument("--transport", choices=("embedded", "kafka"), default="embedded",
                   help="kafka: publish the participants' media to the workers' topics and play the dubbed topics")
    c.set_defaults(fn=cmd_call)

    sv = sub.add_parser("serve", help="serve the call page: join a room, hear everyone dubbed into your language")
    sv.add_argument("--to", type=_langs, default=["es", "fr"], help="languages the page offers (the bot's --to)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8080)
    sv.set_defaults(fn=cmd_serve)

    from workers.models.commands import add_commands as add_model_commands

    add_model_commands(sub)
    _add_kafka_commands(sub)
    return p


def _add_kafka_commands(sub: argparse._SubParsersAction) -> None:
    """Kafka commands; their modules import Faust and confluent-kafka only when run."""
    from streams.commands import add_commands

    add_commands(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.fn(args)
    except LiveDubError as e:
        if args.debug:
            raise
        print(f"livedub: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("livedub: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
