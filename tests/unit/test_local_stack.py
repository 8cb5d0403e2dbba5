"""`livedub bench --transport kafka` with no broker stops at once and says how to start one (it used
to run the embedded profiles for about five minutes first, then fail with librdkafka's errors)."""

from __future__ import annotations

import socket
import time

import pytest

from streams.cli import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(60)
def test_a_kafka_benchmark_without_a_broker_stops_at_once_naming_the_command(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LIVEDUB_KAFKA__BOOTSTRAP_SERVERS", f"127.0.0.1:{_closed_port()}")
    started = time.monotonic()
    assert main(["bench", "--transport", "kafka", "--out", str(tmp_path)]) == 2
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    assert "no Kafka broker answers at 127.0.0.1:" in err and "deploy/local/livedub-local.sh up" in err
    assert not list(tmp_path.iterdir())  # nothing was run
