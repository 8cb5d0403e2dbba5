"""Acks handed to Faust in offset order, per topic-partition.

A stateful step retains records (an open session's start and audio) while later records of the
same partition are done at once (the session's stop on session.control, another session's chunks).
Faust commits the first run of consecutive acked offsets and skips a single unacked offset at its
head as if it were a compaction gap, and skips the head check altogether while nothing is
committed on the partition yet (faust-streaming/faust#606, open; fix proposed in #707). So acking
the stop before the held start committed the start: after a kill the replay had audio but no start,
and the segmenter dropped the rest of the session (the kill-chaos test lost two of four sessions).

Here an ack waits until every earlier consumed offset of its partition is acked too, so what Faust
sees acked is always one run from the committed offset, and the commit never passes a held record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Ack = Callable[[Any], Awaitable[Any]]
TP = tuple[str, int]


def _tp(event: Any) -> tuple[TP, int]:
    msg = event.message
    return (msg.topic, msg.partition), msg.offset


class OrderedAcks:
    def __init__(self) -> None:
        # per partition, in consumption (= offset) order: offset -> the event once acked, else None
        self.pending: dict[TP, dict[int, Any]] = {}

    def consumed(self, event: Any) -> None:
        """Note an event before it is handled: acks of later offsets wait for it."""
        tp, offset = _tp(event)
        self.pending.setdefault(tp, {}).setdefault(offset, None)

    async def ack(self, event: Any, ack: Ack, strip: Callable[[Any], Any] = lambda e: e) -> None:
        """Ack `event` and every acked event after it, once nothing before them is unacked; an
        event left waiting is passed through `strip` (its bytes need not be kept)."""
        tp, offset = _tp(event)
        queue = self.pending.get(tp)
        if queue is None or offset not in queue:
            await ack(event)  # not consumed through here (or its partition was revoked): as it comes
            return
        if next(iter(queue)) != offset:  # the head is always unacked: wait for it
            queue[offset] = strip(event)
            return
        queue[offset] = event
        while queue:
            first = next(iter(queue))
            ready = queue[first]
            if ready is None:
                return
            del queue[first]
            await ack(ready)
        del self.pending[tp]

    def waiting(self) -> int:
        """Acked events held back behind an unacked one."""
        return sum(e is not None for q in self.pending.values() for e in q.values())

    def forget(self, tps: Iterable[TP]) -> None:
        """Drop revoked partitions: their records are consumed again by whoever owns them next."""
        for tp in tps:
            self.pending.pop(tp, None)
