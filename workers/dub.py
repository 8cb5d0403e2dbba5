"""Dub one media file in process (the embedded default: no broker)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workers.errors import BadInputError, ConfigError
from workers.media.files import FileFrameSource, FileSink, audio_chunks
from workers.media.reader import MediaInfo, probe
from workers.pipeline import Pipeline
from workers.records import SessionControl
from workers.retry import RetryPolicy
from workers.runner import Runner, RunReport, Session
from workers.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class DubResult:
    outputs: dict[str, Path]
    info: MediaInfo
    report: RunReport


def output_paths(src: Path, targets: list[str], out: Path | None) -> dict[str, Path]:
    """One output per language: `out` as given for one language, `{lang}` or `name.<lang>.ext` for more."""
    if out is None:
        return {t: src.with_name(f"{src.stem}.{t}{src.suffix}") for t in targets}
    if "{lang}" in str(out):
        return {t: Path(str(out).replace("{lang}", t)) for t in targets}
    if len(targets) == 1:
        return {targets[0]: out}
    return {t: out.with_name(f"{out.stem}.{t}{out.suffix}") for t in targets}


async def dub_file(
    src: Path,
    targets: list[str],
    settings: Settings,
    *,
    out: Path | None = None,
    source_lang: str | None = None,
    mode: str = "pipelined",
    pipeline: Pipeline | None = None,
    on_progress: Callable[[float], None] | None = None,
    subtitles: bool = False,
) -> DubResult:
    """Dub `src` into each target language; returns the written paths and the run report.

    With `subtitles`, each output also gets SRT and WebVTT files of its translation and of the
    source transcript beside it (workers/media/subtitles.py names them).
    """
    if not targets:
        raise ConfigError("no target language given (e.g. --to es)")
    info = probe(src)
    if not info.has_audio:
        raise BadInputError(f"{src} has no audio track: there is no speech to dub")
    outs = output_paths(src, targets, out)
    for lang, path in outs.items():
        if path.resolve() == src.resolve():
            raise ConfigError(f"output for {lang} would overwrite the input {src}")
        path.parent.mkdir(parents=True, exist_ok=True)
    pipeline = pipeline or Pipeline.build(settings)
    if not info.has_video and pipeline.has("lipsync"):
        log.info("%s has no video track: writing audio-only output", src)
    session_id = src.stem
    control = SessionControl(session_id, "start", tuple(targets), source_lang)
    session = Session(
        control=control,
        audio=audio_chunks(src, session_id, settings.runner.audio_chunk_s),
        sinks={lang: FileSink(path, info, output=settings.output, subtitles=subtitles) for lang, path in outs.items()},
        frames={lang: FileFrameSource(src, session_id) for lang in outs} if info.has_video else None,
    )
    runner = Runner(pipeline, queue_size=settings.runner.queue_size, retry=RetryPolicy.from_settings(settings.retry),
                    on_progress=on_progress)
    report = await runner.run(session, mode)
    if not report.segments:
        log.warning("no speech found in %s: the output is the input unchanged", src)
    return DubResult(outs, info, report)

