"""`livedub bench`: sequential vs pipelined, per profile, into bench.json and a PNG plot.

Each profile is run with two feeds:
* realtime: segment i's audio becomes available at its real timestamp (t0 + end
  of the audio that closes it), as in a live call; gives end-to-end latency per
  segment = output complete minus that availability time (also reported from the
  end of its speech, which adds the pause the segmenter needs to hear);
* burst: everything available at once; gives steady-state throughput
  ((n-1) / time between the first and the last segment's output), free of the
  pipeline's fill and drain.
`bound` is Σ/max of the stages' mean service times measured in the sequential
realtime run (no contention between stages), the speedup an ideal pipeline
would reach.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.bench.calibrated import NullSink, SyntheticFrames, calibrated_pipeline
from workers.pipeline import FrameSource, Pipeline
from workers.records import AudioChunk, SessionControl
from workers.runner import Runner, RunReport, Session
from workers.settings import Settings, load_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Feed:
    """The bench input: one audio chunk per segment, with the offset at which it is available."""

    chunks: list[AudioChunk]  # captured_at holds the offset (s) from t0 until released
    frames: type[FrameSource] | None  # frame source factory per run
    frame_args: tuple[Any, ...] = ()


async def _release(feed: Feed, realtime: bool) -> AsyncIterator[AudioChunk]:
    loop = asyncio.get_running_loop()
    t0_loop, t0_wall = loop.time(), time.time()
    for c in feed.chunks:
        offset = c.captured_at if realtime else 0.0
        if realtime and (wait := t0_loop + offset - loop.time()) > 0:
            await asyncio.sleep(wait)
        yield c.replace(captured_at=t0_wall + offset)


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


async def _run_once(pipeline: Pipeline, feed: Feed, mode: str, realtime: bool, lang: str):
    service: dict[str, list[float]] = defaultdict(list)

    def observe(stage: str, elapsed: float, record: Any) -> None:
        service[stage].append(elapsed)

    for st in pipeline.stages.values():
        st.observers.append(observe)
    session_id = f"bench-{mode}-{'rt' if realtime else 'burst'}"
    chunks = [c.replace(session_id=session_id) for c in feed.chunks]
    feed_s = Feed(chunks, feed.frames, feed.frame_args)
    frames = {lang: feed.frames(*feed.frame_args, session_id)} if feed.frames else None
    session = Session(SessionControl(session_id, "start", (lang,), None), _release(feed_s, realtime),
                      {lang: NullSink()}, frames)
    cpu0 = _cpu_s()
    try:
        report = await Runner(pipeline, queue_size=8, frame_batch=10_000).run(session, mode)
    finally:
        for st in pipeline.stages.values():
            st.observers.remove(observe)
    report.cpu_s = _cpu_s() - cpu0
    return report, dict(service)


def _cpu_s() -> float:
    """CPU seconds used by this process and its finished children (Apertium runs as subprocesses)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _summary(report: RunReport, service: dict[str, list[float]], realtime: bool) -> dict[str, Any]:
    segs = sorted(report.segments, key=lambda s: s.seq)
    lat = [s.latency_s for s in segs]
    done = sorted(s.done_at for s in segs)
    out: dict[str, Any] = {
        "segments": len(segs),
        "cpu_s_per_segment": report.cpu_s / max(1, len(segs)),
        "dropped": len(report.dropped),
        "wall_s": report.wall_s,
        "stages": {k: {"mean_s": statistics.fmean(v), "p95_s": percentile(v, 0.95), "calls": len(v)}
                   for k, v in service.items() if v},
    }
    if realtime:
        from_speech = [s.latency_from_speech_end_s for s in segs]
        out |= {"e2e_p50_s": percentile(lat, 0.5), "e2e_p95_s": percentile(lat, 0.95),
                "e2e_max_s": max(lat, default=float("nan")), "latency_per_segment_s": lat,
                "from_speech_end_p50_s": percentile(from_speech, 0.5),
                "from_speech_end_p95_s": percentile(from_speech, 0.95)}
    else:
        span = done[-1] - done[0] if len(done) > 1 else float("nan")
        out["throughput_sps"] = (len(done) - 1) / span if span and span > 0 else float("nan")
    return out


async def bench_profile(name: str, pipeline: Pipeline, feed: Feed, lang: str) -> dict[str, Any]:
    """Run both modes with both feeds and derive the figures the issue asks for."""
    res: dict[str, dict[str, Any]] = {}
    for mode in ("sequential", "pipelined"):
        rt = _summary(*(await _run_once(pipeline, feed, mode, True, lang)), True)
        burst = _summary(*(await _run_once(pipeline, feed, mode, False, lang)), False)
        res[mode] = {
            "e2e_p50_s": rt["e2e_p50_s"], "e2e_p95_s": rt["e2e_p95_s"],
            "from_speech_end_p50_s": rt["from_speech_end_p50_s"],
            "throughput_sps": burst["throughput_sps"], "realtime": rt, "burst": burst,
        }
    stages = {k: res["sequential"]["realtime"]["stages"][k] for k in pipeline.topology.names
              if k in res["sequential"]["realtime"]["stages"]}
    means = [v["mean_s"] for v in stages.values()]
    bound = sum(means) / max(means)
    seq, pip = res["sequential"], res["pipelined"]
    speedup_tp = pip["throughput_sps"] / seq["throughput_sps"]
    out = {
        "stages": stages,
        "sequential": seq,
        "pipelined": pip,
        "bound": bound,
        "sum_service_s": sum(means),
        "speedup_latency": seq["e2e_p50_s"] / pip["e2e_p50_s"],
        "speedup_throughput": speedup_tp,
        "segments": len(feed.chunks),
    }
    # Σ/max assumes a core per stage. With fewer cores, CPU work caps throughput at
    # cores / CPU-seconds-per-segment: the bound this machine can reach at all.
    cores = os.cpu_count() or 1
    cpu_per_seg = seq["burst"]["cpu_s_per_segment"]
    out["cpu_s_per_segment"] = cpu_per_seg
    out["bound_cpu"] = min(bound, cores / cpu_per_seg / seq["throughput_sps"]) if cpu_per_seg > 0 else bound
    out["checks"] = {
        "speedup_vs_cpu_bound": speedup_tp / out["bound_cpu"],
        "speedup_vs_bound": speedup_tp / bound,
        "pipelined_e2e_p50_over_sum_service": pip["e2e_p50_s"] / sum(means),
    }
    log.info("%s: bound %.2f, throughput speedup %.2f", name, bound, speedup_tp)
    return out


def calibrated_feed(segments: int, segment_s: float = 1.0, gap_s: float = 0.0) -> Feed:
    """`segments` chunks of `segment_s` of silence, one per segment, back to back."""
    n = round(segment_s * 16000)
    chunks = [
        AudioChunk("bench", i, i * (segment_s + gap_s), 16000, bytes(2 * n),
                   captured_at=(i + 1) * segment_s + i * gap_s)
        for i in range(segments)
    ]
    return Feed(chunks, SyntheticFrames)


def real_feed(src: Path, settings: Settings, pipeline: Pipeline) -> Feed:
    """Chunks of the input's audio cut where the segmenter closes each segment (found in a first pass)."""
    import numpy as np

    from workers.media.files import FileFrameSource
    from workers.media.reader import iter_audio
    from workers.records import float_to_pcm

    seg = pipeline["segment"]
    seg.open_session(SessionControl("probe", "start", ("es",), None))
    groups: list[list[np.ndarray]] = [[]]
    starts = [0.0]
    for pts, samples in iter_audio(src, rate=16000, chunk_s=settings.runner.audio_chunk_s):
        groups[-1].append(samples)
        c = AudioChunk("probe", 0, pts, 16000, float_to_pcm(samples))
        if seg.process_sync(c):
            groups.append([])
            starts.append(pts + len(samples) / 16000)
    chunks = []
    for i, (g, start) in enumerate(zip(groups, starts, strict=True)):
        if not g:
            continue
        audio = np.concatenate(g)
        end = start + len(audio) / 16000
        chunks.append(AudioChunk("bench", i, start, 16000, float_to_pcm(audio), captured_at=end))
    seg.flush_sync("probe")  # the tail after the last cut closes at end of stream, as in the timed runs
    seg.end_session("probe")
    return Feed(chunks, FileFrameSource, (src,))


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}


def run_profiles(out: Path, profiles: str = "all", segments: int = 40, repeat: int = 3) -> dict[str, Any]:
    """The embedded (in-process) benchmark of the requested profiles."""
    out.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    result: dict[str, Any] = {"machine": machine(), "transport": "embedded", "profiles": {}}
    if profiles in ("all", "calibrated"):
        pipe = calibrated_pipeline(settings)
        result["profiles"]["calibrated"] = asyncio.run(
            bench_profile("calibrated", pipe, calibrated_feed(segments), "es"))
    if profiles in ("all", "real"):
        result["profiles"]["real"] = _real(out, settings, repeat)
    return result


def write_results(result: dict[str, Any], out: Path) -> None:
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out / "bench.png")
    print_summary(result)


def run_bench(out: Path, profiles: str = "all", segments: int = 40, repeat: int = 3) -> dict[str, Any]:
    """Run the requested profiles in process, write bench.json and bench.png under `out`.

    (`livedub bench --transport kafka` adds the Kafka runs: streams/bench.py.)"""
    result = run_profiles(out, profiles, segments, repeat)
    write_results(result, out)
    return result


def real_input(out: Path, repeat: int) -> Path:
    """The long real-profile input: the talking-face sample, `repeat` times as long."""
    from workers.media.sample import make_sample

    src = out / f"bench-input-{repeat}.mp4"
    if not src.exists():
        make_sample(src, seconds=8.0 * repeat)
    return src


def _real(out: Path, settings: Settings, repeat: int) -> dict[str, Any]:
    src = real_input(out, repeat)
    pipe = Pipeline.build(settings)
    pipe.load()
    feed = real_feed(src, settings, pipe)
    try:
        return asyncio.run(bench_profile("real", pipe, feed, "es"))
    finally:
        pipe.close()


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    profs = result["profiles"]
    fig, axes = plt.subplots(1, max(1, len(profs)), figsize=(6 * max(1, len(profs)), 4), squeeze=False)
    for ax, (name, p) in zip(axes[0], profs.items(), strict=False):
        for mode in ("sequential", "pipelined"):
            lat = p[mode]["realtime"]["latency_per_segment_s"]
            ax.plot(range(len(lat)), lat, marker="o", ms=3, label=f"{mode} (p50 {p[mode]['e2e_p50_s']:.2f} s)")
        if "kafka" in p:
            lat = p["kafka"]["latency_per_segment_s"]
            ax.plot(range(len(lat)), lat, marker="^", ms=3, label=f"kafka (p50 {p['kafka']['e2e_p50_s']:.2f} s)")
        ax.axhline(p["sum_service_s"], ls="--", c="grey", lw=1, label="Σ stage service time")
        ax.set_title(f"{name}: throughput x{p['speedup_throughput']:.2f} (bound {p['bound']:.2f})")
        ax.set_xlabel("segment")
        ax.set_ylabel("end-to-end latency (s)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_summary(result: dict[str, Any]) -> None:
    for name, p in result["profiles"].items():
        print(f"[{name}] segments={p['segments']} bound={p['bound']:.2f} (on {os.cpu_count()} cores at most "
              f"{p['bound_cpu']:.2f}: {p['cpu_s_per_segment']:.2f} CPU-s per segment) "
              f"Σservice={p['sum_service_s']:.2f}s")
        for k, v in p["stages"].items():
            print(f"  {k:<9} mean {v['mean_s'] * 1000:7.1f} ms  p95 {v['p95_s'] * 1000:7.1f} ms")
        for mode in ("sequential", "pipelined"):
            m = p[mode]
            print(f"  {mode:<10} e2e p50 {m['e2e_p50_s']:.2f}s p95 {m['e2e_p95_s']:.2f}s "
                  f"(from speech end p50 {m['from_speech_end_p50_s']:.2f}s) "
                  f"throughput {m['throughput_sps']:.2f} seg/s")
        print(f"  speedup: throughput x{p['speedup_throughput']:.2f} "
              f"({p['checks']['speedup_vs_bound']:.2f} of bound, {p['checks']['speedup_vs_cpu_bound']:.2f} of the "
              f"CPU bound), latency x{p['speedup_latency']:.2f}; "
              f"pipelined e2e p50 = {p['checks']['pipelined_e2e_p50_over_sum_service']:.2f} x Σservice")
