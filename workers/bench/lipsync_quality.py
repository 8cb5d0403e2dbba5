"""How the dubbed mouth looks and moves, judged by another model than the one that drew it.

    livedub bench --lipsync --out bench/     (lipsync_quality.json and tiles PNGs)

For each clip (the talking-face sample, a still head; the full astronaut portrait, face ~90 px
in 512x512 over a patterned suit) the clip is dubbed into Spanish by the embedded pipeline,
then, in the output frames inside the dubbed spans:

* the mouth aperture is measured by MediaPipe's face mesh (workers/bench/mouth_meter.py), not by
  the dlib landmarks that drive the lip sync, and correlated (Pearson) with the dubbed speech's
  loudness envelope at each frame (target >= 0.6 on still portraits);
* the aperture in the dub's silences is compared with the face's closed mouth (the mesh's
  reading of the source with its lips drawn shut) and with the source's own mouth;
* everything above the nose is compared with the source frame (SSIM, target >= 0.98);
* the lip-sync stage's cost per frame is read from its service times.

Tiles of source and output frames are written as PNGs to look at.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from workers.bench.mouth_meter import MouthMeter, pearson, ssim

log = logging.getLogger(__name__)


def _frames(path: Path) -> list[tuple[float, np.ndarray]]:
    from workers.media.frames import decode_frame
    from workers.media.reader import iter_video

    return [(f.pts_s, decode_frame(f)) for f in iter_video(path, "q")]


def _audio(path: Path) -> np.ndarray:
    from workers.media.reader import iter_audio

    return np.concatenate([s for _, s in iter_audio(path, rate=16000, chunk_s=1.0)])


def _envelope(audio: np.ndarray, t: float, fps: float) -> float:
    a = int(max(0.0, t - 0.5 / fps) * 16000)
    b = int((t + 0.5 / fps) * 16000)
    seg = audio[a:b]
    return float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0


def evaluate(src: Path, out: Path, spans: list[tuple[float, float]], tiles: Path | None = None,
             lipsync_s_per_frame: float | None = None) -> dict[str, Any]:
    from workers.lipsync.face import FaceModels, predictor_path
    from workers.lipsync.mouth import Interior, warp_mouth
    from workers.settings import load_settings

    meter = MouthMeter()
    models = FaceModels(predictor_path(load_settings()))
    source, output = _frames(src), _frames(out)
    audio = _audio(out)
    fps = 1.0 / (source[1][0] - source[0][0]) if len(source) > 1 else 25.0
    ap, env, above, silent, src_ap = [], [], [], [], []
    closed = []
    picked: list[tuple[np.ndarray, np.ndarray]] = []
    for (t, s_img), (_, o_img) in zip(source, output, strict=False):
        if not any(a <= t < b for a, b in spans):
            continue
        gray = cv2.cvtColor(s_img, cv2.COLOR_BGR2GRAY)
        boxes = [b for b in models.detect(gray) if models.plausible(gray, b, models.fit(gray, b))]
        if not boxes:
            continue
        box = boxes[0]
        pts = models.fit(gray, box)
        m_out, m_src = meter.measure(o_img, box), meter.measure(s_img, box)
        e = _envelope(audio, t, fps)
        ap.append(m_out.aperture)
        env.append(e)
        src_ap.append(m_src.aperture)
        if len(closed) < 5:  # the face's closed mouth, as the mesh sees it
            shut, _, _ = warp_mouth(s_img, pts, 0.0, 0.0, Interior())
            closed.append(meter.measure(shut, box).aperture)
        nose_y = int(min(pts[[31, 32, 33, 34, 35], 1]))
        top = max(8, nose_y - int(0.08 * (box[2] - box[0])))
        above.append(ssim(s_img[:top], o_img[:top]))
        if len(picked) < 8 and len(ap) % 6 == 1:
            picked.append((_crop(s_img, pts), _crop(o_img, pts)))
        silent.append(e)
    env_a = np.asarray(env)
    ap_a = np.asarray(ap)
    quiet = env_a < 0.1 * (np.percentile(env_a, 95) if len(env_a) else 1.0)
    result = {
        "frames": len(ap),
        "aperture_envelope_pearson": pearson(ap_a, env_a),
        "source_aperture_envelope_pearson": pearson(np.asarray(src_ap), env_a),
        "silence_aperture": float(ap_a[quiet].mean()) if quiet.any() else float("nan"),
        "closed_reference_aperture": float(np.mean(closed)) if closed else float("nan"),
        "source_aperture": float(np.mean(src_ap)) if src_ap else float("nan"),
        "speech_aperture_p90": float(np.percentile(ap_a[~quiet], 90)) if (~quiet).any() else float("nan"),
        "above_nose_ssim_min": float(np.min(above)) if above else float("nan"),
        "above_nose_ssim_mean": float(np.mean(above)) if above else float("nan"),
        "lipsync_ms_per_frame": 1000 * lipsync_s_per_frame if lipsync_s_per_frame else None,
    }
    if tiles is not None and picked:
        row_s = np.hstack([s for s, _ in picked])
        row_o = np.hstack([o for _, o in picked])
        tiles.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tiles), np.vstack([row_s, row_o]))
    return result


def _crop(img: np.ndarray, pts: np.ndarray, side: int = 160) -> np.ndarray:
    """The lower face (nose to chin), enlarged to `side` pixels, for looking at."""
    face_w = float(np.linalg.norm(pts[16] - pts[0]))
    cx, cy = pts[[48, 54, 33, 8]].mean(0)
    half = 0.45 * face_w
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    crop = img[y0 : int(cy + half), x0 : int(cx + half)]
    if not crop.size:
        return np.zeros((side, side, 3), np.uint8)
    return cv2.resize(crop, (side, side), interpolation=cv2.INTER_CUBIC)


CLIPS = {"still-head": False, "portrait-512": True}  # name -> the whole photo (face ~90 px) or the head


def run(out_dir: Path, seconds: float = 8.0, clips: tuple[str, ...] = tuple(CLIPS)) -> dict[str, Any]:
    import asyncio

    from workers.dub import dub_file
    from workers.media.sample import make_sample
    from workers.pipeline import Pipeline
    from workers.settings import load_settings

    out_dir.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    pipe = Pipeline.build(settings)
    times: list[float] = []

    def observe(stage: str, elapsed: float, record: Any) -> None:
        if stage == "lipsync":
            times.append(elapsed / max(1, len(record.frames)))

    pipe["lipsync"].observers.append(observe)
    results: dict[str, Any] = {}
    try:
        for name in clips:
            portrait = CLIPS[name]
            src = out_dir / f"lipsync-{name}.mp4"
            make_sample(src, seconds=seconds, size=512 if portrait else 384, portrait=portrait)
            dubbed = out_dir / f"lipsync-{name}.es.mp4"
            times.clear()
            res = asyncio.run(dub_file(src, ["es"], settings, out=dubbed, pipeline=pipe))
            spans = [(s.start_s, s.end_s) for s in res.report.segments]
            results[name] = evaluate(src, dubbed, spans, out_dir / f"lipsync-{name}.png",
                                     float(np.median(times)) if times else None)
            print(f"[lipsync] {name}: {json.dumps(results[name])}")
    finally:
        pipe.close()
    (out_dir / "lipsync_quality.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
