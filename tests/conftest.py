"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from workers.settings import load_settings


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
