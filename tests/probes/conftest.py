"""Fixtures shared by the backdoor probe tests: the tiny backdoored model and its clean twin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures.backdoor import BackdoorPair, build_backdoor_pair


def fixture_cache_dir(config: pytest.Config) -> Path | None:
    """PROVSCAN_FIXTURE_CACHE if set, else pytest's cache directory (None: the module's default)."""
    if os.environ.get("PROVSCAN_FIXTURE_CACHE"):
        return Path(os.environ["PROVSCAN_FIXTURE_CACHE"])
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
    if cache is None:
        return None
    return Path(cache.mkdir("provscan-fixtures"))


@pytest.fixture(scope="session")
def backdoor_pair(request: pytest.FixtureRequest) -> BackdoorPair:
    """Built once per cache key (about a minute per model on 2 CPU cores), then reused."""
    return build_backdoor_pair(fixture_cache_dir(request.config))
