"""Policy engine: fail closed on every engine failure, and decide correctly when it works."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
import time
from pathlib import Path

import pytest

from provscan.errors import PolicyError, UsageError
from provscan.policy import engine
from provscan.policy.engine import evaluate
from provscan.report import Decision, Finding, Location, Report, Severity
from provscan.resources import default_policy_dir

CLEAN_INPUT = default_policy_dir() / "tests" / "clean_approve" / "input.json"
HEADER = "package provscan.main\n\nimport rego.v1\n\n"


def clean_report() -> Report:
    return Report.model_validate(json.loads(CLEAN_INPUT.read_text()))


def with_findings(*findings: Finding) -> Report:
    return clean_report().model_copy(update={"findings": findings})


def finding(
    severity: Severity, rule: str = "SER-PICKLE-DANGEROUS-GLOBAL", path: str | None = "a.bin"
) -> Finding:
    location = Location(path=path) if path else None
    return Finding(rule_id=rule, severity=severity, message="bad thing", location=location)


def make_pack(tmp_path: Path, source: str, name: str = "pack", filename: str = "main.rego") -> Path:
    pack = tmp_path / name
    pack.mkdir(exist_ok=True)
    (pack / filename).write_text(source)
    return pack


def test_default_pack_approves_clean_report_and_records_policy_info() -> None:
    verdict = evaluate(clean_report(), [default_policy_dir()], {})
    assert verdict.decision is Decision.APPROVE
    assert verdict.reasons == ()
    assert verdict.policy.packs == ("default",)
    assert verdict.policy.engine == "regopy"
    assert verdict.policy.engine_version == importlib.metadata.version("regopy")
    assert len(verdict.policy.digest) == 64
    int(verdict.policy.digest, 16)


def test_digest_is_stable_and_changes_with_config_and_sources(tmp_path: Path) -> None:
    report = clean_report()
    first = evaluate(report, [default_policy_dir()], {}).policy.digest
    assert evaluate(report, [default_policy_dir()], {}).policy.digest == first
    changed_config = evaluate(report, [default_policy_dir()], {"severity_levels": {"low": "none"}})
    assert changed_config.policy.digest != first
    source = 'deny contains {"rule": "POL-X", "msg": "m"} if false\n'
    one = evaluate(report, [make_pack(tmp_path, HEADER + source)], {}).policy.digest
    two = evaluate(report, [make_pack(tmp_path, HEADER + source + "# edit\n")], {}).policy.digest
    assert one != two


def test_user_config_is_merged_over_pack_defaults() -> None:
    report = with_findings(finding(Severity.HIGH, "SER-A"), finding(Severity.CRITICAL, "SER-B"))
    assert evaluate(report, [default_policy_dir()], {}).decision is Decision.DENY
    verdict = evaluate(report, [default_policy_dir()], {"severity_levels": {"critical": "warn"}})
    # critical was lowered; high keeps its default level (review): a deep merge.
    assert verdict.decision is Decision.REVIEW
    assert {(r.rule, r.level) for r in verdict.reasons} == {("SER-A", "review"), ("SER-B", "warn")}


def test_reasons_carry_details_and_are_sorted() -> None:
    report = with_findings(
        finding(Severity.MEDIUM, "SER-Z"),
        finding(Severity.CRITICAL, "SER-Y"),
        finding(Severity.HIGH, "SER-X"),
    )
    reasons = evaluate(report, [default_policy_dir()], {}).reasons
    assert [(r.level, r.rule) for r in reasons] == [
        ("deny", "SER-Y"),
        ("review", "SER-X"),
        ("warn", "SER-Z"),
    ]
    assert reasons[0].msg == "a.bin: bad thing"
    assert reasons[0].details == {"file": "a.bin", "severity": "critical"}


def test_hostile_strings_reach_the_policy_intact() -> None:
    # set_input would cut strings at NUL; the engine must pass them through whole.
    message = 'x\x00hidden "quoted" \\ \n\u2603'
    report = clean_report().model_copy(
        update={
            "findings": (Finding(rule_id="SER-A", severity=Severity.CRITICAL, message=message),)
        }
    )
    verdict = evaluate(report, [default_policy_dir()], {})
    assert [r.msg for r in verdict.reasons] == [message]


def test_bad_rego_syntax_names_the_file_and_line(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path,
        HEADER + 'deny contains {"rule": "POL-X", "msg": "m"} if {\n  x := 1 +\n}\n',
        filename="broken.rego",
    )
    with pytest.raises(PolicyError) as caught:
        evaluate(clean_report(), [pack], {})
    text = str(caught.value)
    assert "pack/broken.rego:" in text
    assert "could not be loaded" in text


def test_v0_rule_syntax_is_refused(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, HEADER + 'deny[msg] {\n  msg := "a"\n}\n', filename="old.rego")
    with pytest.raises(PolicyError, match=r"pack/old\.rego:5: v0 rule syntax"):
        evaluate(clean_report(), [pack], {})


def test_pack_without_deny_review_warn_is_refused(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, HEADER + "allow := true\n")
    with pytest.raises(PolicyError, match="defines none of deny, review, warn"):
        evaluate(clean_report(), [pack], {})


def test_missing_package_is_refused(tmp_path: Path) -> None:
    pack = make_pack(
        tmp_path, 'package other\n\nimport rego.v1\n\ndeny contains {"rule": "R", "msg": "m"}\n'
    )
    with pytest.raises(PolicyError, match="no policy defines package provscan.main"):
        evaluate(clean_report(), [pack], {})


def test_missing_pack_dir_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        evaluate(clean_report(), [tmp_path / "nope"], {})


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ('deny contains "a string"', "not an object with rule and msg"),
        ('deny contains {"rule": "R"}', "no string 'msg'"),
        ('review contains {"rule": 7, "msg": "m"}', "no string 'rule'"),
        ('warn := {"rule": "R", "msg": "m"}', "'warn' is not a set"),
    ],
)
def test_malformed_results_are_refused(tmp_path: Path, rule: str, expected: str) -> None:
    pack = make_pack(tmp_path, HEADER + rule + "\n")
    with pytest.raises(PolicyError, match=expected):
        evaluate(clean_report(), [pack], {})


def test_runtime_errors_are_refused(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, HEADER + "deny contains x if { x := no_such_function(1) }\n")
    with pytest.raises(PolicyError, match="Function not found"):
        evaluate(clean_report(), [pack], {})
    conflict = make_pack(
        tmp_path,
        HEADER + 'deny contains {"rule": "R", "msg": "m"} if false\nx := 1\nx := 2\n',
        name="conflict",
    )
    with pytest.raises(PolicyError, match="policy evaluation failed"):
        evaluate(clean_report(), [conflict], {})


def test_rego_print_does_not_corrupt_the_result(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    source = (
        HEADER
        + 'deny contains {"rule": "POL-X", "msg": "printed"} if {\n  print("noise {\\"")\n}\n'
    )
    verdict = evaluate(clean_report(), [make_pack(tmp_path, source)], {})
    assert verdict.decision is Decision.DENY
    assert [r.msg for r in verdict.reasons] == ["printed"]
    assert "noise" not in capfd.readouterr().out


def test_slow_policy_times_out(tmp_path: Path) -> None:
    # About 9 million iterations: seconds of work, little memory.
    source = HEADER + (
        'deny contains {"rule": "POL-X", "msg": "m"} if {\n'
        "  count({1 | some i in numbers.range(1, 3000); some j in numbers.range(1, 3000)}) > 0\n}\n"
    )
    start = time.monotonic()
    # The wall clock or the CPU-time limit (the timeout rounded up) stops it, whichever first.
    with pytest.raises(PolicyError, match=r"timed out after 1 s|CPU-time limit of 1 s"):
        evaluate(clean_report(), [make_pack(tmp_path, source)], {}, timeout_s=1)
    assert time.monotonic() - start < 10


def test_engine_killed_by_signal_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    monkeypatch.setattr(engine, "_child_command", lambda: [sys.executable, "-c", crash])
    with pytest.raises(PolicyError, match=r"policy engine crashed \(signal 11, SIGSEGV\)"):
        evaluate(clean_report(), [default_policy_dir()], {})


def test_engine_exit_status_and_garbage_fail_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    fail = "import sys; sys.stderr.write('boom'); sys.exit(7)"
    monkeypatch.setattr(engine, "_child_command", lambda: [sys.executable, "-c", fail])
    with pytest.raises(PolicyError, match=r"exit status 7(.|\n)*boom"):
        evaluate(clean_report(), [default_policy_dir()], {})
    monkeypatch.setattr(
        engine, "_child_command", lambda: [sys.executable, "-c", "print('approve')"]
    )
    with pytest.raises(PolicyError, match="unparseable output"):
        evaluate(clean_report(), [default_policy_dir()], {})


def test_an_engine_flooding_its_output_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    flood = "import sys\nwhile True: sys.stderr.write('x' * 65536)"
    monkeypatch.setattr(engine, "_child_command", lambda: [sys.executable, "-c", flood])
    monkeypatch.setattr(engine, "MAX_ENGINE_OUTPUT", 1_000_000)
    with pytest.raises(PolicyError, match="policy engine wrote more than 1000000 bytes"):
        evaluate(clean_report(), [default_policy_dir()], {})


def test_test_files_in_a_pack_are_not_loaded(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, HEADER + 'warn contains {"rule": "POL-W", "msg": "w"}\n')
    (pack / "main_test.rego").write_text("this is not rego")
    (pack / "tests" / "case").mkdir(parents=True)
    (pack / "tests" / "case" / "helper.rego").write_text("nor is this")
    verdict = evaluate(clean_report(), [pack], {})
    assert verdict.decision is Decision.APPROVE
    assert [(r.rule, r.level) for r in verdict.reasons] == [("POL-W", "warn")]


def test_a_shadowing_module_in_the_working_directory_is_not_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The working directory may be the (hostile) model being scanned.
    (tmp_path / "regopy.py").write_text("raise SystemExit(99)\n")
    (tmp_path / "json.py").write_text("raise SystemExit(98)\n")
    monkeypatch.chdir(tmp_path)
    assert evaluate(clean_report(), [default_policy_dir()], {}).decision is Decision.APPROVE


def test_digest_covers_pack_files_and_config() -> None:
    pack = engine.load_pack(default_policy_dir())
    names = [name for name, _ in pack.sources]
    assert names == [
        "default/hub.rego",
        "default/licence.rego",
        "default/main.rego",
        "default/origin.rego",
        "default/probes.rego",
        "default/signatures.rego",
        "default/data.yaml",
    ]
    raw = dict(pack.sources)["default/main.rego"]
    assert hashlib.sha256(raw).hexdigest() != engine.policy_digest([pack], pack.defaults)


def _extending_pack(root: Path, extends: object) -> Path:
    root.mkdir()
    (root / "extra.rego").write_text(
        'package provscan.main\n\nimport rego.v1\n\nwarn contains {"rule": "POL-X", "msg": "extra"} if true\n'
    )
    (root / "data.yaml").write_text(json.dumps({"extends": extends, "config": {"x": 1}}))
    return root


def test_a_pack_that_extends_a_shipped_pack_gets_it_loaded_first(tmp_path: Path) -> None:
    packs = engine.load_packs([_extending_pack(tmp_path / "mine", "default")])
    assert [p.name for p in packs] == ["default", "mine"]
    config = engine.effective_config(packs, {})
    assert config["x"] == 1 and "required_steps" in config  # both packs' defaults
    # Named twice (explicitly and through extends), the base is loaded once.
    again = engine.load_packs([default_policy_dir(), tmp_path / "mine"])
    assert [p.name for p in again] == ["default", "mine"]


@pytest.mark.parametrize("extends", ["no-such-pack", "../default", 3])
def test_extends_must_name_a_shipped_pack(tmp_path: Path, extends: object) -> None:
    with pytest.raises(PolicyError, match="extends"):
        engine.load_packs([_extending_pack(tmp_path / "mine", extends)])


def test_the_production_pack_extends_the_default_pack() -> None:
    production = default_policy_dir().parent / "production"
    packs = engine.load_packs([production])
    assert [p.name for p in packs] == ["default", "production"]
    config = engine.effective_config(packs, {})
    assert config["signatures"] == dict.fromkeys(
        ("unsigned", "untrusted", "not_covered", "uncovered_facts"), "deny"
    )
