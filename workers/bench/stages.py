"""`livedub bench --stage NAME`: every backend of one stage, per precision, on fixed inputs.

One row per backend and precision: `backend`, `precision` ("fp32", "int8", "fp16"),
`p50_s` / `p95_s` (per segment; per frame for lip sync), `rtf` (processing time / audio
duration, where audio is the input or output), `size_mb` (the model files it loads), `parity`
(the built model against its source, see `livedub models verify`), `wer` (ASR against the
reference text; TTS: round-trip intelligibility, the synthesised speech transcribed back by
Whisper base) and, where it applies, `chrf` (translation quality). A backend that cannot run
here is listed with the reason, not silently left out.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from workers.bench.run import machine, percentile
from workers.bench.scores import chrf, wer
from workers.bench.speech_set import PARALLEL, samples, spoken
from workers.errors import LiveDubError
from workers.settings import Settings, load_settings

log = logging.getLogger(__name__)
STAGES = ("asr", "translate", "tts", "lipsync", "speaker")


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def _row(backend: str, precision: str, times: list[float], audio_s: float | None, size_bytes: int | None,
         **extra: Any) -> dict[str, Any]:
    return {"backend": backend, "precision": precision,
            "p50_s": percentile(times, 0.5), "p95_s": percentile(times, 0.95),
            "rtf": (sum(times) / audio_s) if audio_s else None,
            "size_mb": size_bytes / 1e6 if size_bytes else None, "parity": extra.pop("parity", None),
            "wer": extra.pop("wer", None), **extra}


def _skip(backend: str, precision: str, reason: str) -> dict[str, Any]:
    return {"backend": backend, "precision": precision, "skipped": reason}


def _dir_size(path: Path, pattern: str = "*.onnx") -> int:
    return sum(f.stat().st_size for f in path.glob(pattern))


# -- asr --------------------------------------------------------------------------------------------

def bench_asr(settings: Settings) -> list[dict[str, Any]]:
    from workers.registry import backend_class

    data = samples(settings)
    audio_s = sum(len(s.audio) for s in data) / 16000
    rows = []
    configs = [("faster-whisper", "int8", {"compute_type": "int8"}),
               ("faster-whisper", "fp32", {"compute_type": "float32"}),
               ("optimum-whisper", "fp32", {"precision": "fp32"}),
               ("optimum-whisper", "int8", {"precision": "int8"})]
    for backend, precision, asr in configs:
        cls = backend_class("asr", backend)
        if (reason := cls.unavailable()) is not None:
            rows.append(_skip(backend, precision, reason))
            continue
        s = settings.model_copy(update={"asr": settings.asr.model_copy(update={"backend": backend, **asr})})
        b = cls(s)
        try:
            b.load()
        except LiveDubError as e:
            rows.append(_skip(backend, precision, str(e)))
            continue
        b.transcribe(data[0].audio, data[0].lang)  # warm-up
        hyps, times = [], []
        for smp in data:
            r, t = _timed(b.transcribe, smp.audio, smp.lang)
            hyps.append(r.text)
            times.append(t)
        size = parity = None
        if backend == "optimum-whisper":
            size = _dir_size(b.artifact.path)
            from workers.models.targets import verify

            parity = verify(s, "whisper", precision).figures["max_rel_logit_diff"]
        else:
            size = (Path(b.resolved.source) / "model.bin").stat().st_size if b.resolved and b.resolved.local else None
        en = [i for i, smp in enumerate(data) if smp.lang == "en"]
        rows.append(_row(backend, precision, times, audio_s, size, parity=parity,
                         wer=wer([smp.text for smp in data], hyps),
                         wer_en=wer([data[i].text for i in en], [hyps[i] for i in en]),
                         wer_other=wer([smp.text for i, smp in enumerate(data) if i not in en],
                                       [h for i, h in enumerate(hyps) if i not in en])))
        rows[-1]["translate_chrf"] = _speech_translation(b, s) if backend == "optimum-whisper" else None
        b.close()
    return rows


def _speech_translation(asr_backend, settings: Settings) -> dict[str, float]:
    """Into English from es/fr/de speech: Whisper's translate task vs transcribe + Apertium (chrF)."""
    from workers.translate.apertium import Apertium

    refs, whisper_tr, cascade = [], [], []
    mt = Apertium(settings)
    mt.load()
    tr_settings = settings.model_copy(update={"asr": settings.asr.model_copy(update={"task": "translate"})})
    tr = type(asr_backend)(tr_settings)
    tr.load()
    for row in PARALLEL:
        for lang in ("es", "fr"):
            smp = spoken(settings, lang, row[lang])
            refs.append(row["en"])
            whisper_tr.append(tr.transcribe(smp.audio, lang).text)
            text = asr_backend.transcribe(smp.audio, lang).text
            cascade.append(mt.translate_via(text, lang, "en"))
    tr.close()
    return {"whisper_translate": chrf(refs, whisper_tr), "transcribe_then_apertium": chrf(refs, cascade)}


# -- translate --------------------------------------------------------------------------------------

def bench_translate(settings: Settings) -> list[dict[str, Any]]:
    from workers.registry import backend_class

    rows = []
    for backend, precisions in (("apertium", ("n/a",)), ("marian", ("fp32", "int8")), ("nllb", ("fp32", "int8"))):
        cls = backend_class("translate", backend)
        for precision in precisions:
            if (reason := cls.unavailable()) is not None:
                rows.append(_skip(backend, precision, reason))
                continue
            upd = {"precision": precision} if precision != "n/a" else {}
            s = settings.model_copy(update={"translate": settings.translate.model_copy(update=upd)})
            b = cls(s)
            try:
                b.load()
            except LiveDubError as e:
                rows.append(_skip(backend, precision, str(e)))
                continue
            pairs = [(a, t) for a, t in (("en", "es"), ("en", "fr"), ("es", "en")) if _routable(b, a, t)]
            refs, hyps, times = [], [], []
            for src, tgt in pairs:
                for row in PARALLEL:
                    out, t = _timed(b.translate_via, row[src], src, tgt)
                    refs.append(row[tgt])
                    hyps.append(out)
                    times.append(t)
            rows.append(_row(backend, precision, times, None, None, chrf=chrf(refs, hyps) if refs else None,
                             pairs=[f"{a}-{t}" for a, t in pairs]))
            b.close()
    return rows


def _routable(mt, src: str, tgt: str) -> bool:
    try:
        mt.route(src, tgt)
        return True
    except LiveDubError:
        return False


# -- tts ----------------------------------------------------------------------------------------------

def bench_tts(settings: Settings) -> list[dict[str, Any]]:
    from workers.asr.faster_whisper import FasterWhisper
    from workers.registry import backend_class

    judge = FasterWhisper(settings)  # another model than the TTS: it judges intelligibility
    judge.load()
    rows = []
    for backend, precision, lang in (("piper", "fp32", "en"), ("piper", "int8", "en"), ("espeak", "n/a", "en"),
                                     ("espeak", "n/a", "es"), ("mms", "fp32", "es")):
        cls = backend_class("tts", backend)
        if (reason := cls.unavailable()) is not None:
            rows.append(_skip(backend, precision, reason))
            continue
        upd = {"piper_precision": precision} if backend == "piper" else {}
        s = settings.model_copy(update={"tts": settings.tts.model_copy(update=upd)})
        b = cls(s)
        try:
            b.load()
            if lang not in b.voices():
                raise LiveDubError(f"no {lang} voice")
        except LiveDubError as e:
            rows.append(_skip(backend, precision, str(e)))
            continue
        texts = [r[lang] for r in PARALLEL]
        b.synthesize(texts[0], lang)
        times, hyps, dur = [], [], 0.0
        import soxr

        for text in texts:
            out, t = _timed(b.synthesize, text, lang)
            times.append(t)
            dur += len(out.audio) / out.sample_rate
            audio16 = soxr.resample(out.audio, out.sample_rate, 16000) if out.sample_rate != 16000 else out.audio
            hyps.append(judge.transcribe(np.asarray(audio16, np.float32), lang).text)
        size = None
        if backend == "piper":
            from workers.tts.piper import packaged_voices

            vf = packaged_voices()[0]
            path = b._int8_model(vf, b._aligned_model(vf) or vf.path) if precision == "int8" else vf.path
            size = path.stat().st_size
        rows.append(_row(backend, precision, times, dur, size, wer=wer(texts, hyps), lang=lang))
        b.close()
    judge.close()
    return rows


# -- lip sync -----------------------------------------------------------------------------------------

def bench_lipsync(settings: Settings, out: Path) -> list[dict[str, Any]]:
    """Per-frame cost on the talking-face sample: the landmark warp, and Wav2Lip's ONNX export
    (random weights here, since none ship: the cost of a frame does not depend on them)."""
    from workers.bench.run import real_input
    from workers.lipsync.face import FaceTrackingBackend
    from workers.media.reader import iter_video
    from workers.registry import backend_class

    src = real_input(out, 1)
    frames = []
    from workers.media.frames import decode_frame

    for f in iter_video(src, "bench"):
        frames.append(decode_frame(f))
        if len(frames) == 100:
            break
    audio = np.random.default_rng(0).standard_normal(16000 * 4).astype(np.float32) * 0.1
    openness = np.abs(np.sin(np.arange(len(frames)) / 3.0)).astype(np.float32)
    rows = []
    variants = [("landmarks", "n/a", None), ("wav2lip", "fp32", "random-weights")]
    for backend, precision, note in variants:
        s = settings
        if backend == "wav2lip":
            s = _random_wav2lip(settings, precision)
            if isinstance(s, str):
                rows.append(_skip(backend, precision, s))
                continue
        b: FaceTrackingBackend = backend_class("lipsync", backend)(s)
        try:
            b.load()
        except LiveDubError as e:
            rows.append(_skip(backend, precision, str(e)))
            continue
        track = b.new_track()
        b.animate(frames[:10], openness[:10], track, audio[:6400], 16000)
        track = b.new_track()
        batch = 25
        times = []
        for i in range(0, len(frames), batch):
            chunk = frames[i : i + batch]
            _, t = _timed(b.animate, chunk, openness[i : i + len(chunk)], track, audio[: len(chunk) * 640], 16000)
            times += [t / len(chunk)] * len(chunk)
        size = s.lipsync.wav2lip_onnx.stat().st_size if backend == "wav2lip" else None
        rows.append(_row(backend, precision, times, None, size, note=note, frames_per_s=1.0 / statistics.fmean(times)))
    return rows


def _random_wav2lip(settings: Settings, precision: str) -> Settings | str:
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch is not installed"
    from workers.lipsync.wav2lip_model import Wav2LipNet, export_onnx

    path = Path(settings.cache_dir) / "bench" / f"wav2lip-random-{precision}.onnx"
    if not path.is_file():
        export_onnx(Wav2LipNet(), path, fp16=precision == "fp16")
    return settings.model_copy(update={"lipsync": settings.lipsync.model_copy(update={"wav2lip_onnx": path})})


# -- speaker ----------------------------------------------------------------------------------------

def bench_speaker(settings: Settings) -> list[dict[str, Any]]:
    from workers.registry import backend_class

    data = samples(settings)
    rows = []
    for backend in ("ge2e", "ecapa"):
        cls = backend_class("speaker", backend)
        if (reason := cls.unavailable()) is not None:
            rows.append(_skip(backend, "fp32", reason))
            continue
        b = cls(settings.model_copy(update={"speaker": settings.speaker.model_copy(update={"backend": backend})}))
        try:
            b.load()
        except LiveDubError as e:
            rows.append(_skip(backend, "fp32", str(e)))
            continue
        b.embed(data[0].audio, 16000)
        embs, times = [], []
        for smp in data:
            e, t = _timed(b.embed, smp.audio, 16000)
            embs.append(e)
            times.append(t)
        en = [e for e, smp in zip(embs, data, strict=True) if smp.lang == "en"]  # one Piper voice
        other = [e for e, smp in zip(embs, data, strict=True) if smp.lang != "en"]  # espeak voices
        same = statistics.fmean(float(a @ c) for i, a in enumerate(en) for c in en[i + 1:])
        diff = statistics.fmean(float(a @ c) for a in en for c in other)
        parity = None
        if backend == "ge2e":
            from workers.models.targets import verify

            parity = verify(settings, "ge2e", "fp32").figures["cosine_vs_torch"]
        rows.append(_row(backend, "fp32", times, sum(len(s.audio) for s in data) / 16000,
                         _dir_size(b.artifact.path) if backend == "ge2e" else None, parity=parity,
                         same_voice_cosine=same, other_voice_cosine=diff))
    return rows


def run_stage_bench(stage: str, out: Path) -> dict[str, Any]:
    if stage not in STAGES:
        from workers.errors import ConfigError

        raise ConfigError(f"unknown stage {stage!r} for --stage; one of {', '.join(STAGES)}")
    settings = load_settings()
    out.mkdir(parents=True, exist_ok=True)
    fn = {"asr": bench_asr, "translate": bench_translate, "tts": bench_tts, "speaker": bench_speaker,
          "lipsync": lambda s: bench_lipsync(s, out)}[stage]
    rows = fn(settings)
    result = {"machine": machine(), "stage": stage, "device": settings.device, "rows": rows}
    (out / f"stage-{stage}.json").write_text(json.dumps(result, indent=2) + "\n")
    print_rows(stage, rows)
    return result


def print_rows(stage: str, rows: list[dict[str, Any]]) -> None:
    def f(v: Any, spec: str) -> str:
        return "-" if v is None or (isinstance(v, float) and v != v) else format(v, spec)

    print(f"[{stage}] {'backend':<16} {'prec':<5} {'p50 s':>8} {'p95 s':>8} {'rtf':>7} {'MB':>8} {'parity':>10} "
          f"{'wer':>6}  other")
    for r in rows:
        if "skipped" in r:
            print(f"[{stage}] {r['backend']:<16} {r['precision']:<5} skipped: {r['skipped']}")
            continue
        other = {k: v for k, v in r.items() if k not in ("backend", "precision", "p50_s", "p95_s", "rtf", "size_mb",
                                                          "parity", "wer") and v is not None}
        print(f"[{stage}] {r['backend']:<16} {r['precision']:<5} {f(r['p50_s'], '8.4f')} {f(r['p95_s'], '8.4f')} "
              f"{f(r['rtf'], '7.3f')} {f(r['size_mb'], '8.1f')} {f(r['parity'], '10.2e')} {f(r['wer'], '6.3f')}  "
              f"{json.dumps(other, default=str)}")
