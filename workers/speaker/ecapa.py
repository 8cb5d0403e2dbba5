"""ECAPA-TDNN speaker encoder (`speechbrain/spkrec-ecapa-voxceleb`, 192-d) through SpeechBrain."""

from __future__ import annotations

from typing import ClassVar

from workers.speaker.speechbrain_base import SpeechBrainSpeaker


class Ecapa(SpeechBrainSpeaker):
    name: ClassVar[str] = "ecapa"
    model_setting: ClassVar[str] = "ecapa_model"
    dims: ClassVar[int] = 192
