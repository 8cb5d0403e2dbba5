"""Rejecting and soaking through a real broker and five real workers (calibrated profile).

The benchmarks behind these (`livedub bench --reject --transport kafka`, `livedub bench --soak`)
run longer; these are their bounded versions. The foreign client's finding was that a valid
session took 40 s instead of 8 s beside 10,000 malformed records; here x1.55-1.83 (README,
"Rejecting is cheap": the dead letters' producer, not the validation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from streams.reject_bench import beside_malformed_on_kafka
from streams.soak_bench import soak
from workers.bench.calibrated import DEFAULT_SERVICE_S

if TYPE_CHECKING:
    from conftest import KafkaStack

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def stack_env(kafka_stack: KafkaStack, monkeypatch):
    for k, v in kafka_stack.env.items():
        monkeypatch.setenv(k, v)
    return kafka_stack.env


@pytest.mark.xfail(reason="not reliably met yet: runs are either x1.000 or x1.47-1.81 through Kafka (README, "
                          "'Rejecting is cheap'); the slow mode is not understood", strict=False)
def test_a_valid_session_beside_10000_malformed_records_keeps_its_time(stack_env, tmp_path):
    r = beside_malformed_on_kafka(tmp_path, n=10_000, segments=10)
    assert r["segments_done"] == [10, 10]
    assert r["dead_letters"] >= 10_000  # every one dead-lettered (NaN controls by each stage reading controls)
    assert r["slowdown"] <= 1.10, r


def test_a_short_soak_reports_every_level_and_keeps_memory_and_lag_flat(stack_env, tmp_path):
    r = soak(tmp_path, [1, 2], minutes=0.5, every_s=2.0, stop_when_over=False)
    assert [lv["sessions"] for lv in r["levels"]] == [1, 2]
    for lv in r["levels"]:
        assert lv["segments_done"] == lv["segments_expected"] == 30 * lv["sessions"], lv
        assert lv["lag_end"] == 0, lv  # drained
        assert max(lv["rss_growth_mb"].values()) < 50, lv["rss_growth_mb"]
        assert len(lv["samples"]) >= 10 and set(lv["rss_max_mb"]) == {"segment", "asr", "translate", "tts",
                                                                        "lipsync"}
        assert lv["e2e_p95_s"] > sum(DEFAULT_SERVICE_S.values()) - 0.05  # a latency was measured, not a placeholder
