"""The default policy pack: its table tests pass, and the test runner catches wrong ones."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from provscan.pipeline import STEPS
from provscan.policy.backends import PolicySetupError
from provscan.policy.engine import evaluate
from provscan.policy.testing import CaseResult, find_cases, run_policy_tests
from provscan.report import Decision, Report
from provscan.resources import default_policy_dir

PACK = default_policy_dir()


@pytest.fixture(scope="module")
def results() -> dict[str, CaseResult]:
    return {result.name: result for result in run_policy_tests([PACK])}


@pytest.mark.parametrize("case", [name for name, _ in find_cases([PACK])])
def test_default_pack_table_case_passes(results: dict[str, CaseResult], case: str) -> None:
    assert results[case].passed, results[case].message
    assert results[case].message == "ok"


@pytest.mark.parametrize(
    ("case", "verdict"),
    [
        ("clean_approve", "approve"),
        ("critical_finding_deny", "deny"),
        ("high_finding_review", "review"),
        ("medium_finding_warn", "approve"),
        ("failed_step_deny", "deny"),
        ("missing_step_deny", "deny"),
        ("waived_high_finding", "approve"),
        ("waiver_without_reason_deny", "deny"),
        ("config_high_to_deny", "deny"),
        ("empty_files_deny", "deny"),
    ],
)
def test_required_cases_exist_with_their_verdict(case: str, verdict: str) -> None:
    expected = yaml.safe_load((PACK / "tests" / case / "expected.yaml").read_text())
    assert expected["verdict"] == verdict


def copy_pack(tmp_path: Path, keep: tuple[str, ...] = ()) -> Path:
    """The default pack, with only the table cases in ``keep`` when given: each case costs a
    policy engine run, and the runner's own tests need a handful, not all of them."""
    pack = Path(shutil.copytree(PACK, tmp_path / "default"))
    if keep:
        for case in (pack / "tests").iterdir():
            if case.name not in keep:
                shutil.rmtree(case)
    return pack


def edit_expected(pack: Path, case: str, **changes: object) -> None:
    path = pack / "tests" / case / "expected.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.update(changes)
    path.write_text(yaml.safe_dump(doc))


def test_wrong_expectations_are_reported_as_failures(tmp_path: Path) -> None:
    pack = copy_pack(tmp_path, ("critical_finding_deny", "medium_finding_warn", "clean_approve"))
    edit_expected(pack, "critical_finding_deny", verdict="approve", deny=["SER-OTHER"])
    edit_expected(pack, "medium_finding_warn", warn=[])
    results = {r.name: r for r in run_policy_tests([pack])}
    deny_case = results["default/critical_finding_deny"]
    assert not deny_case.passed
    assert "verdict: expected approve, got deny" in deny_case.message
    assert "deny: missing SER-OTHER" in deny_case.message
    assert "deny: unexpected SER-PICKLE-DANGEROUS-GLOBAL" in deny_case.message
    warn_case = results["default/medium_finding_warn"]
    assert not warn_case.passed
    assert warn_case.message == "warn: unexpected INV-CARD-MISSING"
    assert sum(not r.passed for r in results.values()) == 2


def test_broken_case_files_fail_with_a_clear_message(tmp_path: Path) -> None:
    pack = copy_pack(
        tmp_path,
        (
            "clean_approve",
            "high_finding_review",
            "empty_files_deny",
            "info_finding_ignored",
            "critical_finding_deny",
        ),
    )
    tests = pack / "tests"
    doc = json.loads((tests / "clean_approve" / "input.json").read_text())
    del doc["tool"]
    (tests / "clean_approve" / "input.json").write_text(json.dumps(doc))
    edit_expected(pack, "high_finding_review", warns=["typo"])
    (tests / "empty_files_deny" / "expected.yaml").unlink()
    edit_expected(pack, "info_finding_ignored", verdict="maybe")
    results = {r.name: r for r in run_policy_tests([pack])}
    assert (
        "input.json is not a valid Report: tool: Field required"
        in results["default/clean_approve"].message
    )
    assert results["default/high_finding_review"].message == "expected.yaml has unknown keys: warns"
    assert results["default/empty_files_deny"].message == "expected.yaml is missing"
    assert (
        "'verdict' must be approve, review or deny"
        in results["default/info_finding_ignored"].message
    )
    assert sum(not r.passed for r in results.values()) == 4


def test_a_module_that_does_not_parse_stops_the_run_once(tmp_path: Path) -> None:
    # Every case would fail alike: one error naming the file, not one failure per case.
    pack = copy_pack(tmp_path)
    (pack / "broken.rego").write_text("package provscan.main\n\ndeny contains x if {\n")
    with pytest.raises(PolicySetupError) as caught:
        run_policy_tests([pack])
    assert caught.value.message == (
        f"policy could not be loaded: {pack}/broken.rego:3:20: parse error: '{{' is not closed"
    )


def test_runner_config_is_merged_under_case_config(tmp_path: Path) -> None:
    # Lowering high findings to 'none' breaks the review case but not the one whose
    # own config maps high to deny.
    pack = copy_pack(tmp_path, ("high_finding_review", "config_high_to_deny"))
    results = {r.name: r for r in run_policy_tests([pack], {"severity_levels": {"high": "none"}})}
    assert not results["default/high_finding_review"].passed
    assert results["default/config_high_to_deny"].passed


def load_case(case: str) -> Report:
    return Report.model_validate(json.loads((PACK / "tests" / case / "input.json").read_text()))


def test_messages_name_the_step_file_and_waiver() -> None:
    step = evaluate(load_case("failed_step_deny"), [PACK], {}).reasons[0]
    assert step.msg == "required step hashing failed: PermissionError: model.safetensors"
    assert step.details == {"step": "hashing", "status": "failed"}
    missing = evaluate(load_case("missing_step_deny"), [PACK], {}).reasons[0]
    assert "serialization did not run" in missing.msg

    waiver = {"rule": "SER-PICKLE-UNKNOWN-GLOBAL", "reason": "ticket SEC-1"}
    verdict = evaluate(load_case("high_finding_review"), [PACK], {"waivers": [waiver]})
    assert verdict.decision is Decision.APPROVE
    (reason,) = verdict.reasons
    assert (reason.rule, reason.level) == ("POL-WAIVED", "warn")
    assert "SER-PICKLE-UNKNOWN-GLOBAL" in reason.msg and "ticket SEC-1" in reason.msg
    assert reason.details["file"] == "pytorch_model.bin"
    assert reason.details["finding_rule"] == "SER-PICKLE-UNKNOWN-GLOBAL"


def test_data_yaml_holds_the_documented_defaults() -> None:
    config = yaml.safe_load((PACK / "data.yaml").read_text())["config"]
    assert config["required_steps"] == list(STEPS)  # every step the scan runs
    assert config["severity_levels"] == {
        "critical": "deny",
        "high": "review",
        "medium": "warn",
        "low": "warn",
        "info": "none",
    }
    assert config["waivers"] == []


def test_readme_documents_every_rule_id_the_pack_emits() -> None:
    emitted = {
        rule
        for module in PACK.glob("*.rego")
        for rule in re.findall(r'"(POL-[A-Z-]+)"', module.read_text())
    }
    assert emitted >= {
        "POL-STEP-INCOMPLETE",
        "POL-NO-FILES",
        "POL-WAIVED",
        "POL-BAD-WAIVER",
        "POL-BAD-CONFIG",
        "POL-LICENCE-TERRITORY",
        "POL-ORIGIN-DENIED",
    }
    readme = (PACK / "README.md").read_text()
    assert all(f"`{rule}`" in readme for rule in emitted)
