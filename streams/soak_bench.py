"""Soak and capacity: `livedub bench --soak`.

One set of the five workers (calibrated profile: fixed service times that release the CPU, so
what is measured is the platform, not two cores shared by five models) takes N concurrent live
sessions for M minutes, N = 1, 2, 3, ... Sessions start staggered over one segment period, as
independent speakers do (in phase, every stage would queue one session behind the other by
design). While they run, every worker's RSS and the summed consumer lag are sampled; afterwards
each level reports e2e p50/p95 over all segments, the drift of latency over the run (median of
the last quarter of segments minus that of the first), RSS growth and the lag once drained.
Capacity is the largest N whose e2e p95 stays within 1.2x of one session's. Writes OUT/soak.json.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from streams.bench import _run
from streams.local_workers import LocalWorkers
from streams.topics import admin_client, topics_from_settings
from workers.bench.calibrated import DEFAULT_SERVICE_S
from workers.bench.run import Feed, calibrated_feed, machine, percentile
from workers.settings import Settings, load_settings

WITHIN = 1.2  # e2e p95 of N sessions over that of one, the capacity criterion
SETTLE_S = 6.0


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class _Sampler(threading.Thread):
    """Every `every_s`: RSS (MB) of each worker process and the consumer lag summed over stages."""

    def __init__(self, workers: LocalWorkers, every_s: float) -> None:
        super().__init__(daemon=True)
        self.workers, self.every_s = workers, every_s
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def sample(self) -> dict[str, Any]:
        rss = {stage: round(_rss_mb(p.pid), 1) for stage, p in self.workers.procs.items()}
        return {"t": time.time(), "rss_mb": rss, "lag": self.workers.metric_sum("livedub_consumer_lag")}

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            self.samples.append(self.sample())


def _level(workers: LocalWorkers, settings: Settings, n: int, feed: Feed, segment_s: float,
           every_s: float) -> dict[str, Any]:
    """N sessions at once, staggered over one segment period; their figures and the samples."""
    results: list[dict[str, Any]] = [{}] * n

    def session(k: int) -> None:
        time.sleep(k * segment_s / n)
        results[k] = _run(feed, settings, realtime=True, sid=f"soak{n}-{k}-{uuid.uuid4().hex[:6]}")

    sampler = _Sampler(workers, every_s)
    first = sampler.sample()
    sampler.start()
    threads = [threading.Thread(target=session, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sampler.stop.set()
    sampler.join()
    time.sleep(SETTLE_S)  # the lag gauge is refreshed every 5 s: read it once the level has drained
    last = sampler.sample()
    lat = [x for r in results for x in r.get("latency_per_segment_s", [])]
    quarter = max(1, len(feed.chunks) // 4)
    early = [x for r in results for x in r.get("latency_per_segment_s", [])[:quarter]]
    late = [x for r in results for x in r.get("latency_per_segment_s", [])[-quarter:]]
    samples = [first, *sampler.samples, last]
    return {
        "sessions": n,
        "segments_expected": n * len(feed.chunks),
        "segments_done": sum(r.get("segments", 0) for r in results),
        "e2e_p50_s": percentile(lat, 0.5),
        "e2e_p95_s": percentile(lat, 0.95),
        "drift_s": statistics.median(late) - statistics.median(early) if early and late else float("nan"),
        "rss_start_mb": first["rss_mb"],
        "rss_end_mb": last["rss_mb"],
        "rss_growth_mb": {s: round(last["rss_mb"][s] - first["rss_mb"][s], 1) for s in first["rss_mb"]},
        "rss_max_mb": {s: max(x["rss_mb"][s] for x in samples) for s in first["rss_mb"]},
        "lag_max": max(x["lag"] for x in samples),
        "lag_end": last["lag"],  # SETTLE_S after the last session ended
        "samples": [{**x, "t": round(x["t"] - first["t"], 1)} for x in samples],
    }


def soak(workdir: Path, sessions: list[int], minutes: float, segment_s: float = 1.0,
         every_s: float = 5.0, stop_when_over: bool = True) -> dict[str, Any]:
    """Run each level in `sessions` on one worker set; stops after the first level over capacity."""
    prefix = f"livedub-soak-{uuid.uuid4().hex[:6]}."
    settings = load_settings(topics={"prefix": prefix})
    workers = LocalWorkers({"LIVEDUB_TOPICS__PREFIX": prefix}, workdir / "logs-soak", profile="calibrated")
    feed = calibrated_feed(max(4, round(minutes * 60 / segment_s)), segment_s)
    result: dict[str, Any] = {"machine": machine(), "profile": "calibrated", "service_s": DEFAULT_SERVICE_S,
                              "minutes": minutes, "segment_s": segment_s, "within": WITHIN, "levels": []}
    with workers:
        # warm-up: assignments and connections made before anything is timed
        _run(Feed(feed.chunks[:2], feed.frames, feed.frame_args), settings, realtime=False)
        for n in sessions:
            level = _level(workers, settings, n, feed, segment_s, every_s)
            base = result["levels"][0]["e2e_p95_s"] if result["levels"] else level["e2e_p95_s"]
            level["p95_over_one"] = level["e2e_p95_s"] / base
            level["within_capacity"] = level["p95_over_one"] <= WITHIN and \
                level["segments_done"] == level["segments_expected"]
            result["levels"].append(level)
            growth = max(level["rss_growth_mb"].values())
            print(f"[soak] {n} session(s) x {minutes:g} min: e2e p50 {level['e2e_p50_s']:.3f} s p95 "
                  f"{level['e2e_p95_s']:.3f} s (x{level['p95_over_one']:.2f} of one), drift "
                  f"{level['drift_s'] * 1000:+.0f} ms, RSS growth max {growth:+.1f} MB, lag max "
                  f"{level['lag_max']:.0f} end {level['lag_end']:.0f}, "
                  f"{level['segments_done']}/{level['segments_expected']} segments")
            if stop_when_over and not level["within_capacity"]:
                break
    admin_client(settings.kafka).delete_topics(topics_from_settings(settings).all())
    ok = [lv["sessions"] for lv in result["levels"] if lv["within_capacity"]]
    result["capacity_sessions"] = max(ok) if ok else 0
    print(f"[soak] capacity of one worker set: {result['capacity_sessions']} concurrent session(s) "
          f"with e2e p95 within x{WITHIN} of one session")
    return result


def run(out: Path, sessions: list[int] | None = None, minutes: float = 5.0) -> dict[str, Any]:
    result = soak(out, sessions or [1, 2, 3, 4], minutes)
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    return result
