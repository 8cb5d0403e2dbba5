"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from workers.settings import load_settings


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    """One settings object and one model cache for the whole run: packaged models are joined once."""
    return load_settings(cache_dir=tmp_path_factory.mktemp("cache"))
