"""A policy that cannot run at all, from the command line: one message, exit 3, for `check`
and for `policy test` alike (never one failed case per table test)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from provscan.resources import default_policy_dir
from tests.conftest import CliResult

DEFAULT = default_policy_dir()
HEADER = "package provscan.main\n\nimport rego.v1\n\n"
RULE = 'deny contains {"rule": "POL-X", "msg": "x"} if {\n'

# (file body, the problem as reported): each mistake once, where it is.
BROKEN = {
    "unclosed-brace": (
        HEADER + RULE + "\tinput.a == 1\n\n" + 'warn contains {"rule": "Y", "msg": "y"} if {\n'
        "\tinput.b == 2\n}\n",
        "foo.rego:5:48: parse error: '{' is not closed",
    ),
    "bad-keyword": (
        HEADER + 'deny contains {"rule": "POL-X", "msg": "x"} iff {\n\tinput.a == 1\n}\n',
        "foo.rego:5:6: parse error: invalid rule head",
    ),
    "stray-token": (
        HEADER + RULE + "\tinput.a == 1\n} )\n",
        "foo.rego:7:3: parse error: syntax error at ')'",
    ),
}


def broken_pack(tmp_path: Path, body: str) -> Path:
    """A pack whose foo.rego does not parse, with one table-test case."""
    pack = tmp_path / "x"
    case = pack / "tests" / "clean"
    case.mkdir(parents=True)
    (pack / "foo.rego").write_text(body)
    shutil.copy(DEFAULT / "tests" / "clean_approve" / "input.json", case / "input.json")
    (case / "expected.yaml").write_text("verdict: approve\n")
    return pack


def error_line(result: CliResult) -> str:
    return result.err.splitlines()[0]


@pytest.mark.parametrize("mistake", sorted(BROKEN))
def test_a_broken_rego_file_is_named_once_by_check_and_policy_test(
    cli: Callable[..., CliResult], demo_model: Path, tmp_path: Path, mistake: str
) -> None:
    body, problem = BROKEN[mistake]
    pack = broken_pack(tmp_path, body)
    expected = f"provscan: error: policy could not be loaded: {pack}/{problem}"
    checked = cli("check", demo_model, "--policy", pack, "--quiet")
    assert (checked.code, error_line(checked)) == (3, expected), checked.err
    tested = cli("policy", "test", "--policy", pack)
    assert (tested.code, error_line(tested)) == (3, expected), tested.out + tested.err
    assert tested.out == ""  # no FAIL line per case
    assert "unknown error" not in tested.err


def test_policy_test_without_the_opa_binary_says_so_once(
    cli: Callable[..., CliResult], demo_model: Path, tmp_path: Path
) -> None:
    # The binary is looked up on PATH: an empty PATH is a machine without opa.
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {"PATH": str(empty)}
    checked = cli("check", demo_model, "--quiet", "--policy-engine", "opa", env=env)
    tested = cli("policy", "test", "--policy-engine", "opa", env=env)
    assert checked.code == tested.code == 3, tested.out + tested.err
    assert tested.out == ""
    assert error_line(tested) == "provscan: error: the opa binary 'opa' was not found"
    assert tested.err == checked.err


# A stand-in for the `opa` binary (it cannot be installed here): `opa eval` answers a
# parse error the way OPA reports one, the same error twice, located in the first module.
FAKE_OPA = """#!{python}
import json, pathlib, sys
if sys.argv[1:] == ["version"]:
    print("Version: 1.99.0-fake")
    sys.exit(0)
args = sys.argv[1:]
folder = pathlib.Path(args[args.index("--data") + 1])
first = str(sorted(p for p in folder.rglob("*") if p.is_file())[0])
error = {{"code": "rego_parse_error", "message": "unexpected eof token",
          "location": {{"file": first, "row": 5, "col": 44}}}}
print(json.dumps({{"errors": [error, error]}}))
sys.exit(1)
"""


def test_an_opa_parse_error_stops_policy_test_once(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    opa = folder / "opa"
    opa.write_text(FAKE_OPA.format(python=sys.executable))
    opa.chmod(0o755)
    env = {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}
    result = cli("policy", "test", "--policy-engine", "opa", env=env)
    first = sorted(DEFAULT.glob("*.rego"))[0]  # the modules are handed over in file order
    assert result.code == 3, result.out + result.err
    assert result.out == ""
    assert error_line(result) == (
        "provscan: error: opa eval failed with exit status 1: "
        f"{first}:5:44: parse error: unexpected eof token"
    )


def test_distinct_errors_are_counted_not_repeated(
    cli: Callable[..., CliResult], demo_model: Path, tmp_path: Path
) -> None:
    # Two different mistakes in one module: the first is reported, the other counted.
    pack = broken_pack(tmp_path, HEADER + RULE + "\tinput.a == 1\n}\n\nx := }\ny := 1 +\n")
    result = cli("check", demo_model, "--policy", pack, "--quiet")
    assert (result.code, error_line(result)) == (
        3,
        f"provscan: error: policy could not be loaded: {pack}/foo.rego:9:3: "
        "parse error: invalid assignment operator (and 1 other error)",
    )
