"""Classical lip sync: open the speaker's jaw by warping the lower face along its landmarks.

Per frame, the lower lip and jaw landmarks are moved "down" (perpendicular to the
eye line, so head roll is respected) by openness * K_OPEN * mouth width, with
weights falling off towards the mouth corners and jaw sides. The lower-face box
is then warped piecewise-affinely over a Delaunay triangulation of the moved
points plus fixed anchors on the box border (so the warp is the identity on the
border: no seam), the opened inner-mouth polygon is filled with a dark mouth
interior (with a band of upper teeth when wide open) through a feathered mask.
Only the lower-face box is touched; every other pixel of the frame is returned
as it came. Cost is dominated by the landmark fit (~1 ms) and the warp of the
box (~1-2 ms at 384x384).
"""

from __future__ import annotations

import logging
from typing import ClassVar

import cv2
import numpy as np
from scipy.spatial import Delaunay

from workers.errors import BadInputError
from workers.lipsync.face import (
    LEFT_EYE,
    MOUTH_CORNERS,
    RIGHT_EYE,
    FaceModels,
    FaceTrack,
    FaceTrackingBackend,
    Region,
    estimate_fps,
    landmarks_unavailable,
    predictor_path,
)
from workers.stage import Capabilities

log = logging.getLogger(__name__)


K_OPEN = 0.4  # lower-lip drop at openness 1, as a fraction of mouth width
MIN_DROP_PX = 0.5  # below this the frame is left as it is
# landmark -> share of the full drop: the lower lip moves most, the chin a little less, the jaw sides hardly
MOVES: dict[int, float] = {
    57: 1.0,
    56: 0.92,
    58: 0.92,
    55: 0.6,
    59: 0.6,
    66: 1.0,
    65: 0.9,
    67: 0.9,
    48: 0.2,
    54: 0.2,
    60: 0.25,
    64: 0.25,
    8: 0.75,
    7: 0.68,
    9: 0.68,
    6: 0.5,
    10: 0.5,
    5: 0.3,
    11: 0.3,
    4: 0.12,
    12: 0.12,
}
FIXED = (2, 3, 13, 14, 31, 32, 33, 34, 35, 49, 50, 51, 52, 53, 61, 62, 63)
INNER_MOUTH = (60, 61, 62, 63, 64, 65, 66, 67)  # polygon order
UPPER_INNER = (60, 61, 62, 63, 64)
_WARPED = (*MOVES, *FIXED)
MOUTH_BGR = np.array([28, 22, 62], np.float32)  # dark red-brown mouth interior
TEETH_BGR = np.array([200, 208, 218], np.float32)
TEETH_FROM = 0.35  # openness above which a hint of upper teeth shows


def face_down(points: np.ndarray) -> np.ndarray:
    """Unit vector pointing from the eyes towards the chin, perpendicular to the eye line."""
    left, right = points[LEFT_EYE].mean(0), points[RIGHT_EYE].mean(0)
    across = right - left
    down = np.array([-across[1], across[0]], np.float64)
    n = np.linalg.norm(down)
    if n == 0:
        return np.array([0.0, 1.0])
    down /= n
    return down if np.dot(down, points[8] - (left + right) / 2) >= 0 else -down


def lower_face_region(points: np.ndarray, drop: float, shape: tuple[int, ...]) -> Region | None:
    """The box the warp may touch: cheeks to cheeks, nose to below the chin (room for it to drop)."""
    h, w = shape[:2]
    face_w = float(np.linalg.norm(points[16] - points[0]))
    margin = 0.08 * face_w
    xs = points[2:15, 0]
    top = min(points[[2, 14, 31, 32, 33, 34, 35], 1]) - margin
    bottom = max(points[4:13, 1]) + max(0.25 * face_w, 1.5 * drop)
    x0, x1 = int(np.floor(max(0, xs.min() - margin))), int(np.ceil(min(w, xs.max() + margin)))
    y0, y1 = int(np.floor(max(0, top))), int(np.ceil(min(h, bottom)))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return x0, y0, x1, y1


def _border_anchors(w: int, h: int) -> np.ndarray:
    ts = np.linspace(0.0, 1.0, 5)
    xs, ys = ts * (w - 1), ts * (h - 1)
    pts = [(x, 0.0) for x in xs] + [(x, h - 1.0) for x in xs] + [(0.0, y) for y in ys[1:-1]]
    pts += [(w - 1.0, y) for y in ys[1:-1]]
    return np.array(pts, np.float64)


def _piecewise_affine(img: np.ndarray, region: Region, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The region of `img` warped so that points `src` move to `dst` (both in region coordinates)."""
    x0, y0, x1, y1 = region
    w, h = x1 - x0, y1 - y0
    tri = Delaunay(dst).simplices
    # affine dst->src per triangle: [x_src, y_src] = A @ [x, y, 1]
    d = np.concatenate([dst[tri], np.ones((len(tri), 3, 1))], axis=2)  # (T, 3, 3) rows = vertices
    s = src[tri]  # (T, 3, 2)
    ok = np.abs(np.linalg.det(d)) > 1e-6
    a = np.zeros((len(tri), 2, 3))
    a[:, 0, 0] = a[:, 1, 1] = 1.0  # identity for degenerate triangles
    a[ok] = np.linalg.solve(d[ok], s[ok]).transpose(0, 2, 1)
    ids = np.full((h, w), -1, np.int32)
    for k, t in enumerate(tri):
        cv2.fillConvexPoly(ids, np.round(dst[t] * 16).astype(np.int32), k, lineType=cv2.LINE_8, shift=4)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    covered = ids >= 0
    k = np.where(covered, ids, 0)
    ak = a.astype(np.float32)[k]  # (h, w, 2, 3)
    map_x = np.where(covered, ak[..., 0, 0] * xs + ak[..., 0, 1] * ys + ak[..., 0, 2], xs) + x0
    map_y = np.where(covered, ak[..., 1, 0] * xs + ak[..., 1, 1] * ys + ak[..., 1, 2], ys) + y0
    return cv2.remap(
        img,
        map_x.astype(np.float32),
        map_y.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def reanimate_mouth(img: np.ndarray, points: np.ndarray, openness: float) -> tuple[np.ndarray, Region | None]:
    """`img` with the mouth opened by `openness` (0..1); returns the frame and the region changed.

    The input is never modified; when nothing changes it is returned as is, with region None.
    """
    openness = float(np.clip(openness, 0.0, 1.0))
    mouth_w = float(np.linalg.norm(points[MOUTH_CORNERS[1]] - points[MOUTH_CORNERS[0]]))
    drop = openness * K_OPEN * mouth_w
    if drop < MIN_DROP_PX:
        return img, None
    region = lower_face_region(points, drop, img.shape)
    if region is None:
        return img, None
    x0, y0, x1, y1 = region
    w, h = x1 - x0, y1 - y0
    down = face_down(points)
    origin = np.array([x0, y0], np.float64)
    idx = np.array(_WARPED)
    src = points[idx].astype(np.float64) - origin
    weights = np.array([MOVES.get(i, 0.0) for i in _WARPED])
    dst = src + weights[:, None] * drop * down[None, :]
    inside = np.array([0.5, 0.5]), np.array([w - 1.5, h - 1.5])
    src, dst = np.clip(src, *inside), np.clip(dst, *inside)
    anchors = _border_anchors(w, h)
    patch = _piecewise_affine(img, region, np.vstack([src, anchors]), np.vstack([dst, anchors]))

    # the opened mouth: dark interior, upper teeth when wide open, feathered into the warped lips
    where = {i: dst[_WARPED.index(i)] for i in INNER_MOUTH}
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(
        mask,
        [np.round(np.array([where[i] for i in INNER_MOUTH]) * 16).astype(np.int32)],
        1.0,
        lineType=cv2.LINE_AA,
        shift=4,
    )
    colour = np.empty((h, w, 3), np.float32)
    colour[:] = MOUTH_BGR
    if openness > TEETH_FROM:
        upper = np.array([where[i] for i in UPPER_INNER])
        depth = min(0.3 * drop, 0.12 * mouth_w) * (openness - TEETH_FROM) / (1 - TEETH_FROM)
        band = np.vstack([upper, upper[::-1] + depth * down[None, :]])
        cv2.fillPoly(
            colour, [np.round(band * 16).astype(np.int32)], TEETH_BGR.tolist(), lineType=cv2.LINE_AA, shift=4
        )
    feather = max(3, int(0.06 * mouth_w) | 1)
    mask = cv2.GaussianBlur(mask, (feather, feather), 0) * min(1.0, drop / 3.0)
    blended = patch.astype(np.float32) * (1 - mask[..., None]) + colour * mask[..., None]
    out = img.copy()
    out[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out, region


class LandmarkLipsync(FaceTrackingBackend):
    """Default lip sync: dlib landmarks, tracked per stream, and a jaw-drop warp driven by openness."""

    name: ClassVar[str] = "landmarks"
    capabilities: ClassVar[Capabilities] = Capabilities(languages=None, batchable=False, devices=("cpu",))

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
    ) -> list[np.ndarray]:
        self.load()
        if len(openness) != len(frames):
            raise BadInputError(f"lip sync got {len(frames)} frames but {len(openness)} openness values")
        fps = estimate_fps(len(frames), len(audio) / sample_rate if sample_rate else 0.0)
        out: list[np.ndarray] = []
        regions: list[Region | None] = []
        missing = 0
        for img, value in zip(frames, openness, strict=True):
            face = track.update(self.models, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), fps)
            if face is None:
                missing += 1
                out.append(img)
                regions.append(None)
                continue
            res, region = reanimate_mouth(img, face.points, float(value))
            out.append(res)
            regions.append(region)
        if missing:  # once per segment, not per frame
            log.warning(
                "lip sync: no face found in %d of %d frames; those frames are unchanged", missing, len(frames)
            )
        track.regions = regions
        return out
