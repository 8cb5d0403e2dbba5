"""Reading a worker's /metrics text back with Prometheus' own parser."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from monitoring.histograms import sample_sum


def test_sample_sum_adds_a_sample_over_its_label_sets_and_only_that_sample():
    reg = CollectorRegistry()
    dlq = Counter("livedub_dlq_records", "dead letters", ["stage"], registry=reg)
    lag = Gauge("livedub_consumer_lag", "lag", ["stage", "partition"], registry=reg)
    dlq.labels("segment").inc(3)
    dlq.labels("lipsync").inc(2)
    lag.labels("asr", "0").set(4)
    lag.labels("asr", "1").set(1)
    text = generate_latest(reg).decode()
    assert sample_sum(text, "livedub_dlq_records_total") == 5
    assert sample_sum(text, "livedub_consumer_lag") == 5
    assert sample_sum(text, "livedub_dlq_records_created") > 0  # a different sample: not mixed in
    assert sample_sum(text, "livedub_missing") == 0
    assert sample_sum(text, "livedub_dlq_records_total", {"stage": "lipsync"}) == 2
    assert sample_sum(text, "livedub_consumer_lag", {"stage": "asr", "partition": "1"}) == 1
    assert sample_sum(text, "livedub_consumer_lag", {"stage": "tts"}) == 0
