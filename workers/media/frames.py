"""Frame (de)serialisation: raw BGR in process, JPEG on the wire (Kafka's ~1 MB record limit)."""

from __future__ import annotations

import cv2
import numpy as np

from workers.errors import BadInputError
from workers.records import VideoFrame

JPEG_QUALITY = 90


def decode_frame(frame: VideoFrame) -> np.ndarray:
    """VideoFrame -> HxWx3 uint8 BGR array."""
    if frame.encoding == "bgr24":
        expected = frame.width * frame.height * 3
        if len(frame.data) != expected:
            raise BadInputError(
                f"frame {frame.seq} of session {frame.session_id}: {len(frame.data)} bytes, "
                f"expected {expected} for {frame.width}x{frame.height} bgr24"
            )
        return np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3)
    if frame.encoding == "jpeg":
        img = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise BadInputError(f"frame {frame.seq} of session {frame.session_id}: corrupt JPEG")
        return img
    raise BadInputError(f"frame {frame.seq}: unknown encoding {frame.encoding!r} (bgr24 or jpeg)")


def encode_frame(img: np.ndarray, encoding: str) -> bytes:
    """HxWx3 uint8 BGR array -> bytes in `encoding`."""
    if encoding == "bgr24":
        return np.ascontiguousarray(img, dtype=np.uint8).tobytes()
    if encoding == "jpeg":
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise BadInputError("could not JPEG-encode frame")
        return buf.tobytes()
    raise BadInputError(f"unknown frame encoding {encoding!r} (bgr24 or jpeg)")
