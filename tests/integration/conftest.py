"""Real local infrastructure for integration tests: Kafka (KRaft) + schema registry [+ Prometheus].

`kafka_stack` (session) runs `deploy/local/livedub-local.sh up`, which starts Kafka and the
Apicurio registry unless they already run (first run on a fresh machine also downloads the
jars, see scripts/install_kafka.sh). The stack is left running afterwards so the next session
starts in milliseconds; `deploy/local/livedub-local.sh down` stops it, or set
LOCAL_LIVEDUB_DOWN_AFTER_TESTS=1 to stop it at the end of a session that started it.
Tests that use it are marked `@pytest.mark.kafka`; LOCAL_LIVEDUB_SKIP_KAFKA_TESTS=1 skips them.
Use `unique_topics` for topics of your own (a random prefix, deleted afterwards), so
concurrent sessions on one machine never collide.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.kafka_io import stop
from workers.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LOCAL_LIVEDUB_SKIP_KAFKA_TESTS") == "1":
        skip = pytest.mark.skip(reason="LOCAL_LIVEDUB_SKIP_KAFKA_TESTS=1")
        for item in items:
            if "kafka" in item.keywords:
                item.add_marker(skip)


def _run(*args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, **(env or {})})


@dataclass(frozen=True)
class KafkaStack:
    bootstrap: str
    registry_url: str
    up_s: float  # how long `up` took in this session (≈0 when it was already running)
    env: dict[str, str] = field(default_factory=dict)  # LIVEDUB_* variables for worker processes


@pytest.fixture(scope="session")
def kafka_stack() -> Iterator[KafkaStack]:
    script = str(LOCAL / "livedub-local.sh")
    was_running = _run(script, "status", timeout=60).returncode == 0
    t0 = time.monotonic()
    proc = _run(script, "up")
    up_s = time.monotonic() - t0
    if proc.returncode != 0:
        pytest.fail(f"deploy/local/livedub-local.sh up failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    env = {}
    for line in proc.stdout.splitlines():
        if line.startswith("export ") and "=" in line:
            k, v = line[len("export "):].split("=", 1)
            env[k] = v
    yield KafkaStack(env["LIVEDUB_KAFKA__BOOTSTRAP_SERVERS"], env["LIVEDUB_SCHEMA_REGISTRY__URL"], up_s, env)
    if not was_running and os.environ.get("LOCAL_LIVEDUB_DOWN_AFTER_TESTS") == "1":
        _run(script, "down", timeout=120)


@pytest.fixture(scope="session")
def registry_client(kafka_stack: KafkaStack):
    from streams.registry import SchemaRegistry

    with SchemaRegistry(kafka_stack.registry_url) as client:
        yield client


@pytest.fixture(scope="session")
def kafka_admin(kafka_stack: KafkaStack):
    from streams.topics import admin_client

    return admin_client({"bootstrap.servers": kafka_stack.bootstrap})


@pytest.fixture
def unique_topics(kafka_admin):
    """A Topics with a random prefix (`it.<hex>.`); every topic under it is deleted afterwards."""
    from streams.topics import Topics, delete_topics

    topics = Topics(prefix=f"it.{uuid.uuid4().hex[:10]}.", partitions=12, replication=1)
    yield topics
    md = kafka_admin.list_topics(timeout=30)
    delete_topics(kafka_admin, [t for t in md.topics if t.startswith(topics.prefix)])


@dataclass
class PrometheusStack:
    url: str

    def set_targets(self, *targets: str) -> None:
        """Replace the scrape targets (host:port or name=host:port); effective within seconds."""
        proc = _run(str(LOCAL / "prometheus.sh"), "targets", *targets, timeout=60)
        assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="session")
def prometheus_stack() -> Iterator[PrometheusStack]:
    """A real Prometheus on 127.0.0.1 (1 s scrape interval) with no targets yet; stopped at the end
    of the session unless it was already running."""
    script = str(LOCAL / "prometheus.sh")
    port = os.environ.get("LOCAL_LIVEDUB_PROMETHEUS_PORT", "9090")
    was_running = _run(script, "status", timeout=60).returncode == 0
    interval = os.environ.get("LOCAL_LIVEDUB_PROMETHEUS_SCRAPE_INTERVAL", "1s")
    proc = _run(script, "start", timeout=120, env={"LOCAL_LIVEDUB_PROMETHEUS_SCRAPE_INTERVAL": interval})
    if proc.returncode != 0:
        pytest.fail(f"deploy/local/prometheus.sh start failed:\n{proc.stderr[-4000:]}")
    yield PrometheusStack(f"http://127.0.0.1:{port}")
    if not was_running:
        _run(script, "stop", timeout=60)


@dataclass(frozen=True)
class LiveKitServer:
    url: str
    api_key: str
    api_secret: str

    def env(self) -> dict[str, str]:
        """LIVEDUB_* variables for a process that joins this server (the bot)."""
        return {"LIVEDUB_LIVEKIT__URL": self.url, "LIVEDUB_LIVEKIT__API_KEY": self.api_key,
                "LIVEDUB_LIVEKIT__API_SECRET": self.api_secret}

    def __iter__(self):  # url, key, secret
        return iter((self.url, self.api_key, self.api_secret))


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[LiveKitServer]:
    """A real LiveKit server on 127.0.0.1 (`deploy/local/livekit.sh`), built on first use."""
    from workers.bench.live import local_server_env

    was_running = subprocess.run(["bash", str(LOCAL / "livekit.sh"), "status"], capture_output=True).returncode == 0
    try:
        env = local_server_env()
    except ConfigError as e:
        pytest.fail(str(e))
    yield LiveKitServer(*(env[f"LIVEDUB_LIVEKIT__{k}"] for k in ("URL", "API_KEY", "API_SECRET")))
    if not was_running and os.environ.get("LOCAL_LIVEDUB_DOWN_AFTER_TESTS") == "1":
        subprocess.run(["bash", str(LOCAL / "livekit.sh"), "stop"], capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def call_bot(livekit_server, settings):
    """`with call_bot(room, log, "--delay", "6", ..., env={...}) as proc:` runs `livedub call --room ROOM --to es`
    as a process against the local server (the run's model cache), output in `log`; SIGTERM at the end."""

    @contextlib.contextmanager
    def run(room: str, log: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
        env = {**os.environ, **livekit_server.env(), "LIVEDUB_CACHE_DIR": str(settings.cache_dir), **(env or {})}
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "streams.cli", "call", "--room", room, "--to", "es", *args],
                                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            stop(proc)

    return run

