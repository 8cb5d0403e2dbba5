"""The five LiveDub stage workers as real subprocesses (`livedub worker <stage>`), for integration tests.

    with Workers(kafka_stack.env, topics.prefix, tmp_path, profile="calibrated") as w:
        w.start()              # all five, waits for /readyz on each
        w.stop("asr")          # SIGTERM (then SIGKILL after a grace period)
        w.start("asr")         # again, resumes from its committed offsets
        w.metrics("lipsync")   # the worker's /metrics text

Every worker gets its own HTTP port (/metrics, /livez, /readyz), the topics prefix and a shared
cache dir through the environment; its output goes to <log_dir>/<stage>.log. On leaving the
`with` block every worker is stopped; if the block raised, the tail of every log is printed
(pytest shows it with the failure).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import requests

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("segment", "asr", "translate", "tts", "lipsync")
LIVEDUB = Path(sys.executable).parent / "livedub"


class Workers:
    def __init__(self, stack_env: dict[str, str], prefix: str, log_dir: Path, *, profile: str = "real",
                 cache_dir: Path | None = None, partitions: int = 12, extra_env: dict[str, str] | None = None,
                 ready_timeout: float = 180.0, stage_env: dict[str, dict[str, str]] | None = None) -> None:
        self.prefix = prefix
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.profile = profile
        self.ready_timeout = ready_timeout
        self.ports = {stage: free_port() for stage in STAGES}
        self.env = {
            **os.environ,
            **stack_env,
            "LIVEDUB_TOPICS__PREFIX": prefix,
            "LIVEDUB_TOPICS__PARTITIONS": str(partitions),
            "LIVEDUB_CACHE_DIR": str(cache_dir or self.log_dir / "cache"),
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        self.stage_env = stage_env or {}  # per worker (e.g. its own Kafka principal)
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, object] = {}
        self.starts: dict[str, int] = dict.fromkeys(STAGES, 0)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, *stages: str, wait: bool = True) -> None:
        stages = stages or STAGES
        for stage in stages:
            if stage in self.procs and self.procs[stage].poll() is None:
                continue
            self.starts[stage] += 1
            log = open(self.log_dir / f"{stage}.log", "a")  # noqa: SIM115 (closed in stop)
            log.write(f"==== start #{self.starts[stage]} ({self.profile}) ====\n")
            log.flush()
            self._logs[stage] = log
            cmd = [str(LIVEDUB), "worker", stage]
            if self.profile != "real":
                cmd += ["--profile", self.profile]
            self.procs[stage] = subprocess.Popen(
                cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**self.env, **self.stage_env.get(stage, {}), "LIVEDUB_HTTP_PORT": str(self.ports[stage])},
                start_new_session=True)
        if wait:
            self.wait_ready(*stages)

    def url(self, stage: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[stage]}{path}"

    def ready(self, stage: str) -> bool:
        try:
            r = requests.get(self.url(stage, "/readyz"), timeout=2)
        except requests.RequestException:
            return False
        return r.status_code == 200 and r.json().get("ready") is True

    def wait_ready(self, *stages: str, timeout: float | None = None) -> None:
        left = set(stages or STAGES)
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        while left:
            for stage in sorted(left):
                proc = self.procs[stage]
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {stage} exited with {proc.returncode} before it was ready:\n"
                                       f"{self.log_tail(stage)}")
                if self.ready(stage):
                    left.discard(stage)
            if not left:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers not ready after {timeout or self.ready_timeout:.0f} s: "
                                   f"{', '.join(sorted(left))}\n" + "\n".join(self.log_tail(s) for s in left))
            time.sleep(0.25)

    def stop(self, *stages: str, grace: float = 30.0) -> dict[str, int | None]:
        """SIGTERM each (in parallel), SIGKILL what has not exited after `grace`; returns exit codes."""
        stages = stages or tuple(self.procs)
        for stage in stages:
            proc = self.procs.get(stage)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        deadline = time.monotonic() + grace
        for stage in stages:
            proc = self.procs.get(stage)
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: the worker and any children
                proc.wait(timeout=10)
            codes[stage] = proc.returncode
            log = self._logs.pop(stage, None)
            if log is not None:
                log.close()
        return codes

    def kill(self, stage: str) -> None:
        proc = self.procs[stage]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.stop()
        finally:
            if exc_type is not None:
                for stage in self.procs:
                    print(self.log_tail(stage), file=sys.stderr)

    # -- inspection ---------------------------------------------------------------------------

    def log(self, stage: str) -> str:
        path = self.log_dir / f"{stage}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, stage: str, lines: int = 60) -> str:
        tail = "\n".join(self.log(stage).splitlines()[-lines:])
        return f"---- {stage} worker log ({self.log_dir / (stage + '.log')}) ----\n{tail}"

    def metrics(self, stage: str) -> str:
        r = requests.get(self.url(stage, "/metrics"), timeout=5)
        r.raise_for_status()
        return r.text

    def targets(self) -> list[str]:
        """Prometheus scrape targets, `<stage>=127.0.0.1:<port>`."""
        return [f"{stage}=127.0.0.1:{port}" for stage, port in self.ports.items()]
