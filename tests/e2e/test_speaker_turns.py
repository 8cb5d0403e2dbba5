"""Speaker turns on a made dialogue: three voices, gaps of 0.12-0.28 s, the real VAD and GE2E encoder.

Before speaker turns, such a dialogue came out as a few long segments mixing voices (pauses under
0.3 s never close a segment); now every turn is cut near its gap and each voice keeps one label.
"""

from __future__ import annotations

import pytest

from workers.bench.speaker_turns import TOLERANCE_S, made_dialogue, score, segment_dialogue
from workers.registry import create_stage

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dialogue(loaded):
    from workers.tts.espeak import Espeak
    from workers.tts.piper import Piper

    return made_dialogue({"piper": loaded(Piper), "espeak": loaded(Espeak)})


def run(settings, d, turns: bool):
    stage = create_stage("segment", settings.model_copy(update={
        "segment": settings.segment.model_copy(update={"speaker_turns": turns})}))
    stage.load()
    try:
        return segment_dialogue(d, stage)
    finally:
        stage.close()


def test_every_turn_is_cut_and_each_speaker_keeps_one_label(settings, dialogue):
    pytest.importorskip("torch", reason="the speaker encoder is in the model layer (scripts/install.sh --models)")
    got = score(dialogue, run(settings, dialogue, turns=True))
    assert got.turns == 7
    assert got.found == got.turns, got.as_dict()
    assert max(got.errors_s) <= TOLERANCE_S
    assert got.purity_min >= 0.95, got.as_dict()
    assert got.consistent, got.labels


def test_pauses_alone_mix_the_speakers(settings, dialogue):
    """The defect the issue names, reproduced: without the voice watch, segments span turns."""
    got = score(dialogue, run(settings, dialogue, turns=False))
    assert got.found < got.turns and got.purity_min < 0.9, got.as_dict()
