"""Subtitles: exact SRT / WebVTT for fixed cues, wrapping, clipping; `livedub dub --subtitles`
through the in-process runner; the subscriber's assembly of the same files without a broker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streams.cli import main
from streams.subscribe import Assembly
from workers.asr.stage import AsrResult, AsrStage
from workers.bench.calibrated import CalibratedAsr, CalibratedMt, calibrated_pipeline
from workers.media.files import FileSink
from workers.media.reader import MediaInfo
from workers.media.sample import make_sample
from workers.media.subtitles import WIDTH, SubtitleTrack, srt_time, subtitle_paths, vtt_time, wrap
from workers.records import AudioChunk, DubbedFrame, DubbedSpeech, Transcript, float_to_pcm
from workers.settings import load_settings
from workers.streaming import END, audio_end
from workers.translate.stage import TranslateStage

FAST = {"segment": 0.0, "asr": 0.0, "translate": 0.0, "tts": 0.0, "lipsync": 0.0}

CUES = [
    (0.5, 2.0, "Hello everyone."),
    (1.9, 4.25, "Thanks for coming & welcome, <all> of you, to the planning meeting."),  # starts before the first ends
    (5.0, 6.0, "   "),  # no text: no cue
    (4.25, 12.0, "We will look at the numbers of the last quarter first, then at the plans for the next one, "
                 "and then take questions."),  # three lines' worth: two cues sharing the span
    (3725.5, 3727.0, "Over an hour in."),
]

SRT = """\
1
00:00:00,500 --> 00:00:01,900
Hello everyone.

2
00:00:01,900 --> 00:00:04,250
Thanks for coming & welcome, <all>
of you, to the planning meeting.

3
00:00:04,250 --> 00:00:09,417
We will look at the numbers of the last
quarter first, then at the plans for

4
00:00:09,417 --> 00:00:12,000
the next one, and then take questions.

5
01:02:05,500 --> 01:02:07,000
Over an hour in.

"""

VTT = """\
WEBVTT

00:00:00.500 --> 00:00:01.900
Hello everyone.

00:00:01.900 --> 00:00:04.250
Thanks for coming &amp; welcome, &lt;all&gt;
of you, to the planning meeting.

00:00:04.250 --> 00:00:09.417
We will look at the numbers of the last
quarter first, then at the plans for

00:00:09.417 --> 00:00:12.000
the next one, and then take questions.

01:02:05.500 --> 01:02:07.000
Over an hour in.

"""


def test_a_fixed_set_of_cues_gives_exact_srt_and_vtt(tmp_path):
    track = SubtitleTrack(tmp_path / "t.srt", tmp_path / "t.vtt")
    for cue in CUES:
        track.add(*cue)
    assert not (tmp_path / "t.srt").exists()  # the files appear when the track is finished
    track.close()
    assert (tmp_path / "t.srt").read_text(encoding="utf-8") == SRT
    assert (tmp_path / "t.vtt").read_text(encoding="utf-8") == VTT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.srt", "t.vtt"]  # no temp file left


def test_time_formats():
    assert srt_time(1234) == "00:00:01,234" and vtt_time(1234) == "00:00:01.234"
    assert srt_time(3_600_000 * 101 + 59_999) == "101:00:59,999"
    assert vtt_time(-5) == "00:00:00.000"


def test_long_texts_wrap_to_two_balanced_lines_of_42():
    text = " ".join(f"word{i}" for i in range(60))
    blocks = wrap(text)
    assert all(1 <= len(b) <= 2 and all(len(line) <= WIDTH for line in b) for b in blocks)
    assert " ".join(line for b in blocks for line in b) == text  # nothing lost, order kept
    assert wrap("Hello there, how are you doing today my friend, all good?") == [
        ("Hello there, how are you doing", "today my friend, all good?")]  # balanced, not 42 + 15
    assert wrap("  two\n  words ") == [("two words",)]
    long = "x" * 50
    assert wrap(f"a {long} b") == [("a", long), ("b",)]  # a word longer than a line stays whole
    assert wrap(" \n") == []


def test_cues_never_overlap_even_when_one_swallows_the_next(tmp_path):
    track = SubtitleTrack(tmp_path / "t.srt", tmp_path / "t.vtt")
    track.add(1.0, 5.0, "first")
    track.add(1.0, 2.0, "second, at the same start")  # leaves "first" nothing: it is dropped
    track.add(1.5, 3.0, "third")
    track.close()
    assert (tmp_path / "t.srt").read_text() == (
        "1\n00:00:01,000 --> 00:00:01,500\nsecond, at the same start\n\n"
        "2\n00:00:01,500 --> 00:00:03,000\nthird\n\n")


def test_an_aborted_track_leaves_nothing_and_an_empty_one_leaves_empty_files(tmp_path):
    track = SubtitleTrack(tmp_path / "a.srt", tmp_path / "a.vtt")
    track.add(0.0, 1.0, "gone")
    track.abort()
    assert list(tmp_path.iterdir()) == []
    track = SubtitleTrack(tmp_path / "e.srt", tmp_path / "e.vtt")
    track.close()
    assert (tmp_path / "e.srt").read_text() == "" and (tmp_path / "e.vtt").read_text() == "WEBVTT\n\n"


def test_file_names_sit_next_to_the_output():
    assert subtitle_paths(Path("out/talk.es.mp4")) == {
        "translation": (Path("out/talk.es.srt"), Path("out/talk.es.vtt")),
        "source": (Path("out/talk.es.source.srt"), Path("out/talk.es.source.vtt")),
    }


# -- through `livedub dub` ----------------------------------------------------------------------
class CountingAsr(CalibratedAsr):
    """Says which segment it heard."""

    def __init__(self) -> None:
        super().__init__(load_settings(), 0.0)
        self.n = 0

    def transcribe(self, audio: np.ndarray, language: str | None) -> AsrResult:
        self.n += 1
        return AsrResult(f"segment {self.n} said", language or "en", 1.0)


class TaggingMt(CalibratedMt):
    def __init__(self) -> None:
        super().__init__(load_settings(), 0.0)

    def translate(self, text: str, source: str, target: str) -> str:
        return f"[{target}] {text}"


def _srt_texts(path: Path) -> list[str]:
    return [block.split("\n", 2)[2] for block in path.read_text().split("\n\n") if block]


@pytest.mark.parametrize("mode", ["sequential", "pipelined"])
def test_livedub_dub_subtitles_writes_both_tracks_per_language(tmp_path, monkeypatch, capsys, mode):
    src = tmp_path / "talk.mp4"
    make_sample(src, seconds=1.0, size=64)
    pipe = calibrated_pipeline(load_settings(), FAST, replace={
        "asr": AsrStage(CountingAsr()), "translate": TranslateStage(TaggingMt())})
    monkeypatch.setattr("workers.dub.Pipeline.build", lambda settings: pipe)
    out = tmp_path / "talk.{lang}.mp4"
    assert main(["dub", str(src), "--to", "es,fr", "-o", str(out), "--mode", mode, "-q", "--subtitles"]) == 0
    printed = capsys.readouterr().out
    for lang in ("es", "fr"):
        paths = subtitle_paths(tmp_path / f"talk.{lang}.mp4")
        assert f"{lang}: subtitles {paths['translation'][0]}" in printed
        (srt, vtt), (src_srt, src_vtt) = paths["translation"], paths["source"]
        source = _srt_texts(src_srt)
        n = len(source)
        assert n >= 8  # the calibrated segmenter cuts one segment per 0.1 s chunk
        assert source == [f"segment {i} said" for i in range(1, n + 1)]
        assert _srt_texts(srt) == [f"[{lang}] segment {i} said" for i in range(1, n + 1)]
        text = src_srt.read_text()
        assert text.startswith("1\n00:00:00,000 --> 00:00:00,100\nsegment 1 said\n\n2\n00:00:00,100 --> ")
        assert vtt.read_text().startswith(f"WEBVTT\n\n00:00:00.000 --> 00:00:00.100\n[{lang}] segment 1 said\n\n")
        assert src_vtt.read_text().count(" --> ") == n
        assert (tmp_path / f"talk.{lang}.mp4").is_file()
    assert not list(tmp_path.glob(".*"))  # no temp files left


def test_without_the_flag_no_subtitles_are_written(tmp_path, monkeypatch):
    src = tmp_path / "talk.mp4"
    make_sample(src, seconds=0.5, size=64)
    monkeypatch.setattr("workers.dub.Pipeline.build", lambda settings: calibrated_pipeline(load_settings(), FAST))
    assert main(["dub", str(src), "--to", "es", "-o", str(tmp_path / "o.mp4"), "-q"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.mp4", "talk.mp4"]


# -- through `livedub subscribe` (its assembly, without a broker) -----------------------------------
def _session(sid: str = "s"):
    """A 2 s audio-only session: audio chunks, two segments' transcripts and speeches, end markers."""
    rate = 16000
    chunks = [AudioChunk(sid, i, i * 0.1, rate, float_to_pcm(np.full(rate // 10, 0.1, np.float32)))
              for i in range(20)]
    spans = [(0.2, 0.9, "the first thing said"), (0.8, 1.6, "and the second one, long enough to need two lines")]
    trs = [Transcript(sid, i, a, b, t, "en", 1.0, ("es", "fr"), 0.0) for i, (a, b, t) in enumerate(spans)]
    sps = [DubbedSpeech(sid, i, a, b, "es", f"es: {t}", rate, float_to_pcm(np.zeros(round((b - a) * rate))),
                        50.0, (), 0.0) for i, (a, b, t) in enumerate(spans)]
    ends = [audio_end(sid, 2.0), trs[0].replace(seq=END, text=""), sps[0].replace(seq=END, pcm=b""),
            DubbedFrame(sid, END, END, 2.0, "es", 0, 0, "jpeg", b"", True, 0.0)]
    return rate, chunks, trs, sps, ends


def test_the_subscriber_writes_the_same_subtitles_as_the_in_process_sink(tmp_path):
    rate, chunks, trs, sps, ends = _session()
    direct = tmp_path / "direct" / "s.es.wav"
    direct.parent.mkdir()
    info = MediaInfo(direct, 2.0, True, False, None, None, None, rate, 1, None, None, None)
    sink = FileSink(direct, info, original=iter((c.pts_s, c.samples()) for c in chunks), rate=rate, subtitles=True)
    for tr, sp in zip(trs, sps, strict=True):
        sink.transcript(tr)
        sink.speech(sp)
    sink.close()

    kafka = tmp_path / "kafka" / "s.es.wav"
    kafka.parent.mkdir()
    a = Assembly("s", "es", kafka, subtitles=True)
    # as the topics deliver them: transcripts well ahead of their speech, a replayed transcript,
    # another session's language only in the end markers
    for rec in [*trs, trs[0], *chunks, *sps, *ends[:1], *ends[2:]]:
        a.add(rec)
        assert not a.step()  # the transcripts' end marker has not come: not complete yet
    a.add(ends[1])
    assert a.step() and a.segments == 2 and a.duplicates == 1
    for (d_srt, d_vtt), (k_srt, k_vtt) in zip(subtitle_paths(direct).values(), subtitle_paths(kafka).values(),
                                              strict=True):
        assert d_srt.read_text() == k_srt.read_text() and d_vtt.read_text() == k_vtt.read_text()
    src_srt, tr_srt = subtitle_paths(kafka)["source"][0], subtitle_paths(kafka)["translation"][0]
    assert src_srt.read_text() == (
        "1\n00:00:00,200 --> 00:00:00,800\nthe first thing said\n\n"  # clipped at the next start
        "2\n00:00:00,800 --> 00:00:01,600\nand the second one, long\nenough to need two lines\n\n")
    assert _srt_texts(tr_srt) == ["es: the first thing said", "es: and the second one, long\nenough to need two lines"]
    assert kafka.read_bytes() == direct.read_bytes()


def test_the_subscriber_ignores_transcripts_without_the_flag(tmp_path):
    _, chunks, trs, sps, ends = _session()
    a = Assembly("s", "es", tmp_path / "s.es.wav")
    for rec in [*trs, *chunks, *sps, *ends[:1], *ends[2:]]:  # no transcripts' end marker: not waited for
        a.add(rec)
    assert a.step() and not a.transcripts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.es.wav"]
