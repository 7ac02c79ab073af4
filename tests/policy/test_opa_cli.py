"""The `opa` binary backend: what provscan hands `opa eval`, and how it reads every answer.

The real `opa` cannot be installed here (not on PyPI, Debian or npm), so these tests put a
FAKE `opa` on PATH: a small Python script that stands in for the binary, records what it
was given and prints canned output (or fails, or hangs). The real binary, where present,
is compared with regopy in test_backends.py.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from provscan.errors import ExitCode, PolicyError
from provscan.policy import opa_cli
from provscan.policy.backends import PolicyBackend
from provscan.policy.engine import evaluate
from provscan.report import Decision, Report
from provscan.resources import default_policy_dir

DEFAULT = default_policy_dir()
CLEAN = DEFAULT / "tests" / "clean_approve" / "input.json"
DOCUMENT = {"deny": [], "review": [], "warn": [{"rule": "POL-X", "msg": "from the fake opa"}]}

# Stand-in for the `opa` binary (which cannot be installed on this machine). MODE picks
# the canned behaviour of `opa eval`; `opa version` prints OPA's version banner.
FAKE_OPA = """#!{python}
import json, os, pathlib, resource, sys, time
mode = os.environ["FAKE_OPA_MODE"]
if sys.argv[1:] == ["version"]:
    if mode == "version-fails":
        sys.exit(2)
    print("Version: 1.99.0-fake\\nBuild Commit: 0\\nGo Version: go1.0")
    sys.exit(0)
args = sys.argv[1:]
data = [args[i + 1] for i, a in enumerate(args) if a == "--data"]
modules = sorted(p for p in pathlib.Path(data[0]).rglob("*") if p.is_file())
record = {{
    "args": args,
    "files": [str(p.relative_to(data[0])) for p in modules],
    "data": json.loads(pathlib.Path(data[1]).read_text()),
    "stdin": json.loads(sys.stdin.read()),
    "cpu_limit": resource.getrlimit(resource.RLIMIT_CPU),
    "core_limit": resource.getrlimit(resource.RLIMIT_CORE),
    "gomemlimit": os.environ.get("GOMEMLIMIT"),
}}
pathlib.Path(os.environ["FAKE_OPA_LOG"]).write_text(json.dumps(record))
doc = json.loads(os.environ.get("FAKE_OPA_DOC", "null"))
if mode == "ok":
    print(json.dumps({{"result": [{{"expressions": [{{"value": doc, "text": args[-1]}}]}}]}}))
elif mode == "undefined":
    print("{{}}")
elif mode == "errors":
    where = {{"file": str(modules[0]), "row": 3, "col": 1}}
    print(json.dumps({{"errors": [{{"message": "rego_parse_error: unexpected token", "location": where}}]}}))
    sys.exit(1)
elif mode == "crash":
    sys.stderr.write("panic: runtime error\\n")
    sys.exit(2)
elif mode == "garbage":
    print("this is not json")
elif mode == "raw":
    print(os.environ["FAKE_OPA_RAW"])
elif mode == "huge":
    sys.stdout.write("x" * 100000)
elif mode == "hang":
    time.sleep(60)
elif mode == "spin":
    while True:
        pass
"""


@pytest.fixture
def fake_opa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "opa"
    script.write_text(FAKE_OPA.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "opa-log.json"
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_OPA_LOG", str(log))
    monkeypatch.setenv("FAKE_OPA_DOC", json.dumps(DOCUMENT))
    monkeypatch.setenv("FAKE_OPA_MODE", "ok")
    return log


def run(timeout_s: float = 20.0) -> Any:
    report = Report.model_validate(json.loads(CLEAN.read_text()))
    return evaluate(report, [DEFAULT], {"x": 1}, timeout_s=timeout_s, backend=PolicyBackend("opa"))


def test_opa_eval_gets_the_modules_config_and_report(fake_opa: Path) -> None:
    verdict = run()
    assert verdict.decision is Decision.APPROVE
    assert [(r.rule, r.level) for r in verdict.reasons] == [("POL-X", "warn")]
    assert (verdict.policy.engine, verdict.policy.engine_version) == ("opa", "1.99.0-fake")
    record = json.loads(fake_opa.read_text())
    assert record["args"][:4] == ["eval", "--format", "json", "--stdin-input"]
    assert record["args"][-1] == "data.provscan.main"
    # Only the pack's modules: no tests/**/input.json, no data.yaml (it would become data).
    assert all(name.endswith(".rego") for name in record["files"])
    assert len(record["files"]) == len(list(DEFAULT.glob("*.rego")))
    assert record["data"]["provscan"]["config"]["x"] == 1
    assert record["stdin"]["schema_version"] == json.loads(CLEAN.read_text())["schema_version"]


def test_the_opa_digest_is_the_local_one(fake_opa: Path) -> None:
    report = Report.model_validate(json.loads(CLEAN.read_text()))
    regopy = evaluate(report, [DEFAULT], {"x": 1})
    assert run().policy.digest == regopy.policy.digest


@pytest.mark.parametrize(
    ("mode", "match"),
    [
        ("undefined", r"data.provscan.main is undefined"),
        ("errors", r"exit status 1: \S*/default/\w+\.rego:3:1: rego_parse_error: unexpected token"),
        ("crash", "exit status 2: panic: runtime error"),
        ("garbage", "unparseable output"),
        ("version-fails", "`opa version` failed"),
    ],
)
def test_failures_are_policy_errors(
    fake_opa: Path, monkeypatch: pytest.MonkeyPatch, mode: str, match: str
) -> None:
    monkeypatch.setenv("FAKE_OPA_MODE", mode)
    with pytest.raises(PolicyError, match=match) as caught:
        run()
    assert caught.value.exit_code is ExitCode.INCOMPLETE
    assert "provscan-opa-" not in str(caught.value)  # temp paths are named as pack files


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ('{"result": []}', "unexpected shape"),
        ('{"result": [{"expressions": []}]}', "exactly one expression"),
        ('{"result": [{"expressions": [{"text": "x"}]}]}', "without a value"),
        (
            '{"result": [{"expressions": [{"value": {"deny": {"a": true}}}]}]}',
            "'deny' is not a set",
        ),
        ('{"errors": [{"message": "boom"}]}', "reported errors: boom"),
        ("[]", "unparseable output"),
    ],
)
def test_output_of_the_wrong_shape_fails_closed(
    fake_opa: Path, monkeypatch: pytest.MonkeyPatch, raw: str, match: str
) -> None:
    monkeypatch.setenv("FAKE_OPA_MODE", "raw")
    monkeypatch.setenv("FAKE_OPA_RAW", raw)
    with pytest.raises(PolicyError, match=match):
        run()


def test_a_hanging_opa_is_killed_at_the_timeout(
    fake_opa: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_OPA_MODE", "hang")
    start = time.monotonic()
    with pytest.raises(PolicyError, match="timed out"):
        run(timeout_s=2.0)
    assert time.monotonic() - start < 6


def test_opa_runs_with_a_cpu_limit_no_core_and_a_go_memory_limit(fake_opa: Path) -> None:
    report = Report.model_validate(json.loads(CLEAN.read_text()))
    evaluate(
        report,
        [DEFAULT],
        {},
        timeout_s=20.0,
        backend=PolicyBackend("opa"),
        memory_limit=300 * 1024 * 1024,
        cpu_limit_s=7,
    )
    record = json.loads(fake_opa.read_text())
    assert record["cpu_limit"] == [7, 8]
    assert record["core_limit"] == [0, 0]
    assert record["gomemlimit"] == f"{300 * 1024 * 1024}B"


def test_an_opa_past_its_cpu_limit_is_a_policy_error_naming_it(
    fake_opa: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_OPA_MODE", "spin")
    report = Report.model_validate(json.loads(CLEAN.read_text()))
    with pytest.raises(PolicyError, match="CPU-time limit of 1 s"):
        evaluate(report, [DEFAULT], {}, timeout_s=20.0, backend=PolicyBackend("opa"), cpu_limit_s=1)


def test_too_much_output_is_refused(fake_opa: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_OPA_MODE", "huge")
    monkeypatch.setattr(opa_cli, "MAX_ENGINE_OUTPUT", 10000)
    with pytest.raises(PolicyError, match="more than 10000 bytes"):
        run()


def test_a_missing_binary_is_a_policy_error() -> None:
    report = Report.model_validate(json.loads(CLEAN.read_text()))
    missing = PolicyBackend("opa", opa_binary="/nonexistent/opa")
    with pytest.raises(PolicyError, match="was not found"):
        evaluate(report, [DEFAULT], {}, backend=missing)
