#!/usr/bin/env python3
"""Generate LiveDub's Grafana dashboards (dashboards as code).

    python monitoring/build_dashboards.py          # write the JSON files
    python monitoring/build_dashboards.py --check  # exit 1 if a committed file is stale

Writes monitoring/dashboards/*.json and copies them, with the Prometheus rules in
monitoring/alerts/livedub-rules.yaml, into the Helm chart (deploy/helm/livedub/files/),
which ships them as Grafana-sidecar ConfigMaps and a PrometheusRule. Plain JSON: no
dependency beyond the standard library. Every query uses only metrics from
monitoring/metrics.py, the recording rules, `up`, and the DCGM exporter's GPU metrics
(tests/deploy/test_promql_metrics.py checks that).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "monitoring" / "dashboards"
RULES_FILE = ROOT / "monitoring" / "alerts" / "livedub-rules.yaml"
CHART_FILES = ROOT / "deploy" / "helm" / "livedub" / "files"

DS = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
STAGE = f'{NS}, stage=~"$stage"'
RATE = "$__rate_interval"

Panel = dict[str, Any]


# --- building blocks ---------------------------------------------------------------


def target(expr: str, legend: str = "", ref: str = "A", fmt: str = "time_series") -> dict[str, Any]:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": ref, "range": True, "format": fmt}
    if legend:
        t["legendFormat"] = legend
    return t


def timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    stack: bool = False,
    thresholds: list[tuple[str, float | None]] | None = None,
) -> Panel:
    steps = [{"color": c, "value": v} for c, v in (thresholds or [("green", None)])]
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    if thresholds:
        custom["thresholdsStyle"] = {"mode": "dashed"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": _refs(targets),
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": custom,
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["mean", "max", "lastNotNull"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_size": (w, h),
    }


def stat(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str = "short",
    w: int = 6,
    h: int = 4,
    thresholds: list[tuple[str, float | None]] | None = None,
) -> Panel:
    steps = [{"color": c, "value": v} for c, v in (thresholds or [("green", None)])]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": _refs(targets),
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "value_and_name",
        },
        "_size": (w, h),
    }


def heatmap(
    title: str, description: str, metric: str, selector: str, w: int = 12, h: int = 8, **extra: Any
) -> Panel:
    expr = f"sum by (le) (increase({metric}_bucket{{{selector}}}[{RATE}]))"
    panel: Panel = {
        "type": "heatmap",
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": [target(expr, "{{le}}", fmt="heatmap")],
        "fieldConfig": {"defaults": {"custom": {"scaleDistribution": {"type": "linear"}}}, "overrides": []},
        "options": {
            "calculate": False,
            "yAxis": {"unit": "s", "axisPlacement": "left"},
            "cellGap": 1,
            "color": {
                "mode": "scheme",
                "scheme": "Oranges",
                "exponent": 0.5,
                "steps": 64,
                "fill": "dark-orange",
            },
            "rowsFrame": {"layout": "auto"},
            "tooltip": {"mode": "single", "yHistogram": True},
            "legend": {"show": True},
        },
        "_size": (w, h),
    }
    panel.update(extra)
    return panel


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


def quantiles(metric: str, by: str, selector: str, legend: str) -> list[dict[str, Any]]:
    """p50/p95/p99 targets of a histogram, aggregated by `by`."""
    return [
        target(
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}[{RATE}])))",
            f"{legend} p{int(q * 100)}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def _refs(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    return targets


def layout(panels: list[Panel]) -> list[Panel]:
    """Assign ids and gridPos, filling 24-column rows left to right."""
    x = y = row_h = 0
    out = []
    for pid, p in enumerate(panels, start=1):
        w, h = p.pop("_size")
        if x + w > 24 or p["type"] == "row":
            x, y, row_h = 0, y + row_h, 0
        p["id"] = pid
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x += w
        row_h = max(row_h, h)
        out.append(p)
    return out


def query_var(name: str, label: str, query: str, multi: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-var"},
        "refresh": 2,
        "includeAll": multi,
        "multi": multi,
        "allValue": ".*" if multi else None,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if multi else {},
        "sort": 1,
        "hide": 0,
    }


def variables(*extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "refresh": 1,
            },
            query_var("namespace", "Namespace", "label_values(livedub_records_in_total, namespace)"),
            query_var("stage", "Stage", f"label_values(livedub_records_in_total{{{NS}}}, stage)"),
            *extra,
        ]
    }


def dashboard(
    uid: str, title: str, description: str, panels: list[Panel], templating: dict[str, Any]
) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["livedub"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": ["livedub"],
                "title": "LiveDub",
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": templating,
        "panels": layout(panels),
    }


# --- the dashboards ----------------------------------------------------------------

LAT_THRESHOLDS = [("green", None), ("orange", 3.0), ("red", 5.0)]


def overview() -> dict:
    lang = f'{NS}, target_lang=~"$target_lang"'
    panels = [
        row("End-to-end latency"),
        stat(
            "E2E p95 (worst language)",
            "Highest 95th percentile of end-to-end latency over the target languages. Budget: 5 s "
            "(alert LivedubE2ELatencyOverBudget).",
            [target(f"max(livedub:e2e_latency_seconds:p95_5m{{{lang}}})", "p95")],
            unit="s",
            thresholds=LAT_THRESHOLDS,
        ),
        stat(
            "Dubbed segments / s",
            "Segments delivered with dubbed output per second (count rate of the e2e histogram).",
            [target(f"sum(rate(livedub_e2e_latency_seconds_count{{{lang}}}[{RATE}]))", "segments/s")],
            unit="ops",
        ),
        stat(
            "Workers up",
            "Scraped worker pods answering /metrics, over all stages (and the call bot, job livedub-bot, "
            "where it is deployed).",
            [target(f'sum(up{{{NS}, job=~"livedub-.+"}})', "up")],
            thresholds=[("red", None), ("green", 1.0)],
        ),
        stat(
            "Records to DLQ / s",
            "Records sent to the dead-letter topic per second, all stages.",
            [target(f"sum(rate(livedub_dlq_records_total{{{NS}}}[{RATE}]))", "dlq/s")],
            unit="ops",
            thresholds=[("green", None), ("red", 0.05)],
        ),
        timeseries(
            "E2E latency per target language (p50 / p95 / p99)",
            "Source speech end to dubbed output produced, per target language. "
            "The dashed line is the 5 s p95 budget.",
            quantiles("livedub_e2e_latency_seconds", "target_lang", lang, "{{target_lang}}"),
            unit="s",
            w=24,
            thresholds=LAT_THRESHOLDS,
        ),
        row("Throughput and backlog"),
        timeseries(
            "Records out per stage",
            "Records each stage emitted per second.",
            [target(f"sum by (stage) (rate(livedub_records_out_total{{{STAGE}}}[{RATE}]))", "{{stage}}")],
            unit="ops",
        ),
        timeseries(
            "Consumer lag per stage",
            "Records waiting in Kafka for each stage's consumer group (max per partition, summed). "
            "KEDA scales a stage when this exceeds lagThreshold x replicas.",
            [
                target(
                    "sum by (stage, topic) "
                    f"(max by (stage, topic, partition) (livedub_consumer_lag{{{STAGE}}}))",
                    "{{stage}} ({{topic}})",
                )
            ],
        ),
        timeseries(
            "Dead-letter rate per stage",
            "Records a stage gave up on and wrote to the dlq topic, per second.",
            [target(f"sum by (stage) (rate(livedub_dlq_records_total{{{STAGE}}}[{RATE}]))", "{{stage}}")],
            unit="ops",
        ),
        timeseries(
            "Error ratio per stage",
            "Failed records / accepted records. Alert LivedubStageErrorRate fires above 5%.",
            [
                target(
                    f"sum by (stage) (rate(livedub_records_failed_total{{{STAGE}}}[{RATE}]))"
                    f" / sum by (stage) (rate(livedub_records_in_total{{{STAGE}}}[{RATE}]))",
                    "{{stage}}",
                )
            ],
            unit="percentunit",
            thresholds=[("green", None), ("red", 0.05)],
        ),
        timeseries(
            "Worker pods up / model loaded",
            "Pods scraped successfully, and pods reporting their model loaded and consuming "
            "(livedub_model_loaded = 1, the /readyz condition).",
            [
                target(f'sum by (job) (up{{{NS}, job=~"livedub-.+"}})', "{{job}} up"),
                target(f"sum by (stage) (livedub_model_loaded{{{STAGE}}})", "{{stage}} loaded"),
            ],
            w=24,
        ),
    ]
    tl = query_var(
        "target_lang",
        "Target language",
        f"label_values(livedub_e2e_latency_seconds_count{{{NS}}}, target_lang)",
    )
    return dashboard(
        "livedub-overview",
        "LiveDub / Overview",
        "Pipeline health at a glance: end-to-end latency, throughput, lag, errors.",
        panels,
        variables(tl),
    )


def latency() -> dict:
    hop = f'{NS}, src=~"$src"'
    panels = [
        row("End-to-end"),
        heatmap(
            "E2E latency distribution",
            "Distribution of end-to-end latency of all dubbed segments (histogram buckets).",
            "livedub_e2e_latency_seconds",
            f'{NS}, target_lang=~"$target_lang"',
            w=24,
        ),
        row("Kafka hops"),
        timeseries(
            "Hop latency p95 per hop",
            "Produce timestamp of a record to its consumption by the next stage, p95 per src -> dst "
            "hop. High values with low stage time mean the next stage is lagging.",
            [
                target(
                    f"histogram_quantile(0.95, sum by (src, dst, le) "
                    f"(rate(livedub_hop_latency_seconds_bucket{{{hop}}}[{RATE}])))",
                    "{{src}} -> {{dst}}",
                )
            ],
            unit="s",
            w=24,
        ),
        heatmap(
            "Hop latency from $src",
            "Latency distribution of the hops leaving stage $src (one panel per source stage).",
            "livedub_hop_latency_seconds",
            f'{NS}, src="$src"',
            w=12,
            repeat="src",
            repeatDirection="h",
            maxPerRow=2,
        ),
    ]
    return dashboard(
        "livedub-latency",
        "LiveDub / Latency",
        "Where end-to-end latency goes: per-hop Kafka latency heatmaps and e2e distribution.",
        panels,
        variables(
            query_var(
                "target_lang",
                "Target language",
                f"label_values(livedub_e2e_latency_seconds_count{{{NS}}}, target_lang)",
            ),
            query_var("src", "Hop source", f"label_values(livedub_hop_latency_seconds_count{{{NS}}}, src)"),
        ),
    )


def stages() -> dict:
    panels = [
        row("Processing time"),
        timeseries(
            "Stage processing time (p50 / p95 / p99)",
            "Time to process one record in a stage (model call plus bookkeeping), per stage and backend.",
            quantiles("livedub_stage_seconds", "stage, backend", STAGE, "{{stage}}/{{backend}}"),
            unit="s",
            w=24,
        ),
        heatmap(
            "Processing time of $stage",
            "Distribution of per-record processing time (one panel per stage).",
            "livedub_stage_seconds",
            f'{NS}, stage="$stage"',
            w=12,
            repeat="stage",
            repeatDirection="h",
            maxPerRow=2,
        ),
        row("Throughput"),
        timeseries(
            "Records in / out per stage",
            "Records accepted (in) and emitted (out) per second. A stage may emit more records than it "
            "reads (segment splits audio; lipsync emits video frames per speech segment).",
            [
                target(f"sum by (stage) (rate(livedub_records_in_total{{{STAGE}}}[{RATE}]))", "{{stage}} in"),
                target(
                    f"sum by (stage) (rate(livedub_records_out_total{{{STAGE}}}[{RATE}]))", "{{stage}} out"
                ),
            ],
            unit="ops",
        ),
        timeseries(
            "Failures by error",
            "Records a stage failed to decode or process, per exception class.",
            [
                target(
                    f"sum by (stage, error) (rate(livedub_records_failed_total{{{STAGE}}}[{RATE}]))",
                    "{{stage}}: {{error}}",
                )
            ],
            unit="ops",
        ),
        timeseries(
            "Replays suppressed",
            "Outputs not written again, and inputs not processed again, after a restart or rebalance: the "
            "stage had already written them (read back from its output topic). Non-zero after every crash; "
            "it keeps every hop free of duplicates.",
            [target(f"sum by (stage) (rate(livedub_replays_suppressed_total{{{STAGE}}}[{RATE}]))", "{{stage}}")],
            unit="ops",
        ),
        timeseries(
            "Lip-sync frames by result",
            "Frames inside dubbed spans: animated, or passed through unchanged because no face was found "
            "(no_face) or its fit was not good enough (bad_fit: head turned, occluded). A rising pass-through "
            "share means the listener sees the original mouth under the dub.",
            [target(f"sum by (result) (rate(livedub_lipsync_frames_total{{{NS}}}[{RATE}]))", "{{result}}")],
            unit="ops",
        ),
        row("Live calls"),
        # The bot's gauges are per process: sum the replicas (each dubs its own rooms).
        stat(
            "Live rooms",
            "Rooms the call bot is in now (`livedub call --rooms`), summed over its replicas.",
            [target(f"sum by (namespace) (livedub_live_rooms{{{NS}}})", "{{namespace}}")],
            w=8,
        ),
        stat(
            "Participants being dubbed",
            "Participants the call bot dubs now, in all its rooms, summed over its replicas.",
            [target(f"sum by (namespace) (livedub_live_participants{{{NS}}})", "{{namespace}}")],
            w=8,
        ),
        stat(
            "Dubbed tracks",
            "Dubbed tracks the call bot publishes now: one audio and one video per participant and target "
            "language, summed over its replicas.",
            [target(f"sum by (namespace) (livedub_live_tracks{{{NS}}})", "{{namespace}}")],
            w=8,
        ),
        timeseries(
            "Live segments by outcome",
            "Segments of live calls played dubbed, or too late (the original played for that span instead), "
            "and re-animated frames that came after their time. Late segments raise the playout delay.",
            [target(f"sum by (target_lang, outcome) (rate(livedub_live_outcomes_total{{{NS}}}[{RATE}]))",
                    "{{target_lang}} {{outcome}}")],
            unit="ops",
        ),
        timeseries(
            "Live playout delay",
            "The delay D each participant is heard at: constant unless their segments came late.",
            [target(f"max by (participant) (livedub_live_delay_seconds{{{NS}}})", "{{participant}}")],
            unit="s",
        ),
        timeseries(
            "Live bot events",
            "Rooms joined, joins failed, rooms lost (disconnected), rooms handed to another LiveDub (replaced), "
            "empty rooms left (left_idle), participants joining and leaving, sessions failed. Disconnects "
            "followed by joins are the bot riding out a server restart.",
            [target(f"sum by (event) (increase(livedub_live_events_total{{{NS}}}[{RATE}]))", "{{event}}")],
        ),
        row("Backlog"),
        timeseries(
            "In-process queue depth",
            "Records waiting in each worker's internal input queue (already fetched from Kafka).",
            [target(f"sum by (stage, pod) (livedub_queue_depth{{{STAGE}}})", "{{pod}}")],
        ),
        timeseries(
            "Consumer lag per partition",
            "Kafka lag of each partition of each stage's input topic. One hot partition means a skewed "
            "key; all partitions growing means too few replicas.",
            [
                target(
                    f"max by (stage, topic, partition) (livedub_consumer_lag{{{STAGE}}})",
                    "{{stage}} {{topic}}[{{partition}}]",
                )
            ],
        ),
    ]
    return dashboard(
        "livedub-stages",
        "LiveDub / Stages",
        "Per-stage processing time, throughput, failures and backlog.",
        panels,
        variables(),
    )


def gpu() -> dict:
    pods = f'{NS}, pod=~".*($stage).*"'
    panels = [
        row("GPU"),
        timeseries(
            "GPU utilisation per pod",
            "GPU utilisation (%) from the NVIDIA DCGM exporter, for GPUs assigned to LiveDub pods. "
            "Empty when the DCGM exporter is not installed or not mapping GPUs to pods.",
            [target(f"avg by (pod, gpu) (DCGM_FI_DEV_GPU_UTIL{{{pods}}})", "{{pod}} gpu{{gpu}}")],
            unit="percent",
        ),
        timeseries(
            "GPU memory allocated by LiveDub models",
            "GPU memory the workers' models allocated, per stage and device (livedub_gpu_memory_bytes).",
            [
                target(
                    f"sum by (stage, device) (livedub_gpu_memory_bytes{{{STAGE}}})",
                    "{{stage}} {{device}}",
                )
            ],
            unit="bytes",
        ),
        timeseries(
            "GPU framebuffer used per pod",
            "Total framebuffer memory in use on each GPU (DCGM exporter, MiB).",
            [target(f"max by (pod, gpu) (DCGM_FI_DEV_FB_USED{{{pods}}})", "{{pod}} gpu{{gpu}}")],
            unit="decmbytes",
        ),
        timeseries(
            "Processing time p95 by backend",
            "Per-record processing time per backend: compare GPU and CPU backends of a stage.",
            [
                target(
                    f"histogram_quantile(0.95, sum by (stage, backend, le) "
                    f"(rate(livedub_stage_seconds_bucket{{{STAGE}}}[{RATE}])))",
                    "{{stage}}/{{backend}}",
                )
            ],
            unit="s",
        ),
        stat(
            "Models loaded",
            "Workers reporting their model loaded and consuming, per stage and backend.",
            [target(f"sum by (stage, backend) (livedub_model_loaded{{{STAGE}}})", "{{stage}}/{{backend}}")],
            w=24,
        ),
    ]
    return dashboard(
        "livedub-gpu",
        "LiveDub / GPU",
        "GPU use of the CUDA stages: utilisation (DCGM exporter), memory, per-backend speed.",
        panels,
        variables(),
    )


DASHBOARDS = {
    "livedub-overview": overview,
    "livedub-latency": latency,
    "livedub-stages": stages,
    "livedub-gpu": gpu,
}


def render() -> dict[Path, str]:
    """Every generated file -> its content."""
    out: dict[Path, str] = {}
    for name, build in DASHBOARDS.items():
        text = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        out[DASHBOARD_DIR / f"{name}.json"] = text
        out[CHART_FILES / "dashboards" / f"{name}.json"] = text
    out[CHART_FILES / "livedub-rules.yaml"] = RULES_FILE.read_text()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is out of date")
    args = parser.parse_args(argv)
    files = render()
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(
                f"stale: {p.relative_to(ROOT)} (run python monitoring/build_dashboards.py)", file=sys.stderr
            )
        return 1 if stale else 0
    for p in stale:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(files[p])
        print(f"wrote {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
