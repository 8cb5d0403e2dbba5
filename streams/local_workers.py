"""Run the five stage workers as local subprocesses (benchmark, tests, a laptop demo)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from monitoring.histograms import sample_sum
from workers.errors import TransportError
from workers.topology import STAGE_ORDER


@dataclass
class LocalWorkers:
    """`livedub worker <stage>` for every stage, each with its own HTTP port and log file."""

    env: dict[str, str]
    logs: Path
    base_port: int = 9480
    profile: str = "real"
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def port(self, stage: str) -> int:
        return self.base_port + STAGE_ORDER.index(stage)

    def start(self, timeout_s: float = 180.0) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for stage in STAGE_ORDER:
            env = {**os.environ, **self.env, "LIVEDUB_HTTP_PORT": str(self.port(stage))}
            log = (self.logs / f"{stage}.log").open("wb")
            self.procs[stage] = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker", stage, "--profile", self.profile],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        for stage in STAGE_ORDER:
            while not self._ready(stage):
                if self.procs[stage].poll() is not None:
                    raise TransportError(f"{stage} worker exited: see {self.logs / (stage + '.log')}")
                if time.monotonic() > deadline:
                    raise TransportError(f"{stage} worker not ready in {timeout_s:.0f} s")
                time.sleep(0.25)

    def _ready(self, stage: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port(stage)}/readyz", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics_text(self) -> dict[str, str]:
        out = {}
        for stage in STAGE_ORDER:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port(stage)}/metrics", timeout=5) as r:
                out[stage] = r.read().decode()
        return out

    def metric_sum(self, name: str) -> float:
        """Sample `name` summed over every worker (e.g. dead letters, consumer lag)."""
        return sum(sample_sum(text, name) for text in self.metrics_text().values())

    def stop(self, timeout_s: float = 20.0) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.procs.clear()

    def __enter__(self) -> LocalWorkers:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
