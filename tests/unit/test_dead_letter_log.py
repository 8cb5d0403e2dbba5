"""A flood of bad records costs one log line per kind and window, not one per record."""

from __future__ import annotations

import logging

from streams.dead_letter_log import DeadLetterLog


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_first_of_each_kind_is_logged_and_the_rest_summed_up(caplog):
    clock = _Clock()
    dl = DeadLetterLog(logging.getLogger("test.dlq"), "segment", window_s=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, "test.dlq"):
        for i in range(1000):
            dl("BadInputError", f"media.audio[0]@{i}", ValueError("sample_rate 0"))
        dl("SchemaError", "media.audio[0]@1000", ValueError("magic byte"))
        assert [r.getMessage() for r in caplog.records] == [
            "segment: media.audio[0]@0 -> DLQ: sample_rate 0", "segment: media.audio[0]@1000 -> DLQ: magic byte"]
        clock.t = 10.5
        dl.tick()
        assert caplog.records[-1].getMessage() == (
            "segment: 999 more dead letters in the last 10 s (BadInputError 999): see the DLQ topic")
        dl("BadInputError", "media.audio[0]@1001", ValueError("sample_rate 0"))  # a new window logs again
        assert caplog.records[-1].getMessage() == "segment: media.audio[0]@1001 -> DLQ: sample_rate 0"
        n = len(caplog.records)
        clock.t = 25.0
        dl.tick()  # nothing held back: no summary
        assert len(caplog.records) == n
