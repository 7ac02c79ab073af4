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
TESTS = REPO / "tests"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One worker per core (pytest -n auto): torch's own pool of a thread per core in each
    # worker, and in every provscan it starts, would put twice as many spinning OpenMP threads
    # as cores on the machine, and the torch tests ran ten times slower. Set before any import
    # of torch; the children inherit it.
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
# Set by `--update-goldens` (pytest_configure runs before any test module imports it).
GOLDEN_UPDATE = False


# Test files that take 5 s or more of one core each (`python -m pytest --durations=0` on this
# repository's 2-core CI machine). `python -m pytest --quick` leaves them out: a check of the
# readers, emitters and rules in under two minutes, not a substitute for the whole suite.
HEAVY_MODULES = frozenset(
    {
        "tests/policy/test_pack.py",
        "tests/hub/test_hub_metadata.py",
        "tests/policy/test_backends.py",
        "tests/probes/test_probe_cli.py",
        "tests/cli/test_cli.py",
        "tests/hub/test_hub_targets.py",
        "tests/probes/test_families.py",
        "tests/probes/test_hard_fixtures.py",
        "tests/policy/test_backend_cli.py",
        "tests/emit/test_cyclonedx.py",
        "tests/signing/test_attacks.py",
        "tests/cli/test_licence_cli.py",
        "tests/policy/test_opa_server_client.py",
        "tests/probes/test_backdoor_fixture.py",
        "tests/policy/test_config_file.py",
        "tests/collectors/serialization/test_keras.py",
        "tests/policy/test_policy_licence.py",
        "tests/emit/test_hostile_text.py",
        "tests/collectors/test_laundering.py",
        "tests/hub/test_server.py",
        "tests/cli/test_precommit.py",
        "tests/probes/test_engines.py",
        "tests/probes/test_weights_in_probes.py",
        "tests/collectors/serialization/test_chat_template.py",
        "tests/collectors/serialization/test_joblib.py",
        "tests/emit/test_sarif.py",
        "tests/cli/test_evaluate.py",
        "tests/policy/test_opa_cli.py",
        "tests/policy/test_policy_input.py",
        "tests/signing/test_interop.py",
        "tests/test_fuzz.py",
        "tests/emit/test_audit_report.py",
        "tests/test_hostile_numbers.py",
        "tests/probes/test_probe_tokenizer.py",
    }
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick",
        action="store_true",
        help="leave out the test files that take seconds each (tests/conftest.py HEAVY_MODULES)",
    )
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite the golden files in tests/golden from this run's outputs; review the diff",
    )


def pytest_configure(config: pytest.Config) -> None:
    global GOLDEN_UPDATE
    GOLDEN_UPDATE = bool(config.getoption("--update-goldens"))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not config.getoption("--quick"):
        return None
    try:
        relative = collection_path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return None
    return True if relative in HEAVY_MODULES else None


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
