"""The original audio stays under the dub: untouched outside the dubbed spans, ducked inside them.

Measured on tones: a background at 220 Hz all through, "speech" at 1 kHz inside the span and
the dub at 3 kHz over it. The output is written as 16-bit WAV, so outside the span it must be
the source's 16-bit samples exactly; inside it, an FFT over the span (ramps excluded) gives
each component's level. The frequencies sit on FFT bins of the analysis window, so a plain
rectangular window measures their amplitudes without leakage.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from streams.subscribe import Assembly
from workers.media.files import FileSink, duck_gain
from workers.media.reader import MediaInfo
from workers.records import AudioChunk, DubbedFrame, DubbedSpeech, float_to_pcm
from workers.settings import OutputSettings, load_settings
from workers.streaming import END, audio_end

RATE = 24000
BG, VOICE, DUB = 220.0, 1000.0, 3000.0  # Hz: multiples of 2 Hz, the bin width of a 0.5 s window
BG_AMP, VOICE_AMP, DUB_AMP = 0.1, 0.25, 0.3
SPAN = (1.0, 2.0)
SECONDS = 3.0


def _tone(f: float, amp: float, n: int, start: int = 0, rate: int = RATE) -> np.ndarray:
    t = (np.arange(n) + start) / rate
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def _source(rate: int = RATE) -> np.ndarray:
    n = round(SECONDS * rate)
    x = _tone(BG, BG_AMP, n, rate=rate)
    a, b = round(SPAN[0] * rate), round(SPAN[1] * rate)
    x[a:b] += _tone(VOICE, VOICE_AMP, b - a, a, rate)
    return x


def _speech(start_s: float, end_s: float, audio: np.ndarray, seq: int = 0, rate: int = RATE) -> DubbedSpeech:
    return DubbedSpeech("s", seq, start_s, end_s, "es", "hola", rate, float_to_pcm(audio), 50.0, (), 0.0)


def _dub(span=SPAN) -> DubbedSpeech:
    a, b = round(span[0] * RATE), round(span[1] * RATE)
    return _speech(*span, _tone(DUB, DUB_AMP, b - a, a))


def _chunks(x: np.ndarray, chunk_s: float = 0.1):
    n = round(chunk_s * RATE)
    return ((i / RATE, x[i : i + n]) for i in range(0, len(x), n))


def _info(path: Path) -> MediaInfo:
    return MediaInfo(path, SECONDS, True, False, None, None, None, RATE, 1, None, None, None)


def _run_sink(tmp_path: Path, src: np.ndarray, speeches: list[DubbedSpeech], **output) -> np.ndarray:
    out = tmp_path / "out.wav"
    sink = FileSink(out, _info(out), original=_chunks(src), rate=RATE, output=OutputSettings(**output))
    for sp in speeches:
        sink.speech(sp)
    sink.close()
    return _read_wav(out)


def _read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), "<i2")


def _pcm16(x: np.ndarray) -> np.ndarray:
    """What the writer stores for float samples."""
    return np.frombuffer(float_to_pcm(x), "<i2")


def _amp(x: np.ndarray, f: float) -> float:
    """Amplitude of the component at `f` (on a bin of len(x)) of 16-bit samples, full scale 1."""
    spec = np.fft.rfft(x.astype(np.float64) / 32767.0)
    return 2.0 * abs(spec[round(f * len(x) / RATE)]) / len(x)


def _db(a: float, b: float) -> float:
    return 20.0 * np.log10(a / max(b, 1e-12))


def _inside(out: np.ndarray) -> np.ndarray:
    """0.5 s in the middle of the span, well clear of the ramps."""
    a = round((SPAN[0] + 0.25) * RATE)
    return out[a : a + RATE // 2]


def test_outside_the_span_the_source_is_untouched_and_inside_it_is_30_db_under_the_dub(tmp_path):
    src = _source()
    out = _run_sink(tmp_path, src, [_dub()])
    a, b = round(SPAN[0] * RATE), round(SPAN[1] * RATE)
    assert len(out) == len(src)
    expected = _pcm16(src)
    assert np.array_equal(out[:a], expected[:a])  # sample-exact before the span
    assert np.array_equal(out[b:], expected[b:])  # and after it
    inside = _inside(out)
    dub, voice, bg = _amp(inside, DUB), _amp(inside, VOICE), _amp(inside, BG)
    assert dub == pytest.approx(DUB_AMP, rel=1e-3)  # the dub itself is not touched
    assert _db(VOICE_AMP, voice) == pytest.approx(30.0, abs=0.05)  # the original voice, ducked by 30 dB
    assert _db(BG_AMP, bg) == pytest.approx(30.0, abs=0.1)  # and the room with it
    assert _db(dub, voice) >= 30.0 and _db(dub, bg) >= 30.0  # both far under the dub
    # outside the span the room is at full level: nothing ducked there
    assert _amp(out[: RATE // 2], BG) == pytest.approx(BG_AMP, rel=1e-3)


def test_silence_removes_the_original_inside_the_span(tmp_path):
    src = _source()
    out = _run_sink(tmp_path, src, [_dub()], duck_db=float("-inf"))
    a, b = round(SPAN[0] * RATE), round(SPAN[1] * RATE)
    expected = _pcm16(src)
    assert np.array_equal(out[:a], expected[:a]) and np.array_equal(out[b:], expected[b:])
    inside = _inside(out)
    dub = _tone(DUB, DUB_AMP, len(src))
    assert np.abs(inside.astype(int) - _pcm16(_inside(dub)).astype(int)).max() <= 1  # the dub alone
    assert _db(_amp(inside, DUB), _amp(inside, VOICE)) > 90  # the original's components are gone
    assert _db(_amp(inside, DUB), _amp(inside, BG)) > 90


def _gain_curve(tmp_path: Path, speeches: list[DubbedSpeech], **output) -> np.ndarray:
    """The gain applied to the source: a constant source under silent dubs."""
    src = np.full(round(SECONDS * RATE), 0.5, np.float32)
    return _run_sink(tmp_path, src, speeches, **output) / _pcm16(src)


def _silent(start_s: float, end_s: float, seq: int = 0) -> DubbedSpeech:
    return _speech(start_s, end_s, np.zeros(round((end_s - start_s) * RATE), np.float32), seq)


def test_the_duck_ramps_smoothly_inside_the_span_edges(tmp_path):
    g = _gain_curve(tmp_path, [_silent(*SPAN)])
    a, b = round(SPAN[0] * RATE), round(SPAN[1] * RATE)
    ramp = round(0.04 * RATE)
    duck = duck_gain(-30.0)
    assert np.all(g[:a] == 1.0) and np.all(g[b:] == 1.0)
    assert np.allclose(g[a + ramp : b - ramp], duck, atol=1e-4)  # flat at -30 dB between the ramps
    down, up = g[a : a + ramp], g[b - ramp : b]
    assert np.all(np.diff(down) <= 1e-4) and np.all(np.diff(up) >= -1e-4)  # monotonic, no overshoot
    assert down[0] > 0.99 and down[-1] < duck + 0.01 and up[0] < duck + 0.01 and up[-1] > 0.99
    # no click: the largest step of the gain is that of a 40 ms raised cosine, ~1/600 per sample
    assert np.abs(np.diff(g)).max() < 1.2 * np.pi / 2 / ramp


def test_touching_spans_stay_ducked_across_the_joint(tmp_path):
    g = _gain_curve(tmp_path, [_silent(1.0, 1.5, 0), _silent(1.5, 2.0, 1)])
    ramp = round(0.04 * RATE)
    assert np.allclose(g[round(1.0 * RATE) + ramp : round(2.0 * RATE) - ramp], duck_gain(-30.0), atol=1e-4)
    # with a gap between them the original comes back, untouched, in between
    g = _gain_curve(tmp_path, [_silent(1.0, 1.4, 0), _silent(1.6, 2.0, 1)])
    assert np.all(g[round(1.4 * RATE) : round(1.6 * RATE)] == 1.0)
    assert g[round(1.4 * RATE) - 1] > 0.99 and g[round(1.6 * RATE)] > 0.99


def test_the_duck_is_a_setting():
    assert load_settings().output.duck_db == -30.0
    assert duck_gain(load_settings(output={"duck_db": "-inf"}).output.duck_db) == 0.0
    assert duck_gain(-20.0) == pytest.approx(0.1)


def test_the_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("LIVEDUB_OUTPUT__DUCK_DB", "-inf")
    monkeypatch.setenv("LIVEDUB_OUTPUT__DUCK_RAMP_S", "0.03")
    out = load_settings().output
    assert out.duck_db == float("-inf") and out.duck_ramp_s == 0.03
    monkeypatch.setenv("LIVEDUB_OUTPUT__DUCK_DB", "6")
    from workers.errors import ConfigError

    with pytest.raises(ConfigError, match="duck_db"):
        load_settings()


def test_the_subscriber_mixes_exactly_as_the_in_process_sink(tmp_path):
    """Assembly (livedub subscribe) writes through FileSink with the same settings: same samples."""
    rate = 16000  # the subscriber writes at the rate of the published audio
    src = _source(rate)
    chunk = rate // 10
    chunks = [AudioChunk("s", i, i * 0.1, rate, float_to_pcm(src[i * chunk : (i + 1) * chunk]))
              for i in range(round(SECONDS * 10))]
    dub_audio = _tone(DUB, DUB_AMP, rate, rate, rate)  # one second, as long as the span
    dub = _speech(*SPAN, dub_audio, rate=rate)

    direct = tmp_path / "direct.wav"
    info = MediaInfo(direct, SECONDS, True, False, None, None, None, rate, 1, None, None, None)
    sink = FileSink(direct, info, original=iter((c.pts_s, c.samples()) for c in chunks), rate=rate)
    sink.speech(dub)
    sink.close()

    a = Assembly("s", "es", tmp_path / "kafka.wav")
    a.add(dub)
    a.add(dub)  # a replay
    for c in chunks:
        a.add(c)
        assert not a.step()
    a.add(audio_end("s", SECONDS))
    a.add(dub.replace(seq=END, pcm=b""))
    a.add(DubbedFrame("s", END, END, SECONDS, "es", 0, 0, "jpeg", b"", True, 0.0))  # audio only
    assert a.step() and a.segments == 1 and a.duplicates == 1
    with wave.open(str(direct), "rb") as w1, wave.open(str(tmp_path / "kafka.wav"), "rb") as w2:
        assert w1.readframes(10**7) == w2.readframes(10**7)
    # and it is ducked, not replaced
    with wave.open(str(direct), "rb") as w:
        out = np.frombuffer(w.readframes(10**7), "<i2")
    under = out[round(1.25 * rate) : round(1.75 * rate)] / 32767 - dub_audio[rate // 4 : 3 * rate // 4]
    expected = src[round(1.25 * rate) : round(1.75 * rate)] * duck_gain(-30.0)
    assert np.abs(under - expected).max() < 3e-4 and np.abs(expected).max() > 0.005
