"""`livedub bench --reject` runs and counts every bad record as a dead letter (small sizes here)."""

from __future__ import annotations

import json

from streams.reject_bench import BAD, run


def test_the_reject_benchmark_dead_letters_every_bad_record_and_completes_the_valid_session(tmp_path):
    result = run(tmp_path, n=50, chunks=20)
    assert set(result["rejected_per_s"]) == set(BAD) and all(v > 0 for v in result["rejected_per_s"].values())
    assert result["malformed_dead_lettered"] == 50
    assert json.loads((tmp_path / "reject.json").read_text()) == result
