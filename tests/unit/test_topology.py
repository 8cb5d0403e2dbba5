"""One declaration of the pipeline: every view derives from it, and a sixth stage is one entry."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from streams.topics import HOP_RECORDS, HOPS, Topics
from tests.support.feeds import FAST, flow, frames_by, session, session_records
from workers.bench.calibrated import calibrated_pipeline
from workers.errors import ConfigError
from workers.pipeline import Pipeline
from workers.records import Translation
from workers.settings import load_settings
from workers.stage import Backend, Stage
from workers.streaming import Step
from workers.topology import DEFAULT, STAGE_ORDER, StageSpec, Topology

ROOT = Path(__file__).resolve().parents[2]


def test_views_derive_from_the_table() -> None:
    assert STAGE_ORDER == ("segment", "asr", "translate", "tts", "lipsync")
    assert HOPS == ("session.control", "media.audio", "media.video", "segments", "transcripts", "translations",
                    "dubbed.speech", "dubbed.video", "dlq")
    assert HOP_RECORDS["transcripts"] == "Transcript" and HOP_RECORDS["dlq"] == "DeadLetter"
    t = Topics()
    assert t.inputs("segment") == ["livedub.session.control", "livedub.media.audio"]
    assert t.inputs("asr") == ["livedub.segments"]
    assert t.inputs("lipsync") == ["livedub.session.control", "livedub.media.video", "livedub.dubbed.speech"]
    assert [t.output(s) for s in STAGE_ORDER] == ["livedub.segments", "livedub.transcripts", "livedub.translations",
                                                  "livedub.dubbed.speech", "livedub.dubbed.video"]
    assert DEFAULT.chain == ("segment", "asr", "translate", "tts") and DEFAULT.frame_stage == "lipsync"


def test_a_topology_that_reads_what_nothing_writes_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"reads media\.nope"):
        Topology(stages=(StageSpec("a", "x:A", "x:B", "out", "Transcript", side_inputs=("media.nope",)),),
                 sources=DEFAULT.sources, main_source="media.audio", frames_source="media.video")
    with pytest.raises(ConfigError, match="two writers"):
        DEFAULT.with_stage(StageSpec("dup", "x:A", "x:B", "segments", "SpeechSegment"), after="asr")


# -- a sixth stage: one entry in the table plus its classes --------------------------------------

class Polish(Stage[Translation, Translation]):
    """A trivial pass-through stage that marks the text it saw (so the test can see it ran)."""

    name = "polish"

    def _handle(self, tr: Translation) -> list[Translation]:
        return [tr.replace(text=f"{tr.text} [polished]")]


class PolishBackend(Backend):
    name = "identity"

    def _load(self) -> None:
        pass


class PolishStep(Step):
    """Input and output are Translations: the default step (end marker passes as it is) fits."""


SIX = DEFAULT.with_stage(StageSpec("polish", f"{__name__}:Polish", f"{__name__}:PolishStep",
                                   "translations.polished", "Translation"), after="translate")


def _six_pipeline() -> Pipeline:
    pipe = calibrated_pipeline(load_settings(), FAST)
    stages = dict(pipe.stages)
    stages["polish"] = SIX.spec("polish").stage_class()(PolishBackend(load_settings()))
    return Pipeline(stages, topology=SIX)


def test_the_sixth_stage_is_wired_everywhere_from_its_entry() -> None:
    assert SIX.names == ("segment", "asr", "translate", "polish", "tts", "lipsync")
    assert SIX.main_input("tts") == "translations.polished"  # the next stage reads the new hop
    t = Topics(topology=SIX)
    assert t.inputs("polish") == ["livedub.translations"] and t.output("polish") == "livedub.translations.polished"
    assert "livedub.translations.polished" in t.all() and t.inputs("tts") == ["livedub.translations.polished"]


@pytest.mark.parametrize("mode", ["sequential", "pipelined"])
def test_the_in_process_runner_runs_the_sixth_stage(mode: str) -> None:
    from workers.runner import Runner

    s, sinks = session(5, ("es", "fr"))
    report = asyncio.run(Runner(_six_pipeline()).run(s, mode))
    for lang, sink in sinks.items():
        assert [sp.seq for sp in sink.speeches] == list(range(5)), lang
        assert all(sp.text.endswith("[polished]") for sp in sink.speeches)
    assert not report.dropped


def test_the_stream_steps_run_the_sixth_stage() -> None:
    pipe = _six_pipeline()
    steps = {name: SIX.spec(name).step_class()(pipe[name]) for name in SIX.names}
    audio, video = session_records("s1", ("es",))
    out = asyncio.run(flow(steps, audio, video, order=SIX.names))
    assert [f.frame_seq for f in frames_by(out, "s1", "es")[:-1]] == list(range(40))
    assert steps["polish"].open == set()  # the session ended on the stage with its end marker


# -- layering ---------------------------------------------------------------------------------------

def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_workers_never_import_streams_or_kafka() -> None:
    bad = {}
    for path in sorted((ROOT / "workers").rglob("*.py")):
        hits = {m for m in _imports(path)
                if m.split(".")[0] in ("streams", "faust", "confluent_kafka", "aiokafka", "mode")}
        if hits:
            bad[str(path.relative_to(ROOT))] = sorted(hits)
    assert not bad, bad
