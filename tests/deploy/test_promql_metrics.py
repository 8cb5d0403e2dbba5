"""Every PromQL expression in the dashboards and rules refers only to metrics the code exports.

Expressions are parsed with a real PromQL parser (promql-parser). Allowed series:
  * the metrics of monitoring/metrics.py with the suffixes their type exports
    (_bucket/_sum/_count for histograms, _total for counters);
  * the recording rules defined in monitoring/alerts/livedub-rules.yaml;
  * EXTERNAL_METRICS below, an explicit allowlist of metrics other exporters provide.
Label matchers and by/without/on/ignoring labels are checked against the metric's labels
plus the target labels Prometheus adds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitoring.metrics import METRIC_NAMES, METRICS

from .conftest import ROOT, module

DASHBOARDS = sorted((ROOT / "monitoring" / "dashboards").glob("*.json"))
RULES = ROOT / "monitoring" / "alerts" / "livedub-rules.yaml"

# Metrics LiveDub's dashboards/rules may use without exporting them, and who provides them.
# Labels of every NVIDIA DCGM exporter series (GPU operator), mapped to pods.
DCGM_LABELS = ("gpu", "UUID", "device", "modelName", "Hostname", "namespace", "pod", "container")
EXTERNAL_METRICS: dict[str, tuple[str, ...]] = {
    # Prometheus: scrape health of every target (job is "livedub-<stage>", set by the chart).
    "up": ("job", "instance", "namespace", "pod", "service", "container", "endpoint"),
    # NVIDIA DCGM exporter (GPU operator): utilisation and framebuffer use per GPU, mapped to pods.
    "DCGM_FI_DEV_GPU_UTIL": DCGM_LABELS,
    "DCGM_FI_DEV_FB_USED": DCGM_LABELS,
}
# Labels Prometheus (Operator) attaches to every scraped series of a worker.
TARGET_LABELS = frozenset({"job", "instance", "namespace", "pod", "service", "container", "endpoint"})
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("_total",), "gauge": ("",)}


def exported_series() -> dict[str, frozenset[str]]:
    """Series name -> labels, for everything monitoring/metrics.py exports."""
    out = {}
    for name, (kind, labels, _help) in METRICS.items():
        for suffix in SUFFIXES[kind]:
            extra = {"le"} if suffix == "_bucket" else set()
            out[name + suffix] = frozenset(labels) | TARGET_LABELS | extra
    return out


def rules_doc() -> dict[str, Any]:
    return module("yaml").safe_load(RULES.read_text())


def recorded_series() -> dict[str, frozenset[str] | None]:
    """Recording rule name -> labels it keeps (None when not statically known)."""
    pp = module("promql_parser")
    out: dict[str, frozenset[str] | None] = {}
    for group in rules_doc()["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                out[rule["record"]] = outer_by_labels(pp.parse(rule["expr"]), pp)
    return out


def outer_by_labels(node: Any, pp: Any) -> frozenset[str] | None:
    """Labels kept by the outermost `by` aggregation (looking through functions/binops)."""
    if isinstance(node, pp.AggregateExpr) and node.modifier is not None:
        if node.modifier.type == pp.AggModifierType.By:
            return frozenset(node.modifier.labels) - {"le"}
        return None
    for child in children(node, pp):
        found = outer_by_labels(child, pp)
        if found is not None:
            return found
    return None


def children(node: Any, pp: Any) -> list[Any]:
    if isinstance(node, pp.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, pp.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, pp.Call):
        return list(node.args)
    if isinstance(node, pp.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
        return [node.expr]
    return []


def walk(node: Any, pp: Any) -> Iterator[Any]:
    yield node
    for child in children(node, pp):
        yield from walk(child, pp)


GRAFANA_VARS = re.compile(r"\$__(rate_interval|interval|range)|\$\{__(rate_interval|interval|range)\}")


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's interval macros so the expression parses (variables only occur in strings)."""
    return GRAFANA_VARS.sub("5m", expr)


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        panels = list(dash["panels"])
        for panel in panels:
            panels.extend(panel.get("panels", []))
            for t in panel.get("targets", []):
                yield f"{path.name}: {panel['title']} [{t['refId']}]", grafana_to_promql(t["expr"])
        for var in dash["templating"]["list"]:
            if var["type"] == "query":
                m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
                assert m, f"{path.name}: variable {var['name']}: unsupported query {var['query']}"
                selector, label = m.groups()
                # As an expression: the label must be one the selected series has.
                yield f"{path.name}: variable {var['name']}", f"sum by ({label}) ({selector})"


def rule_exprs() -> Iterator[tuple[str, str]]:
    for group in rules_doc()["groups"]:
        for rule in group["rules"]:
            yield f"{RULES.name}: {rule.get('record') or rule.get('alert')}", rule["expr"]


def all_exprs() -> list[tuple[str, str]]:
    return list(dashboard_exprs()) + list(rule_exprs())


def check_expr(expr: str) -> list[str]:
    """Problems with one expression: unknown metrics, unknown labels."""
    pp = module("promql_parser")
    exported = exported_series()
    recorded = recorded_series()
    problems = []
    try:
        ast = pp.parse(expr)
    except Exception as e:  # the parser raises ValueError-like errors from Rust
        return [f"does not parse: {e}"]
    available: set[str] = set()
    static = True
    for node in walk(ast, pp):
        if not isinstance(node, pp.VectorSelector):
            continue
        name = node.name
        if name is None:
            problems.append("selector without a metric name")
            continue
        if name in exported:
            labels: frozenset[str] | None = exported[name]
        elif name in recorded:
            labels = recorded[name]
            if labels is not None:
                labels = labels | {"namespace"}
        elif name in EXTERNAL_METRICS:
            labels = frozenset(EXTERNAL_METRICS[name])
        else:
            problems.append(f"unknown metric {name!r}")
            continue
        if labels is None:
            static = False
            continue
        available |= labels
        for m in node.matchers.matchers:
            if m.name != "__name__" and m.name not in labels:
                problems.append(f"{name} has no label {m.name!r}")
    if static:
        for node in walk(ast, pp):
            used: list[str] = []
            if isinstance(node, pp.AggregateExpr) and node.modifier is not None:
                used = list(node.modifier.labels)
            elif isinstance(node, pp.BinaryExpr) and node.modifier is not None and node.modifier.matching:
                used = list(node.modifier.matching.labels)
            problems += [
                f"label {lb!r} is on none of the selected series" for lb in used if lb not in available
            ]
    return problems


def test_metrics_module_is_the_contract() -> None:
    assert "livedub_e2e_latency_seconds" in METRIC_NAMES
    assert len(METRIC_NAMES) == len(METRICS)


def test_there_are_dashboards_and_rules() -> None:
    assert {p.name for p in DASHBOARDS} >= {
        "livedub-overview.json",
        "livedub-latency.json",
        "livedub-stages.json",
        "livedub-gpu.json",
    }
    assert len(all_exprs()) > 40


@pytest.mark.parametrize(("where", "expr"), all_exprs(), ids=[w for w, _ in all_exprs()])
def test_expression_uses_only_exported_metrics(where: str, expr: str) -> None:
    problems = check_expr(expr)
    assert not problems, f"{where}: {expr}\n" + "\n".join(problems)


def test_checker_catches_unknown_metric_and_label() -> None:
    """Guard: the check above rejects what it should."""
    assert check_expr("rate(livedub_records_in[5m])") == ["unknown metric 'livedub_records_in'"]
    assert check_expr('livedub_queue_depth{target_lang="es"}') == [
        "livedub_queue_depth has no label 'target_lang'"
    ]
    assert check_expr("sum by (src) (livedub_queue_depth)") == [
        "label 'src' is on none of the selected series"
    ]
    assert check_expr("livedub_gpu_memory_bytes_total") == ["unknown metric 'livedub_gpu_memory_bytes_total'"]
    assert check_expr("DCGM_FI_DEV_GPU_UTIL") == []
    assert check_expr("livedub:consumer_lag:sum > 1") == []


def test_every_exported_metric_is_on_a_dashboard() -> None:
    text = "\n".join(expr for where, expr in dashboard_exprs())
    unused = [m for m in METRIC_NAMES if m not in text]
    assert not unused, f"metrics on no dashboard: {unused}"


def test_dashboards_cover_the_required_views() -> None:
    titles = {
        panel["title"]: panel["type"]
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
    }
    assert titles["E2E latency per target language (p50 / p95 / p99)"] == "timeseries"
    assert titles["Hop latency from $src"] == "heatmap"
    assert titles["Stage processing time (p50 / p95 / p99)"] == "timeseries"
    assert titles["Records out per stage"] == "timeseries"
    assert titles["Consumer lag per stage"] == "timeseries"
    assert titles["Dead-letter rate per stage"] == "timeseries"
    assert titles["GPU utilisation per pod"] == "timeseries"


def test_dashboards_are_well_formed() -> None:
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), path.name
        assert dash["uid"] == path.stem and len(dash["uid"]) <= 40
        for p in dash["panels"]:
            assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, (path.name, p["title"])
            if p["type"] != "row":
                assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                assert p["description"], (path.name, p["title"])


def test_every_metric_documented() -> None:
    readme = (ROOT / "monitoring" / "README.md").read_text()
    chart_readme = (ROOT / "deploy" / "helm" / "livedub" / "README.md").read_text()
    for name in METRIC_NAMES:
        assert f"`{name}" in readme, f"{name} missing from monitoring/README.md"
    for name in EXTERNAL_METRICS:
        assert name in readme
    for record in recorded_series():
        assert record in readme, f"recording rule {record} missing from monitoring/README.md"
    for group in rules_doc()["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["alert"] in readme, f"alert {rule['alert']} missing from monitoring/README.md"
    assert "monitoring/README.md" in chart_readme


def test_generated_files_are_current() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(ROOT / "monitoring" / "build_dashboards.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr


def test_rules_shipped_in_chart_match(tmp_path: Path) -> None:
    chart_copy = ROOT / "deploy" / "helm" / "livedub" / "files" / "livedub-rules.yaml"
    assert chart_copy.read_text() == RULES.read_text()
