"""Policy backends: every available engine decides the shipped packs' table alike.

Backends compared with the embedded regopy engine, case by case (decision and the set of
(rule, level, msg) reasons), and with each case's expected.yaml:

- the `opa` binary (`opa eval`) and a real `opa run --server`: SKIPPED when `opa` is not on
  PATH (it cannot be installed on the development machine: not on PyPI, Debian or npm);
- provscan's OPA REST client against fixtures/opa_server.py, a stand-in server that
  evaluates with regopy: it checks the client's protocol, not OPA's semantics.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from fixtures.opa_server import OpaServer
from provscan.policy.backends import REGOPY, PolicyBackend
from provscan.policy.engine import evaluate
from provscan.policy.testing import Expected, compare_verdict, evaluate_case, find_cases, load_case
from provscan.report import Report, Verdict
from provscan.resources import default_policy_dir

PACKS = (default_policy_dir(), default_policy_dir().parent / "production")
OPA = shutil.which("opa")
NO_OPA = "opa binary not on PATH: it is not on PyPI, Debian or npm; install OPA to compare it too"


@dataclass(frozen=True)
class Case:
    name: str
    pack: Path
    report: Report
    expected: Expected
    reference: Verdict  # regopy's verdict


def _reasons(verdict: Verdict) -> set[tuple[str, str, str]]:
    return {(r.rule, r.level, r.msg) for r in verdict.reasons}


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    loaded: list[Case] = []
    for pack in PACKS:
        for name, case_dir in find_cases([pack]):
            report, expected = load_case(case_dir)
            verdict = evaluate(report, [pack], expected.config, backend=REGOPY)
            loaded.append(Case(name, pack, report, expected, verdict))
    return loaded


def _check_backend(cases: list[Case], backend: PolicyBackend, engine: str) -> None:
    problems: list[str] = []
    for case in cases:
        verdict = evaluate_case(case.report, [case.pack], case.expected.config, 60.0, backend)
        assert verdict.policy.engine == engine
        if verdict.decision != case.reference.decision:
            problems.append(
                f"{case.name}: {verdict.decision.value} != regopy {case.reference.decision.value}"
            )
        if _reasons(verdict) != _reasons(case.reference):
            diff = _reasons(verdict) ^ _reasons(case.reference)
            problems.append(f"{case.name}: reasons differ from regopy's: {sorted(diff)}")
        problems += [f"{case.name}: {p}" for p in compare_verdict(case.expected, verdict)]
    assert not problems, "\n".join(problems)


# Slow: the `cases` fixture runs every case of both packs through regopy (about 35 s); the
# default run checks the default pack's table in tests/policy/test_pack.py.
@pytest.mark.slow
def test_the_table_covers_both_shipped_packs(cases: list[Case]) -> None:
    packs = {case.pack.name for case in cases}
    assert packs == {"default", "production"}
    assert len(cases) > 50


@pytest.mark.slow  # the same table run as above
def test_regopy_decides_every_case_as_expected(cases: list[Case]) -> None:
    problems = [f"{c.name}: {p}" for c in cases for p in compare_verdict(c.expected, c.reference)]
    assert not problems, "\n".join(problems)
    assert {c.reference.policy.engine for c in cases} == {"regopy"}


@pytest.mark.slow  # every table case of both packs through the stand-in server: 30 s
def test_opa_server_client_against_the_stand_in_server_matches_regopy(cases: list[Case]) -> None:
    with OpaServer() as opa:
        _check_backend(cases, PolicyBackend("opa-server", opa_url=opa.url), "opa-server")


@pytest.mark.skipif(OPA is None, reason=NO_OPA)
def test_opa_binary_matches_regopy(cases: list[Case]) -> None:
    _check_backend(cases, PolicyBackend("opa"), "opa")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _real_opa_server() -> Iterator[str]:
    assert OPA is not None
    url = f"http://127.0.0.1:{_free_port()}"
    argv = [OPA, "run", "--server", "--addr", url.removeprefix("http://"), "--log-level", "error"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx2.HTTPError):
                if httpx2.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"`opa run --server` did not become healthy at {url}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.skipif(OPA is None, reason=NO_OPA)
def test_a_real_opa_server_matches_regopy(cases: list[Case]) -> None:
    with _real_opa_server() as url:
        _check_backend(cases, PolicyBackend("opa-server", opa_url=url), "opa-server")
