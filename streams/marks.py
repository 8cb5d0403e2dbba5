"""Effectively once at every hop: what a stage already emitted, recovered from its output topic.

After a worker dies between producing outputs and committing its input, its next life is fed those
inputs again (at least once), and a stateful stage replays a whole open session to rebuild its
state: the segmenter then cuts the same segments with the same seqs. Without this, those came out
twice on `segments` and every hop after it. The output topic itself is the persisted high-water
mark: on assignment the worker reads its output partitions from the time of the oldest input it
has not committed (session.control aside: streams/worker.py), and notes per (session, language)
the highest seq written and whether the end marker was. Then
* an output at or below its mark is not sent again (outputs of one session come in seq order);
* an input whose every output is already written is not processed again (no model call), except
  by a stateful stage (it must replay to rebuild) — its outputs are suppressed instead.

Faust-streaming's own `processing_guarantee="exactly_once"` was not used: its open issues report
duplicates after kills and crashes on rebalance with it (faust-streaming/faust#323, #517, #177).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from workers.records import Record

END = -1  # workers.streaming.END


def lang_of(record: Record) -> str:
    """The output stream a record belongs to within its session ("" for language-less hops)."""
    return getattr(record, "target_lang", "") or ""


def _seq(record: Record) -> int:
    return record.frame_seq if hasattr(record, "frame_seq") else record.seq


@dataclass
class Mark:
    seq: int = -1  # highest non-marker seq written
    ended: bool = False  # the end marker was written


class OutputMarks:
    def __init__(self) -> None:
        self.marks: dict[tuple[str, str], Mark] = {}
        self.suppressed = 0

    def recover(self, written: Iterable[Record]) -> None:
        """Note records already on the output topic (in offset order)."""
        for r in written:
            m = self.marks.setdefault((r.session_id, lang_of(r)), Mark())
            if _seq(r) == END:
                m.ended = True
            else:
                m.seq = max(m.seq, _seq(r))

    def forget(self, sessions: Iterable[str]) -> None:
        drop = set(sessions)
        self.marks = {k: v for k, v in self.marks.items() if k[0] not in drop}

    def fresh(self, outs: list[Record]) -> list[Record]:
        """The outputs not written before. A session's mark is dropped once its end marker passes
        (sent or suppressed): a later session may reuse the id."""
        if not self.marks:
            return outs
        keep = []
        for o in outs:
            key = (o.session_id, lang_of(o))
            m = self.marks.get(key)
            if m is None:
                keep.append(o)
            elif _seq(o) == END:
                del self.marks[key]
                if m.ended:
                    self.suppressed += 1
                else:
                    keep.append(o)
            elif _seq(o) <= m.seq or m.ended:
                self.suppressed += 1
            else:
                keep.append(o)
        return keep

    def done(self, session_id: str, seq: int, langs: Iterable[str]) -> bool:
        """Every output of input `seq` of the session (one per language in `langs`) is written."""
        if not self.marks or seq == END:
            return False
        marks = [self.marks.get((session_id, lang)) for lang in langs]
        return bool(marks) and all(m is not None and (m.ended or m.seq >= seq) for m in marks)
