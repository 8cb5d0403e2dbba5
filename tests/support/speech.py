"""Synthetic but real speech for tests, spoken by espeak-ng, with exact ground truth.

Tests of VAD, ASR, TTS fitting and lip sync need audio that *is* speech (a model
must recognise it) and whose speech spans are known exactly. `make_speech`
speaks each utterance separately, trims espeak's own leading/trailing silence,
and joins utterances with exactly the pauses asked for, so the returned spans
are the truth. Each utterance is cached on disk (keyed by text, voice, speed
and rate) because spawning espeak-ng dominates the cost on a busy machine.

    audio, spans = make_speech(["Hello there.", 0.8, "How are you today?"])
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CACHE_DIR = Path(tempfile.gettempdir()) / "livedub-test-speech"
_TRIM_DB = -40.0  # below the utterance's loudest 10 ms by this much counts as espeak's padding


def make_speech(
    words_with_pauses: Sequence[str | float],
    rate: int = 16000,
    *,
    voice: str = "en-us",
    wpm: int = 165,
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Speak the strings, insert the numbers as seconds of digital silence.

    Returns mono float32 audio at `rate` and one (start_s, end_s) speech span
    per string. Adjacent strings are joined without a gap (their spans touch).
    """
    parts: list[np.ndarray] = []
    spans: list[tuple[float, float]] = []
    pos = 0
    for item in words_with_pauses:
        if isinstance(item, str):
            clip = speak(item, rate, voice=voice, wpm=wpm)
            spans.append((pos / rate, (pos + len(clip)) / rate))
        else:
            if item < 0:
                raise ValueError(f"negative pause {item}")
            clip = np.zeros(round(float(item) * rate), np.float32)
        parts.append(clip)
        pos += len(clip)
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return audio, spans


def make_noise(seconds: float, rate: int = 16000, level_db: float = -30.0, seed: int = 0) -> np.ndarray:
    """White noise at `level_db` dBFS RMS: the 'not speech' counterpart of make_speech."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(seconds * rate)) * 10 ** (level_db / 20)).astype(np.float32)


@functools.lru_cache(maxsize=256)
def _speak_cached(text: str, rate: int, voice: str, wpm: int) -> np.ndarray:
    key = hashlib.sha1(f"{text}\0{rate}\0{voice}\0{wpm}".encode()).hexdigest()[:20]
    path = CACHE_DIR / f"{key}.npy"
    audio = None
    if path.is_file():
        with contextlib.suppress(OSError, ValueError):  # a torn file from a crashed writer: regenerate
            audio = np.load(path)
    if audio is None:
        audio = _trim(_synthesize(text, rate, voice, wpm), rate)
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=CACHE_DIR, suffix=".npy")  # atomic: other test processes read this dir
        with os.fdopen(fd, "wb") as f:
            np.save(f, audio)
        os.replace(tmp, path)
    audio.setflags(write=False)  # shared by every caller in this process; speak() hands out copies
    return audio


def speak(text: str, rate: int = 16000, *, voice: str = "en-us", wpm: int = 165) -> np.ndarray:
    """One utterance, trimmed to its speech, float32 at `rate` (a fresh, writable copy)."""
    if not text.strip():
        raise ValueError("nothing to speak")
    return _speak_cached(text, rate, voice, wpm).copy()


def _synthesize(text: str, rate: int, voice: str, wpm: int) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng is not installed (apt-get install espeak-ng)")
    out = subprocess.run(
        [exe, "--stdout", "-v", voice, "-s", str(wpm), text], capture_output=True, check=True, timeout=60
    ).stdout
    audio, src_rate = parse_wav(out)
    if src_rate == rate:
        return audio
    import soxr

    return soxr.resample(audio, src_rate, rate).astype(np.float32)


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV bytes -> (mono float32, rate).

    espeak-ng writes to a pipe, so its RIFF and data sizes are placeholders
    (0x7ffff...): the data chunk is taken to run to the end of the bytes.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV stream")
    pos, rate, channels, bits = 12, 0, 1, 16
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if cid == b"fmt ":
            fmt, channels, rate = struct.unpack("<HHI", data[body : body + 8])
            bits = struct.unpack("<H", data[body + 14 : body + 16])[0]
            if fmt != 1 or bits != 16:
                raise ValueError(f"only 16-bit PCM WAV is supported (format {fmt}, {bits} bits)")
        elif cid == b"data":
            end = min(len(data), body + size)
            raw = data[body : end - (end - body) % (2 * channels)]
            pcm = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
            return pcm.reshape(-1, channels).mean(axis=1).astype(np.float32), rate
        pos = body + size + (size & 1)
    raise ValueError("WAV stream without a data chunk")


def _trim(audio: np.ndarray, rate: int) -> np.ndarray:
    """Cut espeak's silent lead-in and tail so the span is exactly the speech."""
    win = max(1, rate // 100)
    n = len(audio) // win
    if n == 0:
        return audio
    rms = np.sqrt(np.mean(audio[: n * win].reshape(n, win) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / rms.max()) > _TRIM_DB)
    return np.ascontiguousarray(audio[loud[0] * win : (loud[-1] + 1) * win], dtype=np.float32)
