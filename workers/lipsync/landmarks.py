"""Lip sync from the speaker's own face: dlib landmarks, tracked; mouth shapes from the dub.

Per segment, the faces are followed through its source frames first, and the speaker is the
face whose mouth moved most there (the one who said what is being dubbed; two people taking
turns each get their own segments). Then each frame's mouth is set to the dub's shape
(openness and lip rounding at that frame): drawn from the speaker's own mouths seen so far
(`MouthBank`, sample-based) once enough different ones were seen, else by warping the speaker's
lips and jaw and painting the opened interior (`warp_mouth`; see workers/lipsync/mouth.py).
Frames where no face is found, or where the fit is not trusted (head turned away, occluded,
unstable landmarks), pass through unchanged and are counted. Only the lower face is touched.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import cv2
import numpy as np

from workers.errors import BadInputError
from workers.lipsync.face import (
    LIPS_HIDDEN,
    FaceModels,
    FaceTrack,
    FaceTrackingBackend,
    Region,
    estimate_fps,
    landmarks_unavailable,
    lip_redness,
    predictor_path,
)
from workers.lipsync.mouth import Interior, MouthBank, aperture, warp_mouth
from workers.stage import Capabilities

log = logging.getLogger(__name__)


class LandmarkLipsync(FaceTrackingBackend):
    """Default lip sync: dlib landmarks, tracked per stream, and a jaw-drop warp driven by openness."""

    name: ClassVar[str] = "landmarks"
    capabilities: ClassVar[Capabilities] = Capabilities(languages=None, devices=("cpu",))

    def _load(self) -> None:
        self.models = FaceModels(predictor_path(self.settings))

    @classmethod
    def unavailable(cls) -> str | None:
        return landmarks_unavailable()

    def animate(
        self,
        frames: list[np.ndarray],
        openness: np.ndarray,
        track: FaceTrack,
        audio: np.ndarray,
        sample_rate: int,
        rounding: np.ndarray | None = None,
    ) -> list[np.ndarray]:
        self.load()
        if len(openness) != len(frames):
            raise BadInputError(f"lip sync got {len(frames)} frames but {len(openness)} openness values")
        rounding = np.zeros(len(frames), np.float32) if rounding is None or len(rounding) != len(frames) else rounding
        fps = estimate_fps(len(frames), len(audio) / sample_rate if sample_rate else 0.0)
        # pass 1: follow every face through the segment's source frames; who moved their mouth?
        seen: list[dict[int, tuple[np.ndarray, bool]]] = []
        apertures: dict[int, list[float]] = {}
        areas: dict[int, float] = {}
        for img in frames:
            faces = track.observe(self.models, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), fps)
            for f in faces:  # lips no longer redder than the cheeks: something covers the mouth
                red = lip_redness(img, f.points)
                if f.fit_ok and f.lip_contrast > 2.0 and red < LIPS_HIDDEN * f.lip_contrast:
                    f.fit_ok = False
                elif f.fit_ok:
                    f.lip_contrast = red if f.lip_contrast == 0.0 else 0.9 * f.lip_contrast + 0.1 * red
            seen.append({f.id: (f.points, f.fit_ok) for f in faces})
            for f in faces:
                areas[f.id] = max(areas.get(f.id, 0.0), f.area)
                if f.fit_ok:
                    apertures.setdefault(f.id, []).append(aperture(f.points))
        track.choose({i: float(np.std(a)) for i, a in apertures.items() if len(a) >= 4}, areas)
        speaker = track.speaker_id
        # pass 2: draw the dub's mouth shapes on the speaker
        out: list[np.ndarray] = []
        regions: list[Region | None] = []
        bank = track.banks.setdefault(speaker, MouthBank()) if speaker is not None else None
        interior = track.interiors.setdefault(speaker, Interior()) if speaker is not None else None
        for img, value, rnd, faces in zip(frames, openness, rounding, seen, strict=True):
            face = faces.get(speaker) if speaker is not None else None
            if face is None or not face[1]:
                track.counts["no_face" if face is None else "bad_fit"] += 1
                out.append(img)
                regions.append(None)
                continue
            points = face[0]
            bank.add(img, points)  # the source frame: one more of the speaker's own mouths
            interior.learn(img, points)
            if bank.rich():
                res, region, _ = bank.render(img, points, float(value), float(rnd))
            else:
                res, region, _ = warp_mouth(img, points, float(value), float(rnd), interior)
            track.counts["animated"] += 1
            out.append(res)
            regions.append(region)
        passed = len(frames) - sum(r is not None for r in regions)
        if passed == len(frames) and frames:
            log.warning("lip sync: no trusted face in any of %d frames; they pass unchanged", len(frames))
        track.regions = regions
        return out
