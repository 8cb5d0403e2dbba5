"""The dubbed mouth, judged by MediaPipe's face mesh (not the dlib landmarks that drive it)."""

from __future__ import annotations

import pytest

from workers.bench.lipsync_quality import run


@pytest.mark.slow
def test_the_dubbed_mouth_follows_the_dub_closes_in_its_silences_and_nothing_above_the_nose_moves(tmp_path):
    res = run(tmp_path, seconds=8.0, clips=("portrait-512",))["portrait-512"]
    assert res["frames"] > 100
    assert res["aperture_envelope_pearson"] >= 0.6, res  # the target for still portraits
    assert res["source_aperture_envelope_pearson"] < 0.3  # the still source does not (so this is the dub)
    # in the dub's pauses the mouth is shut: near the face's closed mouth, well below the open source smile
    assert res["silence_aperture"] <= res["closed_reference_aperture"] + 0.04, res
    assert res["silence_aperture"] < 0.7 * res["source_aperture"], res
    assert res["above_nose_ssim_min"] >= 0.98, res
    assert (tmp_path / "lipsync-portrait-512.png").is_file()
