"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from workers.settings import load_settings

# Tests that run real servers, processes and models on two shared cores get one rerun on failure
# (pytest-rerunfailures): their timing and the judges' borderline scores vary from run to run. A
# rerun shows as R in the summary and in `-ra`'s list; a test must still pass to pass. Known
# sources, each an open defect: the bot once got no audio from a speaker right after a server
# restart, and Whisper base once heard the first Portuguese sentence as other words (chrF 17.7
# against the 20 asked). The chaos test's "no data in 120 s" was sessions lost to kills, not timing
# (streams/ordered_acks.py, SegmentStep's early audio): it gets no more reruns than the others.
RERUN = {"kafka", "live"}
RERUNS: dict[str, int] = {}  # node id -> reruns, where one test needs more than one


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if RERUN & set(item.keywords) or "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.flaky(reruns=RERUNS.get(item.nodeid, 1), reruns_delay=2))


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    """One settings object and one model cache for the whole run: packaged models are joined once."""
    return load_settings(cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def loaded(settings):
    """`loaded(BackendClass)`: that backend, built and loaded once per run, closed at its end.

    Modules share it, so a model is loaded once however many test files use it.
    """
    backends: dict[type, object] = {}

    def get(cls):
        if cls not in backends:
            backend = cls(settings)
            backend.load()
            backends[cls] = backend
        return backends[cls]

    yield get
    for backend in backends.values():
        backend.close()
