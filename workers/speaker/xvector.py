"""X-vector speaker encoder (`speechbrain/spkrec-xvect-voxceleb`, 512-d) through SpeechBrain: the
embedding SpeechT5's voice conversion is conditioned on (workers/voice/speecht5.py)."""

from __future__ import annotations

from typing import ClassVar

from workers.speaker.speechbrain_base import SpeechBrainSpeaker


class XVector(SpeechBrainSpeaker):
    name: ClassVar[str] = "xvector"
    model_setting: ClassVar[str] = "xvector_model"
    dims: ClassVar[int] = 512
