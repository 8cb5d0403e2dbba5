"""`livedub worker <stage>`: load the stage's model once, then consume, process and produce."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

from prometheus_client import generate_latest

from monitoring.metrics import Metrics
from streams.agents import AgentState, attach
from streams.app import LATENCY_TUNING, create_app
from streams.codecs import register_codecs
from streams.inflight import InFlight
from streams.limits import check_limits
from streams.registry import SchemaRegistry
from streams.topics import admin_client, create_topics, topics_from_settings
from workers.registry import create_stage
from workers.retry import RetryPolicy
from workers.settings import Settings
from workers.topology import DEFAULT

log = logging.getLogger(__name__)
PROMETHEUS_TEXT = "text/plain; version=0.0.4"  # aiohttp refuses a charset inside content_type


def build_worker(settings: Settings, stage: str, metrics: Metrics | None = None, profile: str = "real",
                 **app_overrides):
    """App, stage and agent state for one worker; blocking setup (model, topics, schemas) done here.

    profile "calibrated" runs the benchmark's fixed-service-time stage instead of the model.
    """
    spec = DEFAULT.spec(stage)  # ConfigError naming the stages for an unknown one
    metrics = metrics or Metrics()
    topics = topics_from_settings(settings)
    admin = admin_client(settings.kafka)
    create_topics(admin, topics)
    check_limits(admin, topics, stage, LATENCY_TUNING["producer_max_request_size"])
    registry = SchemaRegistry.from_settings(settings.schema_registry)
    codec_names = register_codecs(registry, topics)
    if profile == "calibrated":
        from workers.bench.calibrated import calibrated_pipeline

        st = calibrated_pipeline(settings, metrics=metrics)[stage]
    else:
        st = create_stage(stage, settings, metrics, strict_device=True)
    st.load()
    started = time.perf_counter()
    st.warm_up()
    log.info("%s warmed up in %.2f s", stage, time.perf_counter() - started)
    step = spec.step_class()(st)
    app = create_app(settings, stage, **app_overrides)
    agent = attach(app, stage, step, topics, registry, codec_names, metrics, RetryPolicy.from_settings(settings.retry),
                   InFlight(inflight_path(settings, stage)), _recovery(settings, stage, topics, registry),
                   idle_s=settings.kafka.session_idle_s)
    state = agent.state
    _serve_health(app, metrics, state, st)
    _report_gpu_memory(app, metrics, stage, settings.device)
    return app, st, state


def _recovery(settings: Settings, stage: str, topics, registry):
    """How the stage reads back what it wrote (streams/marks.py), lip sync too: a kill right after it
    sent frames sent them again (the restart test's SIGKILL of lipsync doubled frames in 3 of 5 runs).
    session.control is left out of the window: a session's start is retained until the session ends,
    so it would reach back to the session's start (an hour of video frames, for lip sync), and a
    replayed start sends nothing."""
    from streams.app import group_id
    from streams.recover import written_since_uncommitted
    from streams.topics import client_config

    conf, group = client_config(settings.kafka), group_id(stage, settings.topics.prefix)
    inputs = [t for t in topics.inputs(stage) if t != topics.session_control]
    output = topics.output(stage)
    return lambda partitions: written_since_uncommitted(conf, group, inputs, output, partitions, registry)


def inflight_path(settings: Settings, stage: str) -> Path:
    """One note per worker: the pod's name (stable across container restarts) and port keep replicas apart."""
    base = settings.retry.inflight_dir or settings.cache_dir / "inflight"
    return base / f"{settings.topics.prefix}{stage}-{socket.gethostname()}-{settings.http_port}"


def _serve_health(app, metrics: Metrics, state: AgentState, stage) -> None:
    @app.page("/metrics")
    async def metrics_view(web, request):
        return web.bytes(generate_latest(metrics.registry), content_type=PROMETHEUS_TEXT)

    @app.page("/livez")
    async def livez(web, request):
        if state.wedged_since is not None:  # an abandoned stage call still runs: a restart frees the thread
            return web.json({"ok": False, "wedged_s": round(time.monotonic() - state.wedged_since, 1)}, status=503)
        return web.json({"ok": True})

    @app.page("/readyz")
    async def readyz(web, request):
        ready = stage.backend.loaded and state.started and not app.rebalancing
        return web.json({"ready": ready, "stage": stage.name, "backend": stage.backend.name},
                        status=200 if ready else 503)


def _report_gpu_memory(app, metrics: Metrics, stage: str, device: str) -> None:
    """GPU memory this worker holds (NVML, when the driver library is there); 0 on CPU workers."""
    gauge = metrics.gpu_memory_bytes
    if device != "cuda":
        gauge.labels(stage, "cpu").set(0)
        return
    try:
        import os

        import pynvml

        pynvml.nvmlInit()
    except Exception as e:  # no NVML on this node: the panel stays empty rather than lying
        log.warning("GPU memory metric unavailable: %s", e)
        return

    @app.timer(10.0)
    async def gpu_memory() -> None:
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            used = sum(p.usedGpuMemory or 0 for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
                       if p.pid == os.getpid())
            gauge.labels(stage, f"cuda:{i}").set(used)


def run_worker(settings: Settings, stage: str, loglevel: str = "info", profile: str = "real") -> None:
    """Blocks until SIGTERM/SIGINT; Faust then stops the agent and commits offsets."""
    import faust

    app, st, _ = build_worker(settings, stage, profile=profile)
    try:
        faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
    finally:
        st.close()
