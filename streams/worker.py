"""`livedub worker <stage>`: load the stage's model once, then consume, process and produce."""

from __future__ import annotations

import logging

from prometheus_client import generate_latest

from monitoring.metrics import Metrics
from streams.agents import AgentState, attach
from streams.app import create_app
from streams.codecs import register_codecs
from streams.registry import SchemaRegistryClient
from streams.topics import admin_client, create_topics, topics_from_settings
from workers.registry import STAGE_ORDER, create_stage
from workers.settings import Settings
from workers.streaming import STEPS

log = logging.getLogger(__name__)
PROMETHEUS_TEXT = "text/plain; version=0.0.4"  # aiohttp refuses a charset inside content_type


def build_worker(settings: Settings, stage: str, metrics: Metrics | None = None, profile: str = "real",
                 **app_overrides):
    """App, stage and agent state for one worker; blocking setup (model, topics, schemas) done here.

    profile "calibrated" runs the benchmark's fixed-service-time stage instead of the model.
    """
    if stage not in STAGE_ORDER:
        from workers.errors import ConfigError

        raise ConfigError(f"unknown stage {stage!r}; stages: {', '.join(STAGE_ORDER)}")
    metrics = metrics or Metrics()
    topics = topics_from_settings(settings)
    create_topics(admin_client(settings.kafka), topics)
    registry = SchemaRegistryClient.from_settings(settings.schema_registry)
    codec_names = register_codecs(registry, topics)
    if profile == "calibrated":
        from workers.bench.calibrated import calibrated_pipeline

        st = calibrated_pipeline(settings, metrics=metrics)[stage]
    else:
        st = create_stage(stage, settings, metrics)
    st.load()
    step = STEPS[stage](st)
    app = create_app(settings, stage, **app_overrides)
    state = attach(app, stage, step, topics, registry, codec_names, metrics)
    _serve_health(app, metrics, state, st)
    _report_gpu_memory(app, metrics, stage, settings.device)
    return app, st, state


def _serve_health(app, metrics: Metrics, state: AgentState, stage) -> None:
    @app.page("/metrics")
    async def metrics_view(web, request):
        return web.bytes(generate_latest(metrics.registry), content_type=PROMETHEUS_TEXT)

    @app.page("/livez")
    async def livez(web, request):
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
