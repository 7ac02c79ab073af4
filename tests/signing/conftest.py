"""Keys and certificate chains for the signing tests, made once per session (key generation is
the slow part); each test signs its own fresh copy of the demo model."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.signing import KeyFiles, Pki, write_key, write_pki


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session")
def key(key_dir: Path) -> KeyFiles:
    """The publisher's P-256 key: the one tests give provscan as trusted."""
    return write_key(key_dir, "publisher")


@pytest.fixture(scope="session")
def other_key(key_dir: Path) -> KeyFiles:
    """Someone else's P-256 key."""
    return write_key(key_dir, "stranger")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return write_pki(tmp_path_factory.mktemp("pki"), "Publisher")


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """An unrelated CA (and its own chain), trusted by nobody who trusts `pki`."""
    return write_pki(tmp_path_factory.mktemp("other-pki"), "Unrelated")
