"""Validation at the edge: every field of an input record checked against what the stages accept,
before any work, so a bad record costs microseconds and becomes a dead letter naming the field.

One layer for every driver (the Kafka steps, the in-process runner), derived from the records'
own fields (their dataclass types mirror the Avro schemas, tests/unit/test_codecs.py checks it)
plus LIMITS: the ranges the stages can serve, by field name wherever that field appears. What it
guards against was found by a foreign client: a valid-Avro sample_rate of 2^62 hung the
resampler's constructor holding the GIL (nothing could abandon it), 0 divided by zero, NaN
times ended sessions at once, an unknown frame encoding surfaced later in a timer.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from functools import cache

from workers.errors import BadInputError
from workers.records import AudioChunk, Record, SessionControl, VideoFrame

END = -1  # workers.streaming.END: the seq of end markers
ENCODINGS = ("bgr24", "jpeg")  # workers/media/frames.py decodes these
SEQ_MAX = 2**31 - 1
TIME_MAX_S = 7 * 24 * 3600.0  # media time: a week-long session is the longest we serve
LIMITS: dict[str, tuple[float, float]] = {  # field -> inclusive range
    "sample_rate": (8000, 192000),  # what the resampler and TTS fit serve (telephone .. studio)
    "seq": (END, SEQ_MAX),
    "frame_seq": (END, SEQ_MAX),
    "pts_s": (0.0, TIME_MAX_S),
    "start_s": (0.0, TIME_MAX_S),
    "end_s": (0.0, TIME_MAX_S),
    "width": (0, 7680),
    "height": (0, 4320),
    "mouth_rate": (1.0, 1000.0),
    "confidence": (0.0, 1.0),
}
MAX_BYTES: dict[str, int] = {  # bytes fields: more than this is not a chunk of a live stream
    "pcm": 8 * 1024 * 1024,
    "data": 8 * 1024 * 1024,
}
MAX_LANGS = 16
ACTIONS = ("start", "stop")


def _fail(record: Record, field: str, value: object, why: str) -> BadInputError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else f"{shown[:77]}..."
    return BadInputError(f"{record.schema_name} of session {getattr(record, 'session_id', '?')!r}: "
                         f"{field}={shown} {why}")


@cache
def _fields(cls: type) -> tuple[tuple[str, object], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _is_end(record: Record) -> bool:
    return getattr(record, "frame_seq", getattr(record, "seq", 0)) == END


def validate(record: Record, expect: tuple[type[Record], ...] = ()) -> Record:
    """`record` if a stage can take it; else BadInputError naming the first field that is wrong."""
    if expect and not isinstance(record, expect):
        raise BadInputError(f"a {record.schema_name} record where {' or '.join(c.__name__ for c in expect)} "
                            f"is expected (session {getattr(record, 'session_id', '?')!r})")
    end = _is_end(record)
    for name, hint in _fields(type(record)):
        value = getattr(record, name)
        if isinstance(value, float) and not math.isfinite(value) and not (end and math.isinf(value)):
            raise _fail(record, name, value, "is not a finite number")
        if name in LIMITS and isinstance(value, int | float) and not (end and name in ("pts_s", "start_s", "end_s")):
            lo, hi = LIMITS[name]
            if not lo <= value <= hi:
                raise _fail(record, name, value, f"is outside {lo:g}..{hi:g}")
        if name in MAX_BYTES and isinstance(value, bytes) and len(value) > MAX_BYTES[name]:
            raise _fail(record, name, f"<{len(value)} bytes>", f"is larger than {MAX_BYTES[name]} bytes")
        if hint == tuple[float, ...] and any(not math.isfinite(v) for v in value):
            raise _fail(record, name, value, "holds a value that is not a finite number")
        if name in ("target_langs",) and len(value) > MAX_LANGS:
            raise _fail(record, name, value, f"names more than {MAX_LANGS} languages")
    if not getattr(record, "session_id", "x"):
        raise _fail(record, "session_id", "", "is empty")
    if hasattr(record, "start_s") and not end and record.end_s < record.start_s:
        raise _fail(record, "end_s", record.end_s, f"is before start_s={record.start_s}")
    if isinstance(record, AudioChunk) and len(record.pcm) % 2:
        raise _fail(record, "pcm", f"<{len(record.pcm)} bytes>", "is not whole 16-bit samples")
    if isinstance(record, VideoFrame) and not end and record.encoding not in ENCODINGS:
        raise _fail(record, "encoding", record.encoding, f"is not one of {', '.join(ENCODINGS)}")
    if isinstance(record, SessionControl):
        if record.action not in ACTIONS:
            raise _fail(record, "action", record.action, f"is not one of {', '.join(ACTIONS)}")
        if record.action == "start" and not record.target_langs:
            raise _fail(record, "target_langs", record.target_langs, "is empty: nothing to dub into")
    return record
