"""Fixtures shared by the serialization tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    """A file the payloads would create if anything ever executed them."""
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "a scanned payload was executed"
