"""Feeds shared by the runner, stream-step and topology tests: calibrated sessions, routed hop by hop."""

from __future__ import annotations

import itertools

import numpy as np

from workers.bench.calibrated import NullSink, SyntheticFrames
from workers.bench.run import _release, calibrated_feed
from workers.records import AudioChunk, DubbedFrame, SessionControl, VideoFrame
from workers.runner import Session
from workers.streaming import audio_end, video_end
from workers.topology import DEFAULT

ORDER = DEFAULT.names
FAST = {"segment": 0.002, "asr": 0.01, "translate": 0.005, "tts": 0.008, "lipsync": 0.01}


def chunks(n: int, sid: str):
    """n chunks of 0.05 s; the first sample of chunk i encodes i so fakes can tell segments apart."""
    out = []
    for c in calibrated_feed(n, segment_s=0.05).chunks:
        pcm = np.frombuffer(c.pcm, "<i2").copy()
        pcm[0] = c.seq
        out.append(c.replace(session_id=sid, pcm=pcm.tobytes()))
    return out


def session(n: int, langs: tuple[str, ...] = ("es",), pace: bool = False, sid: str = "s1"):
    recs = chunks(n, sid)
    feed = calibrated_feed(0)
    sinks = {lang: NullSink() for lang in langs}
    frames = {lang: SyntheticFrames(sid, fps=100.0) for lang in langs}
    ctl = SessionControl(sid, "start", langs, None)
    return Session(ctl, _release(type(feed)(recs, None), pace), sinks, frames), sinks


def session_records(sid: str, langs: tuple[str, ...], segments: int = 4, fps: float = 20.0):
    """Control, audio chunks (one per segment, 0.5 s) and frames, as a publisher sends them."""
    recs = [SessionControl(sid, "start", langs, None)]
    for i in range(segments):
        recs.append(AudioChunk(sid, i, i * 0.5, 16000, bytes(16000)))
    n = int(segments * 0.5 * fps)
    frames = [recs[0], *(VideoFrame(sid, k, k / fps, 2, 2, "bgr24", bytes(12)) for k in range(n))]
    return [*recs, audio_end(sid, segments * 0.5)], [*frames, video_end(sid, segments * 0.5)]


async def flow(steps, audio_side, video_side, order=ORDER):
    """Route records hop by hop as Kafka would (one ordered stream per hop), returning lipsync output."""
    out: list = []
    nxt = dict(itertools.pairwise(order))

    async def push(stage: str, rec) -> None:
        for o in await steps[stage].handle(rec):
            if stage == order[-1]:
                out.append(o)
            else:
                await push(nxt[stage], o)

    for rec in video_side:
        await push(order[-1], rec)
    for rec in audio_side:
        await push(order[0], rec)
    return out


def frames_by(out, sid, lang):
    return [o for o in out if isinstance(o, DubbedFrame) and o.session_id == sid and o.target_lang == lang]
