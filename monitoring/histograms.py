"""Prometheus samples and histograms read back from a /metrics text, and quantiles of their buckets.

Used by the Kafka benchmark and the integration tests, which read the workers' own
histograms instead of timing things a second way.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample_sum(metrics_text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The sum of sample `name` (a counter's `..._total`, a gauge) in a /metrics text over its label sets
    (those that have `labels`, if given)."""
    want = (labels or {}).items()
    return sum(s.value for fam in text_string_to_metric_families(metrics_text) for s in fam.samples
               if s.name == name and want <= s.labels.items())


def histogram(metrics_text: str, name: str) -> dict[tuple[tuple[str, str], ...], dict[float, float]]:
    """Cumulative buckets of histogram `name` in a /metrics text: labels (without le) -> {le: count}."""
    out: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
    for fam in text_string_to_metric_families(metrics_text):
        if fam.name != name:
            continue
        for s in fam.samples:
            if s.name == f"{name}_bucket":
                labels = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                out.setdefault(labels, {})[float(s.labels["le"])] = s.value
    return out


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket that holds rank q."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return float("nan")
    rank, prev_b, prev_c = q * total, 0.0, 0.0
    for b in bounds:
        c = buckets[b]
        if c >= rank:
            if b == float("inf"):
                return prev_b
            return prev_b + (b - prev_b) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 0.0)
        prev_b, prev_c = b, c
    return bounds[-1]
