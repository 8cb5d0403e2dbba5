"""Lip-sync stage: dubbed speech + the source frames of its span -> re-animated frames."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.media.frames import decode_frame, encode_frame
from workers.records import DubbedFrame, DubbedSpeech, VideoFrame, now
from workers.stage import Backend, Stage


@dataclass(frozen=True)
class LipsyncJob:
    """One segment's dubbed speech joined with the source frames inside its span.

    Built by a frame joiner (in process: a second reader of the file; over Kafka:
    a per-session buffer of the video topic); not a wire record itself.
    """

    speech: DubbedSpeech
    frames: tuple[VideoFrame, ...]
    output_encoding: str = "bgr24"


class LipsyncBackend(Backend):
    """Re-animates the speaker's mouth. State (face track) is kept per stream key."""

    @abstractmethod
    def new_track(self) -> Any:
        """Fresh per-stream state (e.g. last face box and landmarks)."""

    @abstractmethod
    def animate(
        self, frames: list[np.ndarray], openness: np.ndarray, track: Any, audio: np.ndarray, sample_rate: int,
        rounding: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        """Return frames (BGR uint8) with the mouth driven by `openness` (one value per frame, 0..1)
        and `rounding` (-1 spread .. 1 round, per frame; None: neutral).

        Frames where no face is found are returned unchanged.
        """


class LipsyncStage(Stage[LipsyncJob, DubbedFrame]):
    name = "lipsync"
    backend: LipsyncBackend

    def __init__(self, backend: LipsyncBackend, metrics=None) -> None:
        super().__init__(backend, metrics)
        self._tracks: dict[tuple[str, str], Any] = {}

    def _handle(self, job: LipsyncJob) -> list[DubbedFrame]:
        sp = job.speech
        if not job.frames:
            return []
        key = (sp.session_id, sp.target_lang)
        track = self._tracks.setdefault(key, self.backend.new_track())
        images = [decode_frame(f) for f in job.frames]
        mouth = np.asarray(sp.mouth, dtype=np.float32)
        idx = np.clip(((np.array([f.pts_s for f in job.frames]) - sp.start_s) * sp.mouth_rate).astype(int),
                      0, max(len(mouth) - 1, 0))
        openness = mouth[idx] if len(mouth) else np.zeros(len(images), np.float32)
        rnd = np.asarray(sp.mouth_round, dtype=np.float32)
        rounding = rnd[np.clip(idx, 0, len(rnd) - 1)] if len(rnd) else None
        before = dict(getattr(track, "counts", {}))
        out = self.backend.animate(images, openness, track, sp.samples(), sp.sample_rate, rounding)
        if self.metrics is not None:
            for result, n in getattr(track, "counts", {}).items():
                if n - before.get(result, 0):
                    self.metrics.lipsync_frames.labels(result).inc(n - before.get(result, 0))
        last = len(out) - 1
        return [
            DubbedFrame(
                session_id=sp.session_id,
                seq=sp.seq,
                frame_seq=f.seq,
                pts_s=f.pts_s,
                target_lang=sp.target_lang,
                width=img.shape[1],
                height=img.shape[0],
                encoding=job.output_encoding,
                data=encode_frame(img, job.output_encoding),
                last_in_segment=i == last,
                speech_end_at=sp.speech_end_at,
                produced_at=now(),
            )
            for i, (f, img) in enumerate(zip(job.frames, out, strict=True))
        ]

    def end_session(self, session_id: str) -> None:
        for key in [k for k in self._tracks if k[0] == session_id]:
            del self._tracks[key]
