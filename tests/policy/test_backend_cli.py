"""The policy backends from the command line: --policy-engine, --opa-url, policy push, policy test.

The OPA server is fixtures/opa_server.py, a stand-in (no OPA binary can be installed here): it
checks provscan's flags and REST protocol end to end, not OPA's semantics.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fixtures.opa_server import OpaServer
from tests.conftest import run_provscan


@pytest.fixture
def opa() -> OpaServer:
    with OpaServer() as server:
        yield server


def _reasons(result) -> set[tuple[str, str]]:
    return {(r["rule"], r["level"]) for r in result.json()["verdict"]["reasons"]}


def test_check_on_an_opa_server_gives_the_embedded_verdict(
    opa: OpaServer, demo_model: Path, tmp_path: Path
) -> None:
    (tmp_path / "provscan.toml").write_text('[signatures]\nunsigned = "review"\n')
    pushed = run_provscan("policy", "push", "--opa-url", opa.url, cwd=tmp_path)
    assert pushed.code == 0, pushed.err
    assert "module(s) uploaded" in pushed.out and "policy digest sha256:" in pushed.out
    local = run_provscan("check", str(demo_model), "-q", "--format", "json", cwd=tmp_path)
    remote = run_provscan(
        "check", str(demo_model), "-q", "--format", "json", "--opa-url", opa.url,
        "--policy", "default", cwd=tmp_path,
    )  # fmt: skip
    assert (local.code, remote.code) == (4, 4), remote.err
    assert _reasons(local) == _reasons(remote)
    assert ("POL-SIG-UNSIGNED", "review") in _reasons(remote)
    policy = remote.json()["verdict"]["policy"]
    assert policy["engine"] == "opa-server"
    assert local.json()["verdict"]["policy"]["engine"] == "regopy"
    # check itself never changes what the server holds.
    assert not [m for m, *_ in opa.requests[-6:] if m in ("PUT", "DELETE")]


def test_a_server_holding_other_packs_is_refused(
    opa: OpaServer, demo_model: Path, tmp_path: Path
) -> None:
    assert run_provscan("policy", "push", "--opa-url", opa.url, cwd=tmp_path).code == 0
    result = run_provscan(
        "check", str(demo_model), "-q", "--opa-url", opa.url, "--policy", "production",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 3
    assert "provscan policy push" in result.err


def test_without_policy_the_server_decides_with_its_own_config(
    opa: OpaServer, demo_model: Path, tmp_path: Path
) -> None:
    assert run_provscan("policy", "push", "--opa-url", opa.url, "--policy", "production").code == 0
    result = run_provscan("check", str(demo_model), "-q", "--opa-url", opa.url, cwd=tmp_path)
    assert result.code == 1, result.err  # the production pack the server holds: unsigned denies
    assert "POL-SIG-REQUIRED" in result.out
    # A local config that the server would silently ignore is a usage error instead.
    (tmp_path / "provscan.toml").write_text("[licence]\ncommercial_use = true\n")
    result = run_provscan("check", str(demo_model), "-q", "--opa-url", opa.url, cwd=tmp_path)
    assert result.code == 2
    assert "licence from the config file would be ignored" in result.err


def test_policy_test_runs_the_table_on_the_server(opa: OpaServer, tmp_path: Path) -> None:
    result = run_provscan(
        "policy", "test", "--policy", "production", "--opa-url", opa.url, cwd=tmp_path
    )
    assert result.code == 0, result.out + result.err
    assert result.out.strip().endswith("passed, 0 failed")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--opa-url", "http://127.0.0.1:1", "--policy-engine", "opa"], "exclude each other"),
        (["--opa-token-env", "TOKEN"], "--opa-token-env applies to --opa-url only"),
        (["--opa-url", "ftp://opa.example"], "http"),
        (["--opa-url", "https://user:pw@opa.example"], "credentials"),
    ],
)
def test_bad_backend_flags_are_usage_errors(demo_model: Path, args: list[str], words: str) -> None:
    result = run_provscan("check", str(demo_model), "-q", *args)
    assert result.code == 2, result.out + result.err
    assert words in result.err


def test_an_unreachable_server_fails_closed(demo_model: Path) -> None:
    result = run_provscan("check", str(demo_model), "-q", "--opa-url", "http://127.0.0.1:9")
    assert result.code == 3
    assert "127.0.0.1:9" in result.err
    assert "VERDICT" not in result.out


def test_the_opa_binary_backend_when_it_is_missing(demo_model: Path, tmp_path: Path) -> None:
    if shutil.which("opa"):
        result = run_provscan("check", str(demo_model), "-q", "--policy-engine", "opa")
        assert result.code == 0, result.err
        return
    missing = tmp_path / "no-such-opa"
    result = run_provscan(
        "check", str(demo_model), "-q", "--policy-engine", "opa", "--opa-binary", str(missing)
    )
    assert result.code == 3
    assert str(missing) in result.err
