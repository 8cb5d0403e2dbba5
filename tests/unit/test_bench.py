"""The benchmark's plumbing (not its figures): every key the issue asks for, a JSON file and a plot."""

from __future__ import annotations

import asyncio
import json

import pytest

from workers.bench.calibrated import calibrated_pipeline
from workers.bench.run import bench_profile, calibrated_feed, machine, percentile, write_results
from workers.settings import load_settings

SERVICE = {"segment": 0.002, "asr": 0.03, "translate": 0.006, "tts": 0.015, "lipsync": 0.012}
BOUND = sum(SERVICE.values()) / max(SERVICE.values())  # 2.17: known from the configured times, not the code


def test_profile_has_the_required_keys_and_files_are_written(tmp_path):
    pipe = calibrated_pipeline(load_settings(), SERVICE)
    prof = asyncio.run(bench_profile("calibrated", pipe, calibrated_feed(8, segment_s=0.05), "es"))
    for stage in ("segment", "asr", "translate", "tts", "lipsync"):
        assert prof["stages"][stage]["mean_s"] > 0
    for mode in ("sequential", "pipelined"):
        assert prof[mode]["e2e_p50_s"] > 0 and prof[mode]["throughput_sps"] > 0
        assert prof[mode]["realtime"]["segments"] == 8
    for key in ("speedup_latency", "speedup_throughput", "bound", "bound_cpu", "sum_service_s"):
        assert prof[key] > 0
    for stage, t in SERVICE.items():  # measured service times are the configured sleeps (plus overhead)
        assert t <= prof["stages"][stage]["mean_s"] < t + 0.004, (stage, prof["stages"][stage])
    assert prof["bound"] == pytest.approx(BOUND, rel=0.1)
    assert prof["sum_service_s"] == pytest.approx(sum(SERVICE.values()), rel=0.15)
    write_results({"machine": machine(), "transport": "embedded", "profiles": {"calibrated": prof}}, tmp_path)
    assert json.loads((tmp_path / "bench.json").read_text())["profiles"]["calibrated"]["bound"] == prof["bound"]
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_percentile_interpolates():
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.95) == 5.0
