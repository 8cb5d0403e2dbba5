"""Acks reach Faust in offset order per partition, whatever order the stage finishes records in."""

from __future__ import annotations

import asyncio

from faust.types import Message

from streams.ordered_acks import OrderedAcks


class Event:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.message = Message(topic, partition, offset, 1.0, 0, None, b"k", b"bytes", None)


def run(acks: OrderedAcks, events: list[Event], order: list[int]) -> list[tuple[int, int]]:
    """Consume `events`, ack them in `order` (indexes); what Faust was handed, as (partition, offset)."""
    handed: list[tuple[int, int]] = []

    async def ack(e: Event) -> None:
        handed.append((e.message.partition, e.message.offset))

    async def go() -> None:
        for e in events:
            acks.consumed(e)
        for i in order:
            await acks.ack(events[i], ack)

    asyncio.run(go())
    return handed


def test_an_ack_waits_for_every_earlier_offset_of_its_partition_only():
    acks = OrderedAcks()
    events = [Event("t", 0, 10), Event("t", 0, 11), Event("t", 1, 4), Event("t", 0, 12)]
    assert run(acks, events, [1, 3, 2]) == [(1, 4)]  # partition 1 is not held up by partition 0
    assert acks.waiting() == 2
    handed: list[tuple[int, int]] = []

    async def ack(e: Event) -> None:
        handed.append((e.message.partition, e.message.offset))

    asyncio.run(acks.ack(events[0], ack))
    assert handed == [(0, 10), (0, 11), (0, 12)] and not acks.pending


def test_a_waiting_event_is_stripped_and_a_revoked_partition_forgotten():
    acks = OrderedAcks()
    events = [Event("t", 0, 0), Event("t", 0, 1)]
    for e in events:
        acks.consumed(e)

    async def nothing(e: Event) -> None:
        raise AssertionError("nothing may be acked before offset 0")

    def strip(e: Event) -> Event:
        e.message.value = None
        return e

    asyncio.run(acks.ack(events[1], nothing, strip))
    assert events[1].message.value is None  # kept to be acked later, not its bytes
    acks.forget([("t", 0)])
    assert run(acks, [Event("t", 0, 0)], []) == [] and acks.pending == {("t", 0): {0: None}}


def test_an_event_it_never_saw_is_acked_as_it_comes():
    handed: list[int] = []

    async def ack(e: Event) -> None:
        handed.append(e.message.offset)

    asyncio.run(OrderedAcks().ack(Event("t", 0, 7), ack))
    assert handed == [7]
