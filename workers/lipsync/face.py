"""Face detection, 68-point landmarks and per-stream face tracking for the lip-sync backends.

Full-frame detection (dlib's HOG detector, ~15-40 ms a frame) is too slow to run
on every frame, so a stream detects once and then *tracks*: each frame the
landmarks are re-fitted inside the box that followed them on the previous frame
(~1 ms). A face is dropped as lost when its box jumps in size or stops looking
like the face seen at detection; full detection runs again then, and every
`detect_every_s` seconds anyway (to pick up new faces).

A detection is a face only if the detector is sure enough (dlib's HOG score) and the
68-point fit is *stable*: refitted from slightly shifted boxes, a real face's landmarks stay
put (mean shift ~0.3 % of the box) while the landmarks of a false detection on a patterned
suit, a wall or a rocket wander (2-10 %). Measured on skimage's photos (astronaut at three
scales, rotated, camera, rocket, coffee, cat): this rule keeps every frontal face and rejects
every false one; dlib's CNN detector finds the same faces but costs 3 s a frame here, the HOG
detector 25-45 ms (README.md, "Dubbing quality"). During tracking each frame's fit is checked too
(stability, head turn): a bad fit passes the frame through, counted, instead of animating it.

With several faces the one animated is the speaker: the face whose mouth moves
most in the source, else the largest. Once chosen it is kept until it is lost or
another face's mouth clearly moves more, so the choice does not flicker.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from workers.errors import ModelLoadError
from workers.lipsync.stage import LipsyncBackend
from workers.settings import Settings

log = logging.getLogger(__name__)

PREDICTOR_NAME = "shape_predictor_68_face_landmarks.dat"
SYSTEM_PREDICTOR = Path("/usr/share/dlib") / PREDICTOR_NAME

DETECT_MAX_SIDE = 640  # larger frames are downscaled for detection (landmarks use full resolution)
MAX_FACES = 4
NO_FACE_RETRY_S = 0.2  # with no face in view, detection is retried this often, not every frame
TRACK_MIN_SIMILARITY = 0.5  # normalised correlation with the detection-time face below this: lost
TRACK_MAX_SCALE_JUMP = 1.35  # box growing or shrinking more than this in one frame: lost
MATCH_MIN_IOU = 0.3  # a new detection is the same face as a tracked one above this overlap
APERTURE_WINDOW = 50  # frames of mouth aperture kept per face (2 s at 25 fps)
MOTION_MIN_SAMPLES = 8
MOTION_MIN = 0.02  # std of aperture/mouth-width that counts as a speaking mouth (jitter is ~0.005)
SWITCH_RATIO = 2.0  # another face must move this much more than the speaker to take over
MIN_SCORE = 0.15  # dlib HOG detection score below which a detection is not considered (true faces >= 0.7)
MAX_INSTABILITY = 0.012  # mean landmark shift / box width when refitted from jittered boxes (true <= 0.004)
JAW_SHRINK = 0.88  # a nose-to-chin distance below this share of the closed one is a bad fit
LIPS_HIDDEN = 0.4  # lips this much less red than usual (relative to the cheeks) are taken as covered
MAX_YAW = 0.3  # nose offset from the eye-mouth midline / face width beyond which the fit is not trusted
_PATCH = 32  # side of the grey patch compared for tracking

Box = np.ndarray  # float [x0, y0, x1, y1], detector-style (brows to chin)
Region = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) in frame pixels

# 68-point indices
JAW = slice(0, 17)
MOUTH_CORNERS = (48, 54)
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)


def predictor_path(settings: Settings | None = None) -> Path:
    """The 68-point model: settings.cache_dir/models/ first, then the system's libdlib-data copy."""
    candidates = [settings.cache_dir / "models" / PREDICTOR_NAME] if settings is not None else []
    candidates.append(SYSTEM_PREDICTOR)
    return next((c for c in candidates if c.is_file()), SYSTEM_PREDICTOR)


def landmarks_unavailable(settings: Settings | None = None) -> str | None:
    """Why dlib face landmarks cannot run here, or None (cheap: loads nothing)."""
    try:
        import dlib  # noqa: F401
    except ImportError:
        return "dlib is not installed (pip install dlib-bin)"
    path = predictor_path(settings)
    if not path.is_file():
        return f"no dlib 68-point landmark model at {path} (apt-get install libdlib-data)"
    return None


def estimate_fps(n_frames: int, audio_s: float, default: float = 25.0) -> float:
    """A segment's frame rate from its frame count and the length of its (fitted) audio."""
    if n_frames > 1 and audio_s > 0.2:
        return float(np.clip(n_frames / audio_s, 5.0, 120.0))
    return default


class FaceModels:
    """dlib's frontal face detector (OpenCV Haar cascade as fallback) and 68-point shape predictor."""

    def __init__(self, predictor: Path) -> None:
        try:
            import dlib
        except ImportError as e:
            raise ModelLoadError("dlib is not installed (pip install dlib-bin)") from e
        if not predictor.is_file():
            raise ModelLoadError(
                f"no dlib 68-point landmark model at {predictor} (apt-get install libdlib-data)"
            )
        try:
            self._predictor = dlib.shape_predictor(str(predictor))
        except RuntimeError as e:
            raise ModelLoadError(f"cannot load dlib landmark model {predictor}: {e}") from e
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._haar: cv2.CascadeClassifier | None = None
        self.detections = 0  # full-frame detections run (tracking keeps this low)

    def detect(self, gray: np.ndarray, upsample: int = 0) -> list[Box]:
        """Boxes of the detections sure enough to be checked, largest first (see `plausible`)."""
        self.detections += 1
        scale = min(1.0, DETECT_MAX_SIDE / max(gray.shape))
        small = (
            gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        rects, _scores, _ = self._detector.run(small, upsample, MIN_SCORE)
        boxes = [np.array([r.left(), r.top(), r.right(), r.bottom()], float) for r in rects]
        if not boxes:
            boxes = self._haar_detect(small)
        boxes = [b / scale for b in boxes]
        return sorted(boxes, key=box_area, reverse=True)

    def instability(self, gray: np.ndarray, box: Box, points: np.ndarray, tries: int = 4) -> float:
        """Mean landmark shift, as a share of the box width, when refitted from shifted boxes."""
        w = max(1.0, float(box[2] - box[0]))
        shifts = np.array([[-1, -1, -1, -1], [1, 1, 1, 1], [-1, 1, 1, -1], [1, -1, -1, 1]], float)[:tries]
        return float(np.mean([np.abs(self.fit(gray, box + 0.06 * w * s) - points).mean() for s in shifts]) / w)

    def plausible(self, gray: np.ndarray, box: Box, points: np.ndarray) -> bool:
        """A real, frontal-enough face: a stable landmark fit with eyes above nose above mouth."""
        return (fit_geometry_ok(points) and abs(yaw(points)) <= MAX_YAW
                and self.instability(gray, box, points) <= MAX_INSTABILITY)

    def _haar_detect(self, gray: np.ndarray) -> list[Box]:
        if self._haar is None:
            self._haar = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        found = self._haar.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(48, 48))
        # Haar boxes include the forehead; map them to dlib-style boxes the shape predictor was trained on.
        return [
            np.array([x + 0.1 * w, y + 0.15 * h, x + 0.97 * w, y + 1.02 * h], float) for x, y, w, h in found
        ]

    def fit(self, gray: np.ndarray, box: Box) -> np.ndarray:
        """68 landmarks (x, y) of the face in `box`."""
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        shape = self._predictor(gray, self._dlib.rectangle(x0, y0, x1, y1))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)


def yaw(points: np.ndarray) -> float:
    """Head turn: the nose tip's offset from the eyes' midpoint across the face, over face width."""
    eyes = (points[LEFT_EYE].mean(0) + points[RIGHT_EYE].mean(0)) / 2
    across = points[16] - points[0]
    width = float(np.linalg.norm(across)) or 1.0
    return float((points[30] - eyes) @ (across / width) / width)


def fit_geometry_ok(points: np.ndarray) -> bool:
    """Eyes above the nose above the mouth, eye distance and mouth width in human proportions."""
    left, right = points[LEFT_EYE].mean(0), points[RIGHT_EYE].mean(0)
    iod = float(np.linalg.norm(right - left))
    face_w = float(np.linalg.norm(points[16] - points[0]))
    if iod <= 0 or face_w <= 0:
        return False
    down = np.array([-(right - left)[1], (right - left)[0]]) / iod
    if np.dot(down, points[8] - left) < 0:
        down = -down
    eyes = (left + right) / 2
    order = ((points[30] - eyes) @ down > 0 and (points[62] - points[30]) @ down > 0
             and (points[8] - points[57]) @ down > 0)
    mouth = float(np.linalg.norm(points[54] - points[48])) / iod
    return bool(order and 0.3 <= iod / face_w <= 0.65 and 0.5 <= mouth <= 1.7)


def jaw_length(points: np.ndarray) -> float:
    """Nose to chin over the eye distance: a jaw opens, it never shortens below its closed length."""
    iod = float(np.linalg.norm(points[LEFT_EYE].mean(0) - points[RIGHT_EYE].mean(0))) or 1.0
    return float(np.linalg.norm(points[8] - points[33])) / iod


def lip_redness(img: np.ndarray, points: np.ndarray) -> float:
    """Mean Cr (YCrCb red difference) of the lips minus that of the cheeks: high for visible lips,
    low or negative when something covers the mouth (a hand, a microphone)."""
    h, w = img.shape[:2]
    x0, y0 = np.maximum(points[[2, 33]].min(0).astype(int) - 2, 0)
    x1, y1 = np.minimum(points[[14, 8]].max(0).astype(int) + 2, [w, h])
    if x1 - x0 < 8 or y1 - y0 < 8:
        return 0.0
    cr = cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_BGR2YCrCb)[..., 1].astype(np.float32)
    local = points - [x0, y0]
    lips, cheeks = np.zeros(cr.shape, np.uint8), np.zeros(cr.shape, np.uint8)
    cv2.fillPoly(lips, [np.round(local[48:60]).astype(np.int32)], 1)
    cv2.fillPoly(lips, [np.round(local[60:68]).astype(np.int32)], 0)
    for a, b in ((3, 31), (13, 35)):
        c = ((local[a] + local[b]) / 2).astype(int)
        r = max(2, int(0.06 * np.linalg.norm(points[16] - points[0])))
        cv2.circle(cheeks, (int(c[0]), int(c[1])), r, 1, -1)
    if lips.sum() < 6 or cheeks.sum() < 6:
        return 0.0
    return float(cr[lips > 0].mean() - cr[cheeks > 0].mean())


def box_area(box: Box) -> float:
    return float(max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1]))


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def _extent(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points.min(0), points.max(0)]).astype(float)


def _relative(box: Box, points: np.ndarray) -> np.ndarray:
    """The box expressed relative to the landmarks' extent, so it can follow them frame to frame."""
    e = _extent(points)
    size = np.maximum(e[2:] - e[:2], 1.0)
    return (box - e) / np.concatenate([size, size])


def _box_from(points: np.ndarray, rel: np.ndarray) -> Box:
    e = _extent(points)
    size = np.maximum(e[2:] - e[:2], 1.0)
    return e + rel * np.concatenate([size, size])


def _patch(gray: np.ndarray, box: Box) -> np.ndarray | None:
    """The face as a small zero-mean unit-norm vector, for normalised correlation."""
    h, w = gray.shape
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    p = cv2.resize(gray[y0:y1, x0:x1], (_PATCH, _PATCH), interpolation=cv2.INTER_AREA).astype(np.float32)
    p -= p.mean()
    n = float(np.linalg.norm(p))
    return p / n if n > 0 else None


def mouth_aperture(points: np.ndarray) -> float:
    """Inner-lip gap as a fraction of mouth width (0 closed, ~0.5 wide open)."""
    width = float(np.linalg.norm(points[MOUTH_CORNERS[1]] - points[MOUTH_CORNERS[0]]))
    gap = np.mean([np.linalg.norm(points[a] - points[b]) for a, b in INNER_LIP_PAIRS])
    return float(gap / width) if width > 0 else 0.0


@dataclass
class TrackedFace:
    """One face being followed; `id` survives re-detections that find it again."""

    id: int
    box: Box
    points: np.ndarray
    rel: np.ndarray
    template: np.ndarray | None
    apertures: deque[float] = field(default_factory=lambda: deque(maxlen=APERTURE_WINDOW))
    fit_ok: bool = True  # this frame's landmark fit can be trusted (stable, not turned away)
    lip_contrast: float = 0.0  # how much redder the lips are than the cheeks, when seen clearly
    jaw_rest: float = 0.0  # shortest nose-to-chin distance / eye distance seen in a trusted fit
    stable: bool = True  # the last stability check passed
    frames: int = 0

    @property
    def area(self) -> float:
        return box_area(self.box)

    @property
    def motion(self) -> float:
        """How much the mouth moves in the source (std of its aperture); 0 until enough frames."""
        if len(self.apertures) < MOTION_MIN_SAMPLES:
            return 0.0
        return float(np.std(self.apertures))


class FaceTrack:
    """Per-stream face state: which faces are where, and which one is the speaker."""

    def __init__(self, detect_every_s: float) -> None:
        self.detect_every_s = detect_every_s
        self.faces: list[TrackedFace] = []
        self.speaker_id: int | None = None
        self.frames_since_detect = 0
        self.detections = 0
        self.regions: list[Region | None] = []  # per frame of the last call: what the backend changed
        self.counts: dict[str, int] = {"animated": 0, "no_face": 0, "bad_fit": 0}  # frames, by outcome
        self.banks: dict[int | None, object] = {}  # face id -> the speaker's own mouths (lipsync.mouth.MouthBank)
        self.interiors: dict[int | None, object] = {}  # face id -> what their open mouth looks like inside
        self._next_id = 0
        self._detected_once = False
        self._no_face_detections = 0  # consecutive detections that found nothing (retries back off)

    @property
    def speaker(self) -> TrackedFace | None:
        return next((f for f in self.faces if f.id == self.speaker_id), None)

    def update(self, models: FaceModels, gray: np.ndarray, fps: float) -> TrackedFace | None:
        """Follow the faces into this frame and return the speaker's (None: no face)."""
        self.observe(models, gray, fps)
        self._choose_speaker()
        return self.speaker

    def observe(self, models: FaceModels, gray: np.ndarray, fps: float) -> list[TrackedFace]:
        """Follow the faces into this frame (detecting again when due); returns them all."""
        every = max(1, round(self.detect_every_s * fps))
        # with no face in view, look again soon, then less and less often (a detection costs 25-45 ms)
        retry = max(1, round(NO_FACE_RETRY_S * fps * min(5, 1 + self._no_face_detections)))
        due = self.frames_since_detect >= every
        if self.faces and not due:
            self._follow(models, gray)
            due = self.speaker_id is not None and self.speaker is None  # the speaker was lost: look again
        if due or (not self.faces and (not self._detected_once or self.frames_since_detect >= retry)):
            self._redetect(models, gray)
        else:
            self.frames_since_detect += 1
        return self.faces

    def choose(self, motion: dict[int, float], areas: dict[int, float]) -> None:
        """The speaker for a segment, among the faces seen in its frames (`areas`: id -> largest box):
        the face whose mouth moved most there, else the one already speaking, else the largest."""
        if not areas:
            self.speaker_id = None
            return
        best = max(motion, key=motion.__getitem__, default=None)
        current = motion.get(self.speaker_id, 0.0) if self.speaker_id in areas else None
        takes_over = current is None or motion.get(best, 0.0) > SWITCH_RATIO * current
        if best is not None and motion[best] >= MOTION_MIN and takes_over:
            if self.speaker_id is not None and best != self.speaker_id:
                log.info("speaker changed to face %d: its mouth moved %.3f in this segment", best, motion[best])
            self.speaker_id = best
        elif current is None:
            self.speaker_id = max(areas, key=areas.__getitem__)

    def _follow(self, models: FaceModels, gray: np.ndarray) -> None:
        kept = []
        for face in self.faces:
            if not face.fit_ok:  # the last fit was not trusted: find the face afresh rather than follow a slide
                self.frames_since_detect = 10**6
            points = models.fit(gray, face.box)
            box = _box_from(points, face.rel)
            jump = np.sqrt(max(box_area(box), 1.0) / max(face.area, 1.0))
            patch = _patch(gray, box)
            similar = (
                patch is not None
                and face.template is not None
                and float((patch * face.template).sum()) >= TRACK_MIN_SIMILARITY
            )
            if similar and 1 / TRACK_MAX_SCALE_JUMP <= jump <= TRACK_MAX_SCALE_JUMP:
                face.box, face.points = box, points
                face.frames += 1
                # one refit from a shifted box (~4 ms): an occluded or turned face's landmarks wander
                face.stable = models.instability(gray, box, points, tries=1) <= 2 * MAX_INSTABILITY
                jaw = jaw_length(points)
                face.fit_ok = (face.stable and fit_geometry_ok(points) and abs(yaw(points)) <= MAX_YAW
                               and jaw >= JAW_SHRINK * face.jaw_rest)  # a shorter jaw: the fit slid off (occlusion)
                if face.fit_ok:
                    face.jaw_rest = min(face.jaw_rest, jaw) if face.jaw_rest else jaw
                if face.fit_ok:
                    face.apertures.append(mouth_aperture(points))
                kept.append(face)
            else:
                log.debug("face %d lost (size jump %.2f, looks alike: %s)", face.id, jump, similar)
        self.faces = kept

    def _redetect(self, models: FaceModels, gray: np.ndarray) -> None:
        self.detections += 1
        self._detected_once = True
        self.frames_since_detect = 0
        found: list[TrackedFace] = []
        unmatched = list(self.faces)
        candidates = [(b, models.fit(gray, b)) for b in models.detect(gray)[:MAX_FACES]]
        accepted = [(b, p) for b, p in candidates if models.plausible(gray, b, p)]
        if not accepted:  # small faces (60-80 px) need the detector's 2x upsampling: 4x the cost, so only now
            candidates = [(b, models.fit(gray, b)) for b in models.detect(gray, upsample=1)[:MAX_FACES]]
            accepted = [(b, p) for b, p in candidates if models.plausible(gray, b, p)]
        if len(accepted) < len(candidates):
            log.debug("%d detections rejected: not a stable, frontal face fit", len(candidates) - len(accepted))
        for box, points in accepted:
            old = max(unmatched, key=lambda f: iou(f.box, box), default=None)
            lips, jaw = 0.0, jaw_length(points)
            if old is not None and iou(old.box, box) >= MATCH_MIN_IOU:
                unmatched.remove(old)
                face_id, apertures = old.id, old.apertures
                lips, jaw = old.lip_contrast, old.jaw_rest or jaw  # what the face looks like is kept
            else:
                face_id, apertures = self._next_id, deque(maxlen=APERTURE_WINDOW)
                self._next_id += 1
            apertures.append(mouth_aperture(points))
            found.append(
                TrackedFace(face_id, box, points, _relative(box, points), _patch(gray, box), apertures,
                            lip_contrast=lips, jaw_rest=jaw)
            )
        self.faces = found
        self._no_face_detections = 0 if found else self._no_face_detections + 1

    def _choose_speaker(self) -> None:
        if not self.faces:
            self.speaker_id = None
            return
        current = self.speaker
        mover = max(self.faces, key=lambda f: f.motion)
        if mover.motion >= MOTION_MIN and (current is None or mover.motion > SWITCH_RATIO * current.motion):
            if current is not None and mover.id != current.id:
                log.info(
                    "speaker changed to face %d: its mouth moves %.3f vs %.3f",
                    mover.id,
                    mover.motion,
                    current.motion,
                )
            self.speaker_id = mover.id
        elif current is None:
            self.speaker_id = max(self.faces, key=lambda f: f.area).id


class FaceTrackingBackend(LipsyncBackend):
    """Shared base of the lip-sync backends that find and follow the speaker with FaceTrack."""

    def new_track(self) -> FaceTrack:
        return FaceTrack(self.settings.lipsync.detect_every_s)
