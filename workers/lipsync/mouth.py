"""Mouth shapes and the two ways of drawing them on the speaker's face.

A target shape is (open, round): open 0..1 (closed .. wide open), round -1..1 (lips spread
wide for "i", neutral, pushed into a small round opening for "o", "u"). `target_points` moves
the 68 landmarks' lips and jaw to that shape from wherever the source has them, so a dub can
close a mouth that is open in the source as well as open a closed one.

* `MouthBank` is the sample-based way (Video Rewrite, Bregler et al. 1997): the speaker's own
  mouths, seen in the source frames, kept per stream in a canonical frame (mouth corners at
  fixed points) and indexed by shape; each output frame takes the sample closest to the target
  (with a penalty for switching, so it does not flicker), mapped back onto the face, its colours
  matched to the current frame, blended in through a feathered mask. Used once the bank has
  seen enough different shapes.
* `warp_mouth` is the fallback for a still source (a photo, a speaker who has not moved yet): a
  piecewise-affine warp that moves the speaker's own lips and jaw to the target, and renders the
  opened interior with shading, the speaker's teeth when the source shows them (else a shaded
  band of teeth), and a darker throat.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.spatial import Delaunay

Region = tuple[int, int, int, int]

OUTER_UPPER = (49, 50, 51, 52, 53)
OUTER_LOWER = (55, 56, 57, 58, 59)
INNER_UPPER = (61, 62, 63)
INNER_LOWER = (65, 66, 67)
CORNERS = (48, 54, 60, 64)
INNER = (60, 61, 62, 63, 64, 65, 66, 67)  # polygon order
OUTER = tuple(range(48, 60))
JAW_SHARE = {8: 0.75, 7: 0.68, 9: 0.68, 6: 0.5, 10: 0.5, 5: 0.3, 11: 0.3, 4: 0.12, 12: 0.12}
FIXED = (2, 3, 13, 14, 31, 32, 33, 34, 35)
MOVED = (*OUTER, *INNER[1:4], *INNER[5:], *JAW_SHARE)  # corners 48/54/60/64 are in OUTER/INNER
A_MAX = 0.42  # inner-lip gap at open = 1, as a fraction of mouth width
UPPER_SHARE = 0.25  # of a change of gap, the upper lip takes this much, the lower lip (and jaw) the rest
ROUND_NARROW = 0.24  # mouth width shrinks by this share when fully rounded
SPREAD_WIDE = 0.08  # and grows by this share when fully spread
INTERIOR_BGR = np.array([30, 26, 72], np.float32)  # a dark red-brown mouth interior when none is seen
TEETH_MIN_OPEN = 0.12  # below this gap (share of width) no teeth show


def _frame(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Mouth centre, unit right (corner to corner) and down vectors, mouth width."""
    left, right = points[48].astype(np.float64), points[54].astype(np.float64)
    across = right - left
    width = float(np.linalg.norm(across)) or 1.0
    u = across / width
    d = np.array([-u[1], u[0]])
    if np.dot(d, points[8] - points[27]) < 0:  # towards the chin
        d = -d
    centre = (points[62] + points[66]).astype(np.float64) / 2
    return centre, u, d, width


def inner_gap(points: np.ndarray) -> float:
    _, _, d, _ = _frame(points)
    return float(np.mean([(points[lo] - points[up]) @ d for up, lo in zip(INNER_UPPER, INNER_LOWER[::-1],
                                                                            strict=True)]))


def aperture(points: np.ndarray) -> float:
    """Inner-lip gap as a share of mouth width (0 closed, ~0.4 wide open)."""
    return max(0.0, inner_gap(points)) / _frame(points)[3]


def width_ratio(points: np.ndarray) -> float:
    """Mouth width over the distance between the eyes (rounding makes it smaller)."""
    iod = float(np.linalg.norm(points[36:42].mean(0) - points[42:48].mean(0))) or 1.0
    return _frame(points)[3] / iod


def target_points(points: np.ndarray, open_: float, round_: float) -> np.ndarray:
    """The landmarks with lips and jaw moved to shape (open, round) from the source's shape."""
    p = points.astype(np.float64).copy()
    centre, u, d, width = _frame(points)
    open_, round_ = float(np.clip(open_, 0.0, 1.0)), float(np.clip(round_, -1.0, 1.0))
    factor = 1.0 - ROUND_NARROW * max(round_, 0.0) + SPREAD_WIDE * max(-round_, 0.0)
    gap_now = inner_gap(points)
    delta = open_ * A_MAX * width * factor - gap_now
    for i in (*OUTER, *INNER):
        off = p[i] - centre
        x = off @ u
        # horizontal: the mouth narrows or widens about its centre (inner lips a little more when rounded)
        scale = factor * (1.0 - 0.15 * max(round_, 0.0) if i in INNER else 1.0)
        p[i] += (scale - 1.0) * x * u
        # vertical: lips part or close, most in the middle, not at all at the corners
        fall = max(0.0, 1.0 - (x / (width / 2)) ** 2) if i not in CORNERS else 0.0
        if i in (*OUTER_UPPER, *INNER_UPPER):
            p[i] -= UPPER_SHARE * delta * fall * d
        elif i in (*OUTER_LOWER, *INNER_LOWER):
            p[i] += (1.0 - UPPER_SHARE) * delta * fall * d
    for i, share in JAW_SHARE.items():
        p[i] += share * (1.0 - UPPER_SHARE) * delta * d
    # never let the lower inner lip pass above the upper one (a closed mouth is a line, not a cross)
    for up, lo in zip(INNER_UPPER, INNER_LOWER[::-1], strict=True):
        gap = (p[lo] - p[up]) @ d
        if gap < 0.5:
            mid = (p[lo] + p[up]) / 2
            p[up], p[lo] = mid - 0.25 * d, mid + 0.25 * d
    return p.astype(np.float32)


# -- the warp and its interior ----------------------------------------------------------------------

def lower_face_region(points: np.ndarray, extra_drop: float, shape: tuple[int, ...]) -> Region | None:
    """The box the warp may touch: cheeks to cheeks, nose to below the chin (room for it to drop)."""
    h, w = shape[:2]
    face_w = float(np.linalg.norm(points[16] - points[0]))
    margin = 0.08 * face_w
    xs = points[2:15, 0]
    top = min(points[[31, 32, 33, 34, 35], 1]) - 0.4 * margin  # just above the nostrils: the nose stays
    bottom = max(points[4:13, 1]) + max(0.25 * face_w, 1.5 * max(0.0, extra_drop))
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


def piecewise_affine(img: np.ndarray, region: Region, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The region of `img` warped so that points `src` move to `dst` (both in region coordinates)."""
    x0, y0, x1, y1 = region
    w, h = x1 - x0, y1 - y0
    tri = Delaunay(dst).simplices
    d = np.concatenate([dst[tri], np.ones((len(tri), 3, 1))], axis=2)
    s = src[tri]
    ok = np.abs(np.linalg.det(d)) > 1e-6
    a = np.zeros((len(tri), 2, 3))
    a[:, 0, 0] = a[:, 1, 1] = 1.0
    a[ok] = np.linalg.solve(d[ok], s[ok]).transpose(0, 2, 1)
    ids = np.full((h, w), -1, np.int32)
    for k, t in enumerate(tri):
        cv2.fillConvexPoly(ids, np.round(dst[t] * 16).astype(np.int32), k, lineType=cv2.LINE_8, shift=4)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    covered = ids >= 0
    k = np.where(covered, ids, 0)
    ak = a.astype(np.float32)[k]
    map_x = np.where(covered, ak[..., 0, 0] * xs + ak[..., 0, 1] * ys + ak[..., 0, 2], xs) + x0
    map_y = np.where(covered, ak[..., 1, 0] * xs + ak[..., 1, 1] * ys + ak[..., 1, 2], ys) + y0
    return cv2.remap(img, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


@dataclass
class Interior:
    """What the speaker's open mouth looks like inside, learnt from the source when it was open."""

    throat: np.ndarray = field(default_factory=lambda: INTERIOR_BGR.copy())
    teeth: np.ndarray | None = None  # BGR of the upper teeth, once seen

    def learn(self, img: np.ndarray, points: np.ndarray) -> None:
        if aperture(points) < 0.1:
            return
        mask = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(points[list(INNER)]).astype(np.int32)], 1)
        px = img[mask > 0].astype(np.float32)
        if len(px) < 12:
            return
        lum = px.mean(1)
        sat = px.max(1) - px.min(1)
        bright = px[(lum > np.percentile(lum, 80)) & (sat < 40)]
        dark = px[lum < np.percentile(lum, 25)]
        if len(bright) >= 4 and bright.mean() > lum.mean() + 20:
            self.teeth = bright.mean(0)
        if len(dark) and dark.mean() < 90:  # the throat, not teeth in shadow
            self.throat = 0.7 * self.throat + 0.3 * dark.mean(0)


def _skin(img: np.ndarray, points: np.ndarray) -> np.ndarray:
    cheeks = np.vstack([points[[3, 4, 31]], points[[12, 13, 35]]]).mean(0).astype(int)
    y, x = int(np.clip(cheeks[1], 0, img.shape[0] - 1)), int(np.clip(cheeks[0], 0, img.shape[1] - 1))
    return img[max(0, y - 2) : y + 3, max(0, x - 2) : x + 3].reshape(-1, 3).astype(np.float32).mean(0)


def warp_mouth(img: np.ndarray, points: np.ndarray, open_: float, round_: float,
               interior: Interior | None = None) -> tuple[np.ndarray, Region | None, np.ndarray]:
    """`img` with the mouth moved to (open, round); returns the frame, the region changed and the
    target landmarks. The input is never modified."""
    dst_pts = target_points(points, open_, round_)
    move = np.abs(dst_pts[list(MOVED)] - points[list(MOVED)]).max()
    if move < 0.5:
        return img, None, dst_pts
    drop = float(np.max((dst_pts[[8, 57]] - points[[8, 57]]) @ _frame(points)[2]))
    region = lower_face_region(points, drop, img.shape)
    if region is None:
        return img, None, dst_pts
    x0, y0, x1, y1 = region
    w, h = x1 - x0, y1 - y0
    origin = np.array([x0, y0], np.float64)
    idx = np.array((*MOVED, *FIXED))
    inside = np.array([0.5, 0.5]), np.array([w - 1.5, h - 1.5])
    src = np.clip(points[idx].astype(np.float64) - origin, *inside)
    dst = np.clip(dst_pts[idx].astype(np.float64) - origin, *inside)
    anchors = _border_anchors(w, h)
    patch = piecewise_affine(img, region, np.vstack([src, anchors]), np.vstack([dst, anchors])).astype(np.float32)
    gap = inner_gap(dst_pts)
    _, _, down, width = _frame(dst_pts)
    if gap > 1.0:  # the opened mouth: throat, shading, teeth
        patch = _paint_interior(patch, dst_pts - origin, gap, width, down, interior or Interior(),
                                _skin(img, points))
    elif inner_gap(points) > gap + 1.0:  # closed over an open source: the lips meet in a soft seam
        patch = _paint_seam(patch, img, points, dst_pts - origin, width)
    out = img.copy()
    out[y0:y1, x0:x1] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
    return out, region, dst_pts


def _paint_seam(patch: np.ndarray, img: np.ndarray, src_pts: np.ndarray, pts: np.ndarray,
                width: float) -> np.ndarray:
    """Where closed lips meet: a line a little darker than the lips, over what was between them."""
    lips = np.vstack([src_pts[[56, 57, 58]], src_pts[[50, 51, 52]]]).astype(int)
    ys = np.clip(lips[:, 1], 0, img.shape[0] - 1)
    xs = np.clip(lips[:, 0], 0, img.shape[1] - 1)
    colour = img[ys, xs].astype(np.float32).mean(0) * 0.62
    line = np.zeros(patch.shape[:2], np.float32)
    seam = np.round(pts[[60, 61, 62, 63, 64]] * 16).astype(np.int32)
    cv2.polylines(line, [seam], False, 1.0, thickness=max(1, int(0.03 * width)), lineType=cv2.LINE_AA, shift=4)
    line = cv2.GaussianBlur(line, (3, 3), 0)[..., None]
    return patch * (1 - line) + colour[None, None, :] * line


def _paint_interior(patch: np.ndarray, pts: np.ndarray, gap: float, width: float, down: np.ndarray,
                    interior: Interior, skin: np.ndarray) -> np.ndarray:
    h, w = patch.shape[:2]
    poly = np.round(pts[list(INNER)] * 16).astype(np.int32)
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [poly], 1.0, lineType=cv2.LINE_AA, shift=4)
    # shading: darkest deep inside, lighter towards the lips (ambient light on the inner lips)
    core = np.zeros((h, w), np.uint8)
    cv2.fillPoly(core, [poly], 255, shift=4)
    dist = cv2.distanceTransform(core, cv2.DIST_L2, 3)
    depth = np.clip(dist / max(1.0, 0.5 * gap), 0.0, 1.0)
    colour = interior.throat[None, None, :] * (1.15 - 0.55 * depth[..., None])
    share = gap / width
    if share > TEETH_MIN_OPEN:  # upper teeth under the upper lip, shaded towards the corners
        teeth = interior.teeth if interior.teeth is not None else np.clip(0.55 * skin + 95, 0, 235)
        upper = pts[list(INNER[:5])]
        band = min(0.35 * gap, 0.11 * width) * min(1.0, (share - TEETH_MIN_OPEN) / 0.1)
        poly_t = np.vstack([upper, upper[::-1] + band * down[None, :]])
        tmask = np.zeros((h, w), np.float32)
        cv2.fillPoly(tmask, [np.round(poly_t * 16).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=4)
        xs = np.arange(w, dtype=np.float32)
        cx = pts[list(INNER)].mean(0)[0]
        corner_shade = np.clip(1.0 - 0.45 * (np.abs(xs - cx) / (0.5 * width)) ** 2, 0.5, 1.0)[None, :, None]
        colour = colour * (1 - tmask[..., None]) + (teeth[None, None, :] * corner_shade) * tmask[..., None]
    feather = max(3, int(0.05 * width) | 1)
    mask = cv2.GaussianBlur(mask, (feather, feather), 0) * min(1.0, gap / 2.0)
    return patch * (1 - mask[..., None]) + colour * mask[..., None]


# -- the bank of the speaker's own mouths -------------------------------------------------------------

CANVAS = 128
CANON_LEFT, CANON_RIGHT = np.array([40.0, 64.0]), np.array([88.0, 64.0])  # mouth corners in the canvas
BINS_OPEN, BINS_WIDTH, PER_BIN = 10, 5, 6


def _to_canvas(points: np.ndarray) -> np.ndarray:
    """2x3 similarity transform taking the mouth corners of `points` to the canvas' corners."""
    src = np.array([points[48], points[54]], np.float64)
    a = src[1] - src[0]
    b = CANON_RIGHT - CANON_LEFT
    scale = np.linalg.norm(b) / max(np.linalg.norm(a), 1e-6)
    ang = np.arctan2(b[1], b[0]) - np.arctan2(a[1], a[0])
    c, s = scale * np.cos(ang), scale * np.sin(ang)
    rot = np.array([[c, -s], [s, c]])
    t = CANON_LEFT - rot @ src[0]
    return np.hstack([rot, t[:, None]])


@dataclass
class Sample:
    patch: np.ndarray  # CANVAS x CANVAS BGR, the lower face mapped so the mouth corners sit on CANON_*
    points: np.ndarray  # 68 landmarks in canvas coordinates
    open_: float  # aperture / A_MAX, 0..1
    width: float  # width ratio, relative to the bank's neutral width


class MouthBank:
    """The speaker's own mouth shapes, seen in the source, by (open, width) bins."""

    def __init__(self) -> None:
        self.bins: dict[tuple[int, int], list[Sample]] = defaultdict(list)
        self.widths: list[float] = []
        self.last: Sample | None = None

    def __len__(self) -> int:
        return sum(len(v) for v in self.bins.values())

    def add(self, img: np.ndarray, points: np.ndarray) -> None:
        m = _to_canvas(points)
        wr = width_ratio(points)
        self.widths.append(wr)
        neutral = float(np.median(self.widths[-200:]))
        open_ = float(np.clip(aperture(points) / A_MAX, 0, 1))
        width = wr / neutral
        key = (min(BINS_OPEN - 1, int(open_ * BINS_OPEN)), int(np.clip((width - 0.75) / 0.1, 0, BINS_WIDTH - 1)))
        bucket = self.bins[key]
        if len(bucket) >= PER_BIN:  # keep the bank diverse and small: replace the oldest
            bucket.pop(0)
        patch = cv2.warpAffine(img, m, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        pts = (np.hstack([points, np.ones((68, 1))]) @ m.T).astype(np.float32)
        bucket.append(Sample(patch, pts, open_, width))

    def span(self) -> float:
        """How far apart the most closed and most open mouths seen are (0..1)."""
        opens = [s.open_ for b in self.bins.values() for s in b]
        if len(opens) < 2:
            return 0.0
        return float(np.percentile(opens, 95) - np.percentile(opens, 5))

    def rich(self) -> bool:
        """Enough different mouths to draw speech from (else the warp is used)."""
        return len(self) >= 30 and self.span() >= 0.45

    def choose(self, open_: float, round_: float) -> Sample:
        want_w = 1.0 - ROUND_NARROW * max(round_, 0.0) + SPREAD_WIDE * max(-round_, 0.0)
        best, cost = None, float("inf")
        for bucket in self.bins.values():
            for s in bucket:
                c = (s.open_ - open_) ** 2 + 0.5 * (s.width - want_w) ** 2
                if s is not self.last:
                    c += 0.004  # hysteresis: a sample only replaces the previous one for a clear gain
                if c < cost:
                    best, cost = s, c
        self.last = best
        return best  # type: ignore[return-value]

    def render(self, img: np.ndarray, points: np.ndarray, open_: float,
               round_: float) -> tuple[np.ndarray, Region | None, np.ndarray]:
        """`img` with the best-matching sample blended over the mouth; returns the frame, region, and
        the sample's landmarks in frame coordinates."""
        s = self.choose(open_, round_)
        m = _to_canvas(points)
        inv = cv2.invertAffineTransform(m)
        h, w = img.shape[:2]
        pts = (np.hstack([s.points, np.ones((68, 1))]) @ inv.T).astype(np.float32)
        hull = np.vstack([pts[list(OUTER)], pts[[5, 6, 7, 8, 9, 10, 11]], points[[5, 6, 7, 8, 9, 10, 11]]])
        x0, y0 = np.floor(hull.min(0) - 0.25 * _frame(points)[3]).astype(int)
        x1, y1 = np.ceil(hull.max(0) + 0.25 * _frame(points)[3]).astype(int)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return img, None, points
        shift = np.array([[1, 0, -x0], [0, 1, -y0]], np.float64)
        inv_local = shift @ np.vstack([inv, [0, 0, 1]])
        warped = cv2.warpAffine(s.patch, inv_local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        lips = cv2.convexHull(np.round((pts[list(OUTER)] - [x0, y0]) * 16).astype(np.int32))
        cv2.fillConvexPoly(mask, lips, 1.0, lineType=cv2.LINE_AA, shift=4)
        grow = max(3, int(0.35 * _frame(points)[3]) | 1)
        mask = cv2.GaussianBlur(cv2.dilate(mask, np.ones((grow, grow), np.uint8)), (grow, grow), 0)
        region = img[y0:y1, x0:x1].astype(np.float32)
        sel = mask > 0.5
        if sel.sum() > 10:  # match colours to this frame (lighting drifts over a session)
            mu_s, sd_s = warped[sel].mean(0), warped[sel].std(0) + 1e-3
            mu_t, sd_t = region[sel].mean(0), region[sel].std(0) + 1e-3
            warped = (warped - mu_s) * np.clip(sd_t / sd_s, 0.7, 1.4) + mu_t
        out = img.copy()
        blend = region * (1 - mask[..., None]) + warped * mask[..., None]
        out[y0:y1, x0:x1] = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
        return out, (x0, y0, x1, y1), pts
