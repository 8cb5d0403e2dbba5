"""A free TCP port on 127.0.0.1 for a server a test starts (the one the benchmarks use)."""

from __future__ import annotations

from workers.ports import free_port

__all__ = ["free_port"]
