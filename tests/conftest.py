"""Shared fixtures: generated model directories and a way to run the CLI as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fixtures.models import build_demo_model

REPO = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One worker per core (pytest -n auto): torch's own pool of a thread per core in each
    # worker, and in every provscan it starts, would put twice as many spinning OpenMP threads
    # as cores on the machine, and the torch tests ran ten times slower. Set before any import
    # of torch; the children inherit it.
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
GOLDEN_UPDATE = os.environ.get("PROVSCAN_UPDATE_GOLDEN") == "1"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> dict:
        return json.loads(self.out)


def run_provscan(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> CliResult:
    """Run `python -m provscan ARGS` in a child process, exactly as a CI job would."""
    proc = subprocess.run(
        [sys.executable, "-m", "provscan", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**{k: v for k, v in os.environ.items() if k != "COLUMNS"}, **(env or {})},
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def provscan() -> Callable[..., CliResult]:
    return run_provscan


@pytest.fixture
def demo_model(tmp_path: Path) -> Path:
    """A fresh copy of the clean demo model, safe to modify."""
    return build_demo_model(tmp_path / "tiny-llama")


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
            # pytest-xdist sets COLUMNS=80 in its workers; a user's pipe or CI log has none.
            patch.delenv("COLUMNS", raising=False)
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            capsys.readouterr()
            with pytest.raises(SystemExit) as exited:
                main([str(a) for a in args])
            out, err = capsys.readouterr()
        return CliResult(int(exited.value.code or 0), out, err)

    return run
