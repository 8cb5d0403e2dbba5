"""A live call, end to end, with real clients: a real LiveKit server, a speaker client publishing the
talking-face sample (microphone and camera, in real time), the bot (`livedub call`, its own process)
and a listener client recording the speaker's Spanish tracks.

What the listener gets is judged by what a person would notice, with judges the bot does not use:
* the Spanish audio is heard as Spanish by Whisper (beam search; the bot's ASR decodes greedily);
* the mouth in the Spanish video moves with the Spanish speech (a MediaPipe face mesh, not the dlib
  landmarks that drive the lip sync);
* the delay is constant: every frame carries its index in a corner barcode, so each one's delay is
  its arrival at the listener minus its capture at the speaker;
* audio and video stay in sync: two beeps in silent moments, with a white flag in the frames of
  the same instants, arrive together.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
import soxr

from tests.support.clips import sample_clip
from workers.live.bot import track_name
from workers.live.tokens import room_token
from workers.media.reader import iter_audio, iter_video
from workers.settings import LiveKitSettings

pytestmark = [pytest.mark.live, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
RATE = 48000
FPS = 25
DELAY_S = 10.0  # segments of the sample were ready 4.3-5.3 s after their start here; room for a loaded CI
LEAD_S = 2.0  # silence and a still picture before the clip, and after it
BEEP_AT = 1.0  # into the lead and into the tail: a 50 ms 1 kHz beep, the flag in the frame of that instant
BITS, CELL = 10, 16  # frame index barcode: 10 cells of 16x16 px along the top edge; the flag cell after them


def _paint(img: np.ndarray, index: int, flag: bool) -> np.ndarray:
    img = img.copy()
    for b in range(BITS):
        img[:CELL, b * CELL:(b + 1) * CELL] = 255 if index >> b & 1 else 0
    img[:CELL, BITS * CELL:(BITS + 1) * CELL] = 255 if flag else 0
    return img


def _read(img: np.ndarray, width: int = 384) -> tuple[int, bool]:
    """The barcode of a frame that may have come scaled (WebRTC lowers resolution under load)."""
    c = CELL * img.shape[1] / width
    m = max(1, round(c / 4))  # read each cell's middle only: the encoder blurs the edges
    cells = [float(img[m:round(c) - m, round(b * c) + m:round((b + 1) * c) - m].mean()) > 127
             for b in range(BITS + 1)]
    return sum(1 << b for b in range(BITS) if cells[b]), cells[BITS]


@dataclass
class Recording:
    audio: list[tuple[float, np.ndarray]] = field(default_factory=list)  # (arrival, 10 ms of samples)
    frames: list[tuple[float, int, bool, np.ndarray]] = field(default_factory=list)  # arrival, index, flag, BGR
    sent: dict[int, float] = field(default_factory=dict)  # frame index -> capture time at the speaker
    beeps_sent: list[float] = field(default_factory=list)
    names: set[str] = field(default_factory=set)


def _speaker_media(clip: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """The clip with LEAD_S of silence and still picture before and after, beeps in both."""
    audio = np.concatenate([s for _, s in iter_audio(clip, rate=RATE, chunk_s=0.5)])
    frames = [np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 3) for f in iter_video(clip, "spk")]
    lead = np.zeros(round(LEAD_S * RATE), np.float32)
    t = np.arange(round(0.05 * RATE)) / RATE
    beep = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    head, tail = lead.copy(), lead.copy()
    head[round(BEEP_AT * RATE):][:len(beep)] = beep
    tail[round(BEEP_AT * RATE):][:len(beep)] = beep
    n_lead = round(LEAD_S * FPS)
    video = [frames[0]] * n_lead + frames + [frames[-1]] * n_lead
    return np.concatenate([head, audio, tail]), video


async def _call(lk, clip: Path, rec: Recording, bot_ready: asyncio.Event) -> None:
    from livekit import rtc

    key, secret = lk.api_key, lk.api_secret
    settings = LiveKitSettings(api_key=key, api_secret=secret)
    listener, speaker = rtc.Room(), rtc.Room()
    tasks: list[asyncio.Task] = []

    async def hear(track: rtc.Track) -> None:
        async for ev in rtc.AudioStream(track, sample_rate=RATE, num_channels=1, frame_size_ms=10):
            rec.audio.append((time.time(), np.frombuffer(ev.frame.data, np.int16).astype(np.float32) / 32768))

    async def see(track: rtc.Track) -> None:
        async for ev in rtc.VideoStream(track, format=rtc.VideoBufferType.BGRA):
            got = time.time()
            f = ev.frame
            img = cv2.cvtColor(np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 4), cv2.COLOR_BGRA2BGR)
            if img.mean() > 10:  # a video source sends black frames until its first real one
                rec.frames.append((got, *_read(img), img))

    @listener.on("track_subscribed")
    def on_track(track: rtc.Track, pub: rtc.RemoteTrackPublication, p: rtc.RemoteParticipant) -> None:
        rec.names.add(pub.name)
        if pub.name == track_name("speaker", "es", "audio"):
            tasks.append(asyncio.ensure_future(hear(track)))
        elif pub.name == track_name("speaker", "es", "video"):
            tasks.append(asyncio.ensure_future(see(track)))

    @listener.on("participant_connected")
    def on_join(p: rtc.RemoteParticipant) -> None:
        if p.identity == "livedub":
            bot_ready.set()

    await listener.connect(lk.url, room_token(settings, "listener", "call"))
    if any(p.identity == "livedub" for p in listener.remote_participants.values()):
        bot_ready.set()
    await asyncio.wait_for(bot_ready.wait(), 240)  # the bot loads and warms its models first

    await speaker.connect(lk.url, room_token(settings, "speaker", "call"))
    audio, video = _speaker_media(clip)
    a_src, v_src = rtc.AudioSource(RATE, 1, queue_size_ms=100), rtc.VideoSource(video[0].shape[1], video[0].shape[0])
    for track, source in ((rtc.LocalAudioTrack.create_audio_track("mic", a_src), rtc.TrackSource.SOURCE_MICROPHONE),
                          (rtc.LocalVideoTrack.create_video_track("cam", v_src), rtc.TrackSource.SOURCE_CAMERA)):
        opts = rtc.TrackPublishOptions(source=source, stream="cam",
                                       video_encoding=rtc.VideoEncoding(max_bitrate=1_500_000, max_framerate=30))
        await speaker.local_participant.publish_track(track, opts)
    await asyncio.sleep(1.0)  # let the bot subscribe
    step = RATE // 100
    t0 = time.time()
    next_frame = 0
    for i in range(0, len(audio) - step + 1, step):
        if (wait := t0 + i / RATE - time.time()) > 0:
            await asyncio.sleep(wait)
        while next_frame < len(video) and next_frame / FPS <= i / RATE:
            n = next_frame
            flag = any(abs(n / FPS - b) < 0.5 / FPS for b in (BEEP_AT, len(audio) / RATE - LEAD_S + BEEP_AT))
            rgba = cv2.cvtColor(_paint(video[n], n, flag), cv2.COLOR_BGR2RGBA)
            v_src.capture_frame(rtc.VideoFrame(rgba.shape[1], rgba.shape[0], rtc.VideoBufferType.RGBA, rgba.tobytes()))
            rec.sent[n] = time.time()
            next_frame += 1
        await a_src.capture_frame(rtc.AudioFrame((audio[i:i + step] * 32767).astype(np.int16).tobytes(), RATE, 1, step))
    rec.beeps_sent = [t0 + BEEP_AT, t0 + len(audio) / RATE - LEAD_S + BEEP_AT]
    await asyncio.sleep(DELAY_S + 2.0)  # the dub of the last words plays out
    await speaker.disconnect()
    await asyncio.sleep(0.5)
    await listener.disconnect()
    for t in tasks:
        t.cancel()


@pytest.fixture(scope="module")
def call(livekit_server, settings, tmp_path_factory):
    clip = sample_clip()
    env = {**os.environ, **livekit_server.env(), "LIVEDUB_CACHE_DIR": str(settings.cache_dir)}
    log = tmp_path_factory.mktemp("bot") / "bot.log"
    with open(log, "w") as out:
        bot = subprocess.Popen([sys.executable, "-m", "streams.cli", "call", "--room", "call", "--to", "es",
                                "--delay", str(DELAY_S)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    rec = Recording()
    try:
        asyncio.run(asyncio.wait_for(_call(livekit_server, clip, rec, asyncio.Event()), 420))
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            bot.wait(30)
        except subprocess.TimeoutExpired:
            bot.kill()
    return rec, log.read_text()


def test_the_bot_publishes_the_speaker_dubbed_under_findable_names(call):
    rec, log = call
    assert {track_name("speaker", "es", "audio"), track_name("speaker", "es", "video")} <= rec.names, (rec.names, log)
    assert rec.audio and rec.frames, log[-3000:]


def test_every_frame_comes_at_the_same_delay(call):
    rec, _ = call
    delays = np.array([t - rec.sent[i] for t, i, _, _ in rec.frames if i in rec.sent])
    assert len(delays) > 0.7 * len(rec.sent)  # most frames got through, with their barcodes read
    lo, med, hi = np.percentile(delays, [2, 50, 98])
    assert DELAY_S <= med <= DELAY_S + 0.4, (lo, med, hi)
    # constant: no drift, no stall, no rise. What spread there is is the listener's own video jitter
    # buffer, which grows by up to ~0.2 s while the machine's two cores are busy dubbing, then shrinks.
    assert hi - lo <= 0.35, (lo, med, hi)


def test_audio_and_video_arrive_in_sync(call):
    rec, _ = call
    t = np.array([a - len(s) / RATE for a, s in rec.audio])  # when each 10 ms frame began to play
    level = np.array([np.sqrt(np.mean(s ** 2)) for _, s in rec.audio])
    flags = [t_ for t_, _, flag, _ in rec.frames if flag]
    offsets = []
    for sent in rec.beeps_sent:
        near = np.flatnonzero((np.abs(t - (sent + DELAY_S)) < 1.0) & (level > 0.1))
        assert len(near), f"no beep heard near {sent + DELAY_S - rec.beeps_sent[0]:.2f} s"
        heard = t[near[0]]
        seen = min(flags, key=lambda f: abs(f - heard))
        offsets.append(seen - heard)
    # The bot sends a step's audio and frames together (held by the audio's longer path, audio_lag_s):
    # tests/unit/test_playout.py. What a listener of the LiveKit SDK sees also holds its two jitter
    # buffers, which adapt on their own: +7 to +71 ms measured here (README, "Live calls").
    assert max(abs(o) for o in offsets) <= 0.1, offsets


def test_the_speaker_is_heard_in_spanish_with_a_moving_mouth(call, loaded):
    from workers.asr.faster_whisper import FasterWhisper
    from workers.bench.mouth_meter import MouthMeter, pearson

    rec, _ = call
    audio = np.concatenate([s for _, s in rec.audio])
    speech = soxr.resample(audio, RATE, 16000).astype(np.float32)
    asr = loaded(FasterWhisper)
    _, info = asr.model.transcribe(speech, language=None, beam_size=5, without_timestamps=True)
    assert info.language == "es", (info.language, info.language_probability)

    # the mouth: aperture per frame by a face mesh, against the loudness of the audio at that instant
    import dlib

    middle = rec.frames[len(rec.frames) // 2][3]
    faces = dlib.get_frontal_face_detector()(cv2.cvtColor(middle, cv2.COLOR_BGR2GRAY), 1)
    assert faces, "no face in the listener's video"
    box = np.array([faces[0].left(), faces[0].top(), faces[0].right(), faces[0].bottom()], float)
    meter = MouthMeter()
    starts = np.array([a - len(s) / RATE for a, s in rec.audio])
    level = np.array([np.sqrt(np.mean(s ** 2)) for _, s in rec.audio])
    aperture, loud = [], []
    for t, _, _, img in rec.frames:
        k = int(np.searchsorted(starts, t)) - 1
        if 2 <= k < len(level) - 2:  # frames may come scaled down while bandwidth ramps up: scale the box
            aperture.append(meter.measure(img, box * img.shape[1] / middle.shape[1]).aperture)
            loud.append(float(level[k - 2:k + 3].mean()))
    aperture, loud = np.array(aperture), np.array(loud)
    assert aperture[loud > 0.03].mean() > aperture[loud < 0.005].mean() + 0.02  # open in speech, closed in pauses
    # it moves *with* the speech: the correlation peaks with no shift between picture and sound (±1 frame)
    by_shift = {k: pearson(aperture[max(k, 0):len(aperture) + min(k, 0)], loud[max(-k, 0):len(loud) - max(k, 0)])
                for k in range(-6, 7)}
    assert by_shift[0] >= 0.3, by_shift
    assert abs(max(by_shift, key=by_shift.get)) <= 1, by_shift
