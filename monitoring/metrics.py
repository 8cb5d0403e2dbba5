"""Every Prometheus metric LiveDub exports, defined in one place.

Dashboards, alert rules and their tests read `METRIC_NAMES` from here, so a
metric renamed in code breaks the ops tests instead of silently blanking a panel.
Metrics are bound to a registry passed in (never the global default), so tests
and several pipelines in one process do not collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Buckets for this workload: Kafka hops take milliseconds, model calls tenths of
# a second to seconds, end-to-end dubbing of a segment a few seconds to tens.
HOP_BUCKETS = (0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)
E2E_BUCKETS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0)

# name -> (type, labels, help). The exposition adds _bucket/_sum/_count to
# histograms and _total to counters.
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "livedub_hop_latency_seconds": (
        "histogram",
        ("src", "dst"),
        "Time from a record's produce timestamp to its consumption by the next stage.",
    ),
    "livedub_stage_seconds": (
        "histogram",
        ("stage", "backend"),
        "Processing time of one record in a stage (model call plus stage bookkeeping).",
    ),
    "livedub_e2e_latency_seconds": (
        "histogram",
        ("target_lang",),
        "Speech end of a segment in the source stream to its dubbed output being produced.",
    ),
    "livedub_records_in": ("counter", ("stage",), "Records a stage accepted for processing."),
    "livedub_records_out": ("counter", ("stage",), "Records a stage emitted."),
    "livedub_records_failed": (
        "counter",
        ("stage", "error"),
        "Records a stage failed to decode or process (error = exception class).",
    ),
    "livedub_dlq_records": ("counter", ("stage",), "Records a stage sent to the dead-letter topic."),
    "livedub_queue_depth": ("gauge", ("stage",), "Records waiting in a stage's input queue."),
    "livedub_replays_suppressed": (
        "counter",
        ("stage",),
        "Outputs not sent again, and inputs not processed again, because the stage had already written "
        "them before a restart or rebalance (recovered from its output topic).",
    ),
    "livedub_lipsync_frames": (
        "counter",
        ("result",),
        "Frames inside dubbed spans by outcome: animated, no_face (passed through), bad_fit (face turned "
        "away, occluded or not a stable fit: passed through).",
    ),
    "livedub_consumer_lag": (
        "gauge",
        ("stage", "topic", "partition"),
        "Kafka consumer lag (high watermark minus committed offset) of a stage's consumer group.",
    ),
    "livedub_model_loaded": (
        "gauge",
        ("stage", "backend"),
        "1 once the stage's model is loaded and the worker is consuming, else 0.",
    ),
    "livedub_gpu_memory_bytes": (
        "gauge",
        ("stage", "device"),
        "GPU memory allocated by the worker's models (0 on CPU workers).",
    ),
    "livedub_live_outcomes": (
        "counter",
        ("target_lang", "outcome"),
        "Live calls: segments played dubbed (dubbed) or too late, the original played instead (late), and "
        "re-animated frames that came after their time (late_frame), 10 ms playout steps dropped because the "
        "bot's loop came too late (dropped_step).",
    ),
    "livedub_live_delay_seconds": (
        "gauge",
        ("participant",),
        "Live calls: the playout delay D of a participant (rises when their segments come late).",
    ),
    "livedub_live_rooms": ("gauge", (), "Live calls: rooms the bot is in now."),
    "livedub_live_participants": ("gauge", (), "Live calls: participants being dubbed now, in all rooms."),
    "livedub_live_tracks": ("gauge", (), "Live calls: dubbed tracks published now (one audio and one video per "
                                         "participant and target language)."),
    "livedub_live_events": (
        "counter",
        ("event",),
        "Live calls: the bot joined a room, failed to join, lost its connection (reconnecting, reconnected) or the "
        "room (disconnected), was replaced by another LiveDub (replaced), left an empty room (left_idle), a "
        "participant joined or left, a session failed.",
    ),
}

METRIC_NAMES = frozenset(METRICS)


class Metrics:
    """The project's metrics bound to one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        buckets = {
            "livedub_hop_latency_seconds": HOP_BUCKETS,
            "livedub_stage_seconds": STAGE_BUCKETS,
            "livedub_e2e_latency_seconds": E2E_BUCKETS,
        }
        kinds = {"histogram": Histogram, "counter": Counter, "gauge": Gauge}
        self._m: dict[str, Histogram | Counter | Gauge] = {}
        for name, (kind, labels, doc) in METRICS.items():
            kwargs = {"buckets": buckets[name]} if kind == "histogram" else {}
            self._m[name] = kinds[kind](name, doc, labels, registry=self.registry, **kwargs)

    def __getattr__(self, item: str) -> Histogram | Counter | Gauge:
        try:
            return self.__dict__["_m"][f"livedub_{item}"]
        except KeyError as e:
            raise AttributeError(item) from e
