"""Keys and certificate chains for the signing tests, made once per session (key generation is
the slow part); each test signs its own fresh copy of the demo model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures.signing import KeyFiles, Pki, write_key, write_pki
from tests.conftest import CliResult


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


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., CliResult]:
    """`provscan ARGS` through the real entry point (provscan.cli.main: its error handling and
    exit codes), in this process: a child process costs about a second of imports per call.
    Tests that need a process of their own (environment, network) use the `provscan` fixture."""
    from provscan.cli import main

    def run(*args: str | Path, env: dict[str, str] | None = None) -> CliResult:
        with monkeypatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            capsys.readouterr()
            with pytest.raises(SystemExit) as exited:
                main([str(a) for a in args])
            out, err = capsys.readouterr()
        return CliResult(int(exited.value.code or 0), out, err)

    return run
