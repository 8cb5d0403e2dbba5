"""Wav2Lip lip sync from an ONNX export of the model (weights are not shipped: bring your own).

Wav2Lip redraws the lower half of a 96x96 face crop from 16 mel frames (0.2 s)
of audio around each video frame, so it follows the dubbed *audio* and ignores
the openness track. Pre-processing reproduces the original `audio.py` and
`inference.py` exactly: 16 kHz audio, pre-emphasis 0.97, STFT (n_fft 800, hop
200, Hann window 800, reflect-padded), 80 Slaney mel bands 55-7600 Hz, dB
relative to 20 dB, scaled to [-4, 4]; the face crop is BGR / 255, stacked as
(lower half masked, full) = 6 channels. Inputs are matched by shape, not name,
since exports name them differently. Faces are found and tracked with the same
code as the landmarks backend (workers.lipsync.face).

Weights: settings.lipsync.wav2lip_onnx ($LIVEDUB_LIPSYNC__WAV2LIP_ONNX), else <settings.cache_dir>/models/wav2lip.onnx.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import cv2
import numpy as np
import soxr

from workers.errors import BadInputError, ModelLoadError
from workers.lipsync.face import (
    FaceModels,
    FaceTrack,
    FaceTrackingBackend,
    Region,
    estimate_fps,
    landmarks_unavailable,
    predictor_path,
)
from workers.onnx import create_session
from workers.settings import Settings, load_settings
from workers.stage import Capabilities

if TYPE_CHECKING:
    from onnxruntime import InferenceSession

log = logging.getLogger(__name__)

ENV_WEIGHTS = "LIVEDUB_LIPSYNC__WAV2LIP_ONNX"
SAMPLE_RATE = 16000
N_FFT = 800
HOP = 200
WIN = 800
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS = 4.0
MEL_STEP = 16  # mel frames per video frame window
FACE_PAD_BOTTOM = 0.1  # the crop extends below the chin by this fraction of the face box (Wav2Lip's pads)
BATCH = 16
FEATHER = 0.08  # share of the crop's side blended into the frame at its edges


def weights_path(settings: Settings | None = None) -> Path:
    """Where the ONNX weights are looked for: settings.lipsync.wav2lip_onnx, else the export
    `livedub models export wav2lip --checkpoint ...` made (fp16 on a GPU when there is one)."""
    settings = settings if settings is not None else load_settings()
    if settings.lipsync.wav2lip_onnx is not None:
        return settings.lipsync.wav2lip_onnx
    from workers.models.store import ModelStore

    store = ModelStore(settings.cache_dir)
    for variant in (("onnx-fp16", "onnx-fp32") if settings.device == "cuda" else ("onnx-fp32",)):
        art = store.get("wav2lip", variant)
        if art is not None:
            return art.path / "wav2lip.onnx"
    return store.path("wav2lip", "onnx-fp32") / "wav2lip.onnx"


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    lin = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, lin)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    lin = m * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0))
    return np.where(m >= 15.0, log_part, lin)


@functools.cache
def mel_filterbank(
    sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = FMIN, fmax: float = FMAX
) -> np.ndarray:
    """(n_mels, 1 + n_fft/2) triangular filters, area-normalised (librosa.filters.mel, norm='slaney')."""
    freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.flags.writeable = False
    return weights


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """Wav2Lip's normalised log-mel spectrogram of 16 kHz mono audio: (80, 1 + len // 200), in [-4, 4]."""
    wav = np.asarray(wav, np.float64)
    if len(wav) < 2:
        wav = np.pad(wav, (0, 2 - len(wav)))
    y = np.append(wav[0], wav[1:] - PREEMPHASIS * wav[:-1])
    pad = N_FFT // 2
    y = np.pad(y, pad, mode="reflect") if len(y) > pad else np.pad(y, pad)
    n = 1 + (len(y) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP][:n]
    window = np.hanning(WIN + 1)[:-1]  # periodic Hann, as scipy.signal.get_window('hann')
    spec = np.abs(np.fft.rfft(frames * window, n=N_FFT, axis=1)).T  # (1 + n_fft/2, n)
    mel = mel_filterbank() @ spec
    min_level = np.exp(MIN_LEVEL_DB / 20 * np.log(10))
    db = 20 * np.log10(np.maximum(min_level, mel)) - REF_LEVEL_DB
    return np.clip(2 * MAX_ABS * (db - MIN_LEVEL_DB) / -MIN_LEVEL_DB - MAX_ABS, -MAX_ABS, MAX_ABS).astype(
        np.float32
    )


def mel_chunks(mel: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
    """(n_frames, 80, 16): the 16 mel frames from each video frame on (the last window past the end)."""
    if mel.shape[1] < MEL_STEP:
        mel = np.pad(mel, ((0, 0), (0, MEL_STEP - mel.shape[1])), constant_values=-MAX_ABS)
    per_frame = 80.0 / fps  # mel frames per video frame (80 mel frames a second)
    out = np.empty((n_frames, mel.shape[0], MEL_STEP), np.float32)
    for i in range(n_frames):
        start = int(i * per_frame)
        out[i] = mel[:, -MEL_STEP:] if start + MEL_STEP > mel.shape[1] else mel[:, start : start + MEL_STEP]
    return out


def face_crop_box(box: np.ndarray, shape: tuple[int, ...]) -> Region | None:
    """The Wav2Lip crop for a detector box: the box, a little lower at the chin, clipped to the frame."""
    h, w = shape[:2]
    x0, y0, x1, y1 = box
    y1 = y1 + FACE_PAD_BOTTOM * (y1 - y0)
    x0, y0 = max(0, round(float(x0))), max(0, round(float(y0)))
    x1, y1 = min(w, round(float(x1))), min(h, round(float(y1)))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None
    return x0, y0, x1, y1


def model_inputs(face: np.ndarray, mel: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack BGR face crops (already size x size) and mel windows the way Wav2Lip's inference does."""
    faces = face.astype(np.float32) / 255.0  # (B, S, S, 3)
    masked = faces.copy()
    masked[:, size // 2 :] = 0.0
    img = np.concatenate([masked, faces], axis=3).transpose(0, 3, 1, 2)  # (B, 6, S, S)
    return np.ascontiguousarray(img), np.ascontiguousarray(mel[:, None])  # mel (B, 1, 80, 16)


def paste(img: np.ndarray, pred: np.ndarray, crop: Region) -> np.ndarray:
    """`img` with the predicted face (S x S x 3 in 0..1, BGR) resized into `crop`, edges feathered."""
    x0, y0, x1, y1 = crop
    w, h = x1 - x0, y1 - y0
    face = cv2.resize(
        np.clip(pred * 255.0, 0, 255).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR
    )
    ramp_x = np.clip(np.minimum(np.arange(w) + 1, w - np.arange(w)) / max(1.0, FEATHER * w), 0, 1)
    ramp_y = np.clip(np.minimum(np.arange(h) + 1, h - np.arange(h)) / max(1.0, FEATHER * h), 0, 1)
    alpha = (ramp_y[:, None] * ramp_x[None, :]).astype(np.float32)[..., None]
    out = img.copy()
    region = out[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(region * (1 - alpha) + face * alpha + 0.5, 0, 255).astype(np.uint8)
    return out


class Wav2Lip(FaceTrackingBackend):
    """Wav2Lip (ONNX) driven by the dubbed audio; faces tracked as in the landmarks backend."""

    name: ClassVar[str] = "wav2lip"
    capabilities: ClassVar[Capabilities] = Capabilities(
        languages=None, devices=("cpu", "cuda")
    )

    def _load(self) -> None:
        path = weights_path(self.settings)
        if not path.is_file():
            raise ModelLoadError(f"no Wav2Lip ONNX weights at {path} (set ${ENV_WEIGHTS} or put them there)")
        self.session = create_session(path, self.settings)
        self._mel_name, self._face_name, self.size, self.batch = _signature(self.session, path)
        self._out_name = self.session.get_outputs()[0].name
        self.models = FaceModels(predictor_path(self.settings))

    @classmethod
    def unavailable(cls) -> str | None:
        path = weights_path()
        if not path.is_file():
            return (f"no Wav2Lip ONNX weights at {path} (none ship: `livedub models export wav2lip "
                    "--checkpoint wav2lip_gan.pth`, or set LIVEDUB_LIPSYNC__WAV2LIP_ONNX)")
        return landmarks_unavailable()

    def animate(
        self,
        frames: list[np.ndarray],
        openness: np.ndarray,
        track: FaceTrack,
        audio: np.ndarray,
        sample_rate: int,
        rounding: np.ndarray | None = None,  # Wav2Lip draws its mouths from the audio itself
    ) -> list[np.ndarray]:
        self.load()
        if not frames:
            return []
        if sample_rate <= 0:
            raise BadInputError(f"wav2lip: invalid audio sample rate {sample_rate}")
        audio = np.asarray(audio, np.float32)
        fps = estimate_fps(len(frames), len(audio) / sample_rate)
        wav = soxr.resample(audio, sample_rate, SAMPLE_RATE) if sample_rate != SAMPLE_RATE else audio
        chunks = mel_chunks(melspectrogram(wav), len(frames), fps)
        out = list(frames)
        regions: list[Region | None] = [None] * len(frames)
        todo: list[tuple[int, Region, np.ndarray]] = []
        for i, img in enumerate(frames):
            face = track.update(self.models, cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), fps)
            crop = face_crop_box(face.box, img.shape) if face is not None else None
            if crop is None:
                continue
            x0, y0, x1, y1 = crop
            todo.append(
                (i, crop, cv2.resize(img[y0:y1, x0:x1], (self.size, self.size), interpolation=cv2.INTER_AREA))
            )
        if len(todo) < len(frames):
            log.warning(
                "wav2lip: no face found in %d of %d frames; those frames are unchanged",
                len(frames) - len(todo),
                len(frames),
            )
        for start in range(0, len(todo), self.batch):
            part = todo[start : start + self.batch]
            img_in, mel_in = model_inputs(
                np.stack([p[2] for p in part]), chunks[[p[0] for p in part]], self.size
            )
            pred = self._run(img_in, mel_in)
            for (i, crop, _), p in zip(part, pred, strict=True):
                out[i] = paste(frames[i], p.transpose(1, 2, 0), crop)
                regions[i] = crop
        track.regions = regions
        return out

    def _run(self, img: np.ndarray, mel: np.ndarray) -> np.ndarray:
        if self.batch == 1 and len(img) > 1:  # a static-batch export: one frame at a time
            return np.concatenate([self._run(img[i : i + 1], mel[i : i + 1]) for i in range(len(img))])
        pred = self.session.run([self._out_name], {self._face_name: img, self._mel_name: mel})[0]
        if pred.shape != (len(img), 3, self.size, self.size):
            raise ModelLoadError(
                f"Wav2Lip model returned shape {pred.shape}, expected {(len(img), 3, self.size, self.size)}"
            )
        return pred


def _signature(session: InferenceSession, path: Path) -> tuple[str, str, int, int]:
    """(mel input, face input, face size, batch) found by shape: mel is (N,1,80,16), face (N,6,S,S)."""
    mel_name = face_name = None
    size, batch = 96, BATCH
    for inp in session.get_inputs():
        shape = list(inp.shape)
        if len(shape) == 4 and shape[1:] == [1, N_MELS, MEL_STEP]:
            mel_name = inp.name
        elif len(shape) == 4 and shape[1] == 6:
            face_name = inp.name
            if isinstance(shape[2], int):
                size = shape[2]
            if isinstance(shape[0], int):
                batch = max(1, shape[0])
    if mel_name is None or face_name is None:
        found = ", ".join(f"{i.name}{list(i.shape)}" for i in session.get_inputs())
        raise ModelLoadError(
            f"{path} does not look like Wav2Lip: expected inputs (N,1,80,16) and (N,6,96,96), found {found}"
        )
    return mel_name, face_name, size, batch
